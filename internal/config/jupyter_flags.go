package config

import (
	"errors"
	"flag"
	"strconv"
	"strings"
)

// registerJupyterFlags adds the flags of the Jupyter Server kernel API.
func registerJupyterFlags(fs *flag.FlagSet, c *Config) {
	fs.Int64Var(&c.Jupyter.MaxMessageBytes, "jupyter-max-message-bytes", c.Jupyter.MaxMessageBytes, "largest message a client may send on /api/kernels/{id}/channels (env KERNELGATE_JUPYTER_MAX_MESSAGE_BYTES)")
	fs.DurationVar(&c.Jupyter.PingInterval, "jupyter-ping-interval", c.Jupyter.PingInterval, "WebSocket ping interval on kernel channels, so proxies keep idle connections (env KERNELGATE_JUPYTER_PING_INTERVAL)")
	fs.DurationVar(&c.Jupyter.CullIdleTimeout, "cull-idle-timeout", c.Jupyter.CullIdleTimeout, "shut down kernels started through /api/kernels that are idle with no connection for this long, 0 to never (env KERNELGATE_CULL_IDLE_TIMEOUT)")
	fs.DurationVar(&c.Jupyter.CullInterval, "cull-interval", c.Jupyter.CullInterval, "how often idle kernels are looked for (env KERNELGATE_CULL_INTERVAL)")
	fs.Func("kernel-env-allow", "comma-separated environment variable names a kernel start request may set besides KERNEL_* ones (env KERNELGATE_KERNEL_ENV_ALLOW)", func(v string) error {
		c.Jupyter.AllowedEnv = nil
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				c.Jupyter.AllowedEnv = append(c.Jupyter.AllowedEnv, n)
			}
		}
		return nil
	})
}

// validateJupyter checks the Jupyter API settings.
func (c Config) validateJupyter() []error {
	var errs []error
	if c.Jupyter.MaxMessageBytes < 64<<10 {
		errs = append(errs, &FieldError{Field: "jupyter-max-message-bytes", Value: strconv.FormatInt(c.Jupyter.MaxMessageBytes, 10),
			Err: errors.New("must be at least 65536 (Jupyter messages are often larger than 32 KiB)")})
	}
	if c.Jupyter.PingInterval <= 0 {
		errs = append(errs, &FieldError{Field: "jupyter-ping-interval", Value: c.Jupyter.PingInterval.String(), Err: errors.New("must be positive")})
	}
	if c.Jupyter.CullIdleTimeout < 0 {
		errs = append(errs, &FieldError{Field: "cull-idle-timeout", Value: c.Jupyter.CullIdleTimeout.String(), Err: errors.New("must not be negative (0 turns culling off)")})
	}
	if c.Jupyter.CullInterval <= 0 {
		errs = append(errs, &FieldError{Field: "cull-interval", Value: c.Jupyter.CullInterval.String(), Err: errors.New("must be positive")})
	}
	for _, n := range c.Jupyter.AllowedEnv {
		if strings.ContainsAny(n, "= \t\x00") {
			errs = append(errs, &FieldError{Field: "kernel-env-allow", Value: n, Err: errors.New("not an environment variable name")})
		}
	}
	return errs
}
