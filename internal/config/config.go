// Package config is the one place where kernelgate's settings are defined,
// defaulted, read (flags over environment over defaults) and validated. It is
// the only package that looks at the environment; every component receives
// its own section as a plain value.
package config

import (
	"errors"
	"flag"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/internal/auth"
	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/flowapi"
	"github.com/kernelgate/kernelgate/internal/jupyterapi"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// Config is the whole configuration.
type Config struct {
	Addr            string        // HTTP listen address
	LogLevel        string        // debug, info, warn, error
	LogFormat       string        // text or json
	ShutdownTimeout time.Duration // bound on graceful shutdown

	KernelSpec string         // default kernelspec name
	Python     string         // interpreter with ipykernel, for the built-in spec and bare "python3" argv
	SpecSearch kernelspec.Env // where kernelspecs are looked for
	Kernel     kernel.Config
	Flow       flowapi.Config    // the AdeloopFlow /ws and HTTP API
	Jupyter    jupyterapi.Config // the Jupyter Server kernel API
	Rates      ratelimit.Rates   // per-user rate limits, one budget across every API

	// Token (env KERNELGATE_TOKEN only: a flag would show in ps) and
	// TokenFile ("user token" lines) enable authentication, which is
	// required to listen anywhere but loopback.
	Token     string
	TokenFile string
	// JWT (--jwt-* flags) accepts signed JSON Web Tokens; a configured key
	// counts as authentication too.
	JWT auth.JWTConfig

	// Sandbox is "auto" (confine kernels with bwrap when the machine
	// allows it, else run them unconfined with a loud warning; the default),
	// "bwrap" (refuse to start otherwise) or "none". "on" and "off" are
	// accepted for bwrap and none.
	Sandbox       string
	SandboxPolicy sandbox.Policy // Specs: per-kernelspec limits, from the config file

	// ConfigFile is the TOML file the settings were read from, if any.
	ConfigFile string
	// AdminUsers may see every user's kernels (auth.Admins); so may JWT
	// bearers with the admin role when JWT.RolesClaim is set.
	AdminUsers []string
	// PythonPolicy is the Python-level policy of kernels (none or audit,
	// see bootstrap.Policy); SpecPythonPolicy overrides it by kernelspec.
	PythonPolicy     string
	SpecPythonPolicy map[string]string
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:8000",
		LogLevel:        "info",
		LogFormat:       "text",
		ShutdownTimeout: 15 * time.Second,
		KernelSpec:      "python3",
		Python:          "/usr/bin/python3",
		Kernel:          withPoolDefaults(kernel.DefaultConfig()),
		Flow:            flowapi.DefaultConfig(),
		Jupyter:         jupyterapi.DefaultConfig(),
		Rates:           ratelimit.DefaultRates(),
		Sandbox:         "auto",
		SandboxPolicy: sandbox.Policy{
			Bwrap:       sandbox.DefaultBwrap,
			MemoryBytes: 2 << 30,
			PIDs:        512,
			CPUQuota:    1,
			NoFile:      1024,
			UID:         61000, // an id no user of the machine should own files as
			GID:         61000,
			UIDs:        1000, // 61000-61999, one per kernel
			FileBytes:   sandbox.DefaultFileBytes,
		},
		PythonPolicy: bootstrap.PolicyNone,
	}
}

// FieldError names the setting that is wrong.
type FieldError struct {
	Field string
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config %s=%q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// maxIPCRuntimeDir leaves room under the 107-byte unix socket path limit
// for "/<13-byte kernel dir>/i<n>/kernel-<port>".
const maxIPCRuntimeDir = 80

// envPrefix prefixes every environment variable kernelgate reads.
const envPrefix = "KERNELGATE_"

// Load fills a Config from defaults, then the environment (getenv), then the
// command-line flags in args. environ is the process environment that
// kernels inherit. usage is where -h output goes.
func Load(name string, args []string, getenv func(string) string, environ []string, usage io.Writer) (Config, []string, error) {
	c := Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen `address` (env KERNELGATE_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error (env KERNELGATE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json (env KERNELGATE_LOG_FORMAT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound on graceful shutdown (env KERNELGATE_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.KernelSpec, "kernel", c.KernelSpec, "default kernelspec `name` (env KERNELGATE_KERNEL)")
	fs.StringVar(&c.Python, "python", c.Python, "Python `interpreter` with ipykernel for the built-in python3 spec (env KERNELGATE_PYTHON)")
	fs.StringVar(&c.Kernel.RuntimeDir, "runtime-dir", c.Kernel.RuntimeDir, "`dir` for kernels' connection files and work dirs; default a fresh dir under $TMPDIR (env KERNELGATE_RUNTIME_DIR)")
	fs.StringVar(&c.Kernel.Transport, "transport", c.Kernel.Transport, "ZMQ transport to kernels: tcp or ipc (env KERNELGATE_TRANSPORT)")
	fs.DurationVar(&c.Kernel.StartTimeout, "kernel-start-timeout", c.Kernel.StartTimeout, "how long a kernel may take to become ready (env KERNELGATE_KERNEL_START_TIMEOUT)")
	fs.DurationVar(&c.Kernel.HeartbeatInterval, "heartbeat-interval", c.Kernel.HeartbeatInterval, "kernel heartbeat interval, 0 to disable (env KERNELGATE_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&c.Flow.DetachedTTL, "session-ttl", c.Flow.DetachedTTL, "how long a notebook session keeps its kernel with no client connected, for resume (env KERNELGATE_SESSION_TTL)")
	fs.DurationVar(&c.Flow.CancelGrace, "cancel-grace", c.Flow.CancelGrace, "how long a cancelled cell may take to stop before its kernel is restarted (env KERNELGATE_CANCEL_GRACE)")
	fs.DurationVar(&c.Flow.InputTimeout, "input-timeout", c.Flow.InputTimeout, "stop a cell whose input() waits longer for an answer, 0 for no limit (env KERNELGATE_INPUT_TIMEOUT)")
	fs.DurationVar(&c.Flow.ExecutionTimeout, "execution-timeout", c.Flow.ExecutionTimeout, "stop a cell that runs longer, 0 for no limit (env KERNELGATE_EXECUTION_TIMEOUT)")
	fs.Int64Var(&c.Flow.MaxMessageBytes, "max-message-bytes", c.Flow.MaxMessageBytes, "largest client message or request body (env KERNELGATE_MAX_MESSAGE_BYTES)")
	fs.BoolVar(&c.Flow.Cell.RawBase64Plots, "raw-base64-plots", c.Flow.Cell.RawBase64Plots, "send plots as raw base64 instead of data: URIs (env KERNELGATE_RAW_BASE64_PLOTS)")
	fs.Func("allowed-origins", "comma-separated Origin host patterns allowed to open WebSockets besides the server's own host (default loopback hosts on any port; env KERNELGATE_ALLOWED_ORIGINS)", func(v string) error {
		c.Flow.AllowedOrigins = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if _, err := path.Match(p, ""); err != nil {
					return fmt.Errorf("bad pattern %q: %w", p, err)
				}
				c.Flow.AllowedOrigins = append(c.Flow.AllowedOrigins, p)
			}
		}
		return nil
	})
	fs.StringVar(&c.TokenFile, "token-file", c.TokenFile, "`file` of \"user token\" lines; requests must present one (env KERNELGATE_TOKEN_FILE; a single token can come from env KERNELGATE_TOKEN)")
	fs.IntVar(&c.Kernel.MaxKernels, "max-kernels", c.Kernel.MaxKernels, "most kernels running at once, 0 for no limit (env KERNELGATE_MAX_KERNELS)")
	fs.IntVar(&c.Kernel.MaxKernelsPerUser, "max-kernels-per-user", c.Kernel.MaxKernelsPerUser, "most kernels one user may run, 0 for no limit (env KERNELGATE_MAX_KERNELS_PER_USER)")
	fs.StringVar(&c.Sandbox, "sandbox", c.Sandbox, "confine kernels with bubblewrap, cgroups and rlimits: auto (when the machine allows, else warn), bwrap (required), none (env KERNELGATE_SANDBOX)")
	fs.StringVar(&c.SandboxPolicy.Bwrap, "bwrap", c.SandboxPolicy.Bwrap, "bubblewrap `binary` for the sandbox (env KERNELGATE_BWRAP)")
	fs.Var(byteSize{&c.SandboxPolicy.MemoryBytes}, "kernel-memory", "memory limit per sandboxed kernel, in bytes or with a unit (2GiB), 0 for none (env KERNELGATE_KERNEL_MEMORY)")
	fs.Int64Var(&c.SandboxPolicy.PIDs, "kernel-pids", c.SandboxPolicy.PIDs, "processes and threads per sandboxed kernel, 0 for no limit (env KERNELGATE_KERNEL_PIDS)")
	fs.Float64Var(&c.SandboxPolicy.CPUQuota, "kernel-cpus", c.SandboxPolicy.CPUQuota, "CPU cores per sandboxed kernel, 0 for no limit (env KERNELGATE_KERNEL_CPUS)")
	fs.BoolVar(&c.SandboxPolicy.Network, "kernel-network", c.SandboxPolicy.Network, "give sandboxed kernels the host's network (env KERNELGATE_KERNEL_NETWORK)")
	registerAuthFlags(fs, &c)
	registerLimitFlags(fs, &c)
	registerPoolFlags(fs, &c)
	registerJupyterFlags(fs, &c)
	fs.BoolVar(&c.Kernel.AutoRestart, "auto-restart", c.Kernel.AutoRestart, "restart kernels that die (env KERNELGATE_AUTO_RESTART)")
	registerSandboxFlags(fs, &c)
	registerSeccompFlags(fs, &c)
	registerUIDFlags(fs, &c)
	registerFileFlags(fs, &c)

	// The config file ranks below the environment and the flags: parse the
	// flags once to find it, read it over the defaults, then apply the
	// environment and parse the flags again.
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	file := c.ConfigFile
	if file == "" {
		file = getenv(envPrefix + "CONFIG")
	}
	c = Default()
	if err := loadFile(fs, &c, file); err != nil {
		return c, nil, err
	}

	// Environment next, so flags override it.
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		key := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, &FieldError{Field: key, Value: v, Err: err})
			}
		}
	})
	if len(errs) > 0 {
		return c, nil, errors.Join(errs...)
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	c.Token = getenv(envPrefix + "TOKEN")
	c.SpecSearch = kernelspec.Env{
		JupyterPath:    getenv("JUPYTER_PATH"),
		JupyterDataDir: getenv("JUPYTER_DATA_DIR"),
		Home:           getenv("HOME"),
		XDGDataHome:    getenv("XDG_DATA_HOME"),
	}
	c.Kernel.Env = kernelEnv(environ)
	if c.Kernel.RuntimeDir == "" {
		tmp := getenv("TMPDIR")
		if tmp == "" {
			tmp = "/tmp"
		}
		c.Kernel.RuntimeDir = filepath.Join(tmp, "kernelgate-"+strconv.Itoa(os.Getpid()))
	}
	return c, fs.Args(), c.Validate()
}

// kernelEnv is the environment kernels start with: the server's own, minus
// kernelgate's settings (which may hold secrets), plus what ipykernel needs
// to start quietly.
func kernelEnv(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if strings.HasPrefix(kv, envPrefix) {
			continue
		}
		out = append(out, kv)
	}
	// Debian's debugpy warns about frozen modules on every start otherwise.
	return append(out, "PYDEVD_DISABLE_FILE_VALIDATION=1")
}

// SandboxMode is Sandbox with the aliases resolved: auto, bwrap or none.
func (c Config) SandboxMode() string {
	switch c.Sandbox {
	case "on":
		return "bwrap"
	case "off":
		return "none"
	}
	return c.Sandbox
}

// isLoopback reports whether a listen host only accepts local connections.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate checks every field and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, value, why string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Err: errors.New(why)})
	}
	if host, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", c.Addr, "want host:port")
	} else if !isLoopback(host) && c.Token == "" && c.TokenFile == "" && !c.JWT.Enabled() {
		bad("addr", c.Addr, "listening beyond loopback requires authentication: set KERNELGATE_TOKEN, --token-file, --jwt-hs256-secret-file or --jwt-public-key-file, or listen on 127.0.0.1")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", c.LogLevel, "want debug, info, warn or error")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", c.LogFormat, "want text or json")
	}
	switch c.Kernel.Transport {
	case "tcp", "ipc":
	default:
		bad("transport", c.Kernel.Transport, "want tcp or ipc")
	}
	// ipc socket paths are <runtime-dir>/<kernel dir>/i<n>/kernel-<port>,
	// and a unix socket path holds at most 107 bytes.
	if c.Kernel.Transport == "ipc" && len(c.Kernel.RuntimeDir) > maxIPCRuntimeDir {
		bad("runtime-dir", c.Kernel.RuntimeDir, fmt.Sprintf("with transport ipc it must be at most %d bytes long (unix socket paths are limited); choose a shorter dir or --transport tcp", maxIPCRuntimeDir))
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", c.ShutdownTimeout.String(), "must be positive")
	}
	if c.Flow.MaxMessageBytes < 1024 {
		bad("max-message-bytes", strconv.FormatInt(c.Flow.MaxMessageBytes, 10), "must be at least 1024")
	}
	if c.Flow.DetachedTTL <= 0 {
		bad("session-ttl", c.Flow.DetachedTTL.String(), "must be positive")
	}
	if c.Flow.InputTimeout < 0 {
		bad("input-timeout", c.Flow.InputTimeout.String(), "must not be negative")
	}
	if c.Flow.ExecutionTimeout < 0 {
		bad("execution-timeout", c.Flow.ExecutionTimeout.String(), "must not be negative")
	}
	if c.Flow.CancelGrace <= 0 {
		bad("cancel-grace", c.Flow.CancelGrace.String(), "must be positive")
	}
	switch c.Sandbox {
	case "auto", "bwrap", "none", "on", "off":
	default:
		bad("sandbox", c.Sandbox, "want auto, bwrap or none")
	}
	if c.SandboxMode() != "none" && !c.SandboxPolicy.Network && c.Kernel.Transport == "tcp" {
		bad("transport", c.Kernel.Transport, "sandboxed kernels without network need --transport ipc (or --kernel-network, or --sandbox off)")
	}
	if c.Kernel.MaxKernels < 0 || c.Kernel.MaxKernelsPerUser < 0 {
		bad("max-kernels", fmt.Sprint(c.Kernel.MaxKernels, "/", c.Kernel.MaxKernelsPerUser), "quotas must not be negative")
	}
	if c.Kernel.StartTimeout <= 0 {
		bad("kernel-start-timeout", c.Kernel.StartTimeout.String(), "must be positive")
	}
	if c.Kernel.HeartbeatInterval < 0 {
		bad("heartbeat-interval", c.Kernel.HeartbeatInterval.String(), "must not be negative")
	}
	if !filepath.IsAbs(c.Python) {
		bad("python", c.Python, "must be an absolute path (the python3 on PATH may lack ipykernel)")
	}
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateSandbox()...)
	errs = append(errs, c.validateAdmin()...)
	errs = append(errs, c.validatePool()...)
	errs = append(errs, c.validateJupyter()...)
	return errors.Join(errs...)
}
