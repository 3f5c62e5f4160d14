package config

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kernelgate/kernelgate/internal/kernel"
)

// DefaultPoolSize is how many ready kernels of the default kernelspec the
// server keeps warm unless told otherwise.
const DefaultPoolSize = 2

// withPoolDefaults adds the server's warm-pool defaults to the core's
// (whose own default is no pool, so tools and tests start only what they
// ask for).
func withPoolDefaults(k kernel.Config) kernel.Config {
	k.Pool.Sizes = map[string]int{"": DefaultPoolSize}
	return k
}

// poolSizes is the --pool-size value: "N" for the default kernelspec, or
// "name=N,name=N" per spec ("default=N" names the default spec too).
type poolSizes struct{ m *map[string]int }

func (p poolSizes) String() string {
	if p.m == nil || len(*p.m) == 0 {
		return "0"
	}
	if n, ok := (*p.m)[""]; ok && len(*p.m) == 1 {
		return strconv.Itoa(n)
	}
	parts := make([]string, 0, len(*p.m))
	for name, n := range *p.m {
		if name == "" {
			name = "default"
		}
		parts = append(parts, name+"="+strconv.Itoa(n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (p poolSizes) Set(v string) error {
	out := map[string]int{}
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		out[""] = n
	} else {
		for _, part := range strings.Split(v, ",") {
			name, num, ok := strings.Cut(strings.TrimSpace(part), "=")
			name = strings.TrimSpace(name)
			if !ok || name == "" {
				return fmt.Errorf("want N, or name=N pairs separated by commas, not %q", part)
			}
			n, err := strconv.Atoi(strings.TrimSpace(num))
			if err != nil {
				return fmt.Errorf("pool size of %s: %w", name, err)
			}
			if name == "default" {
				name = ""
			}
			out[name] = n
		}
	}
	*p.m = out
	return nil
}

// registerPoolFlags adds the warm-pool flags. Load mirrors each as
// KERNELGATE_<FLAG>, e.g. KERNELGATE_POOL_SIZE.
func registerPoolFlags(fs *flag.FlagSet, c *Config) {
	fs.Var(poolSizes{&c.Kernel.Pool.Sizes}, "pool-size", "ready kernels kept warm for new sessions: N for the default kernelspec, or name=N,... per spec; 0 disables the pool (env KERNELGATE_POOL_SIZE)")
	fs.Func("pool-preload", "comma-separated Python `modules` each pool kernel imports before it is handed out, e.g. numpy,pandas,matplotlib.pyplot (env KERNELGATE_POOL_PRELOAD)", func(v string) error {
		c.Kernel.Pool.Preload = nil
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				c.Kernel.Pool.Preload = append(c.Kernel.Pool.Preload, m)
			}
		}
		return nil
	})
	fs.DurationVar(&c.Kernel.Pool.PreloadTimeout, "pool-preload-timeout", c.Kernel.Pool.PreloadTimeout, "bound on one pool kernel's preload; 0 for the default, 2m (env KERNELGATE_POOL_PRELOAD_TIMEOUT)")
}

// validatePool checks the warm-pool settings.
func (c Config) validatePool() []error {
	var errs []error
	bad := func(field, value, why string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Err: errors.New(why)})
	}
	total := 0
	for name, n := range c.Kernel.Pool.Sizes {
		if n < 0 || n > 100 {
			bad("pool-size", poolSizes{&c.Kernel.Pool.Sizes}.String(), "each pool size must be between 0 and 100")
			return errs
		}
		if name != "" && strings.ContainsAny(name, " /\\") {
			bad("pool-size", name, "not a kernelspec name")
		}
		total += n
	}
	if c.Kernel.MaxKernels > 0 && total > c.Kernel.MaxKernels {
		// Idle pool kernels do not count against the quota, but they do
		// cost memory: more of them than the server may run is a typo.
		bad("pool-size", strconv.Itoa(total), fmt.Sprintf("the pool would keep more kernels (%d) than --max-kernels allows (%d)", total, c.Kernel.MaxKernels))
	}
	for _, m := range c.Kernel.Pool.Preload {
		if !kernel.ValidModuleName(m) {
			bad("pool-preload", m, "not a Python module name (dotted identifiers, e.g. matplotlib.pyplot)")
		}
	}
	if c.Kernel.Pool.PreloadTimeout < 0 {
		bad("pool-preload-timeout", c.Kernel.Pool.PreloadTimeout.String(), "must not be negative")
	}
	if len(c.Kernel.Pool.Preload) > 0 && !c.Kernel.Pool.Enabled() {
		bad("pool-preload", strings.Join(c.Kernel.Pool.Preload, ","), "needs a pool (--pool-size above 0)")
	}
	return errs
}
