package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kernelgate/kernelgate/internal/auth"
	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// The config file (--config, KERNELGATE_CONFIG) is TOML. Its top-level keys
// are the flags' names with their values (kernel-memory = "2GiB",
// allowed-origins = ["app.example.com"], session-ttl = "10m"), and
// [kernelspecs.<name>] tables hold limits for the kernels of one kernelspec
// (specKeys). Precedence: flags > environment > file > defaults. Unknown
// keys are errors that name the key and its line.

// specKeys are the keys of a [kernelspecs.<name>] table: each sets one
// field of the kernelspec's sandbox.Override, or its Python policy, from the
// same text its flag takes.
func specKeys() map[string]func(o *sandbox.Override, policy *string, v string) error {
	return map[string]func(o *sandbox.Override, policy *string, v string) error{
		"memory": func(o *sandbox.Override, _ *string, v string) error {
			o.MemoryBytes = new(int64)
			return byteSize{o.MemoryBytes}.Set(v)
		},
		"cpus": func(o *sandbox.Override, _ *string, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			o.CPUQuota = &f
			return err
		},
		"pids": func(o *sandbox.Override, _ *string, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			o.PIDs = &n
			return err
		},
		"nofile": func(o *sandbox.Override, _ *string, v string) error {
			n, err := strconv.ParseUint(v, 10, 64)
			o.NoFile = &n
			return err
		},
		"file-size": func(o *sandbox.Override, _ *string, v string) error {
			o.FileBytes = new(int64)
			return fileSize{o.FileBytes}.Set(v)
		},
		"tmp-size": func(o *sandbox.Override, _ *string, v string) error {
			o.TmpBytes = new(int64)
			return tmpSize{o.TmpBytes}.Set(v)
		},
		"network": func(o *sandbox.Override, _ *string, v string) error {
			b, err := strconv.ParseBool(v)
			o.Network = &b
			return err
		},
		"python-policy": func(_ *sandbox.Override, policy *string, v string) error {
			if _, err := bootstrap.Policy(v); err != nil {
				return err
			}
			*policy = v
			return nil
		},
	}
}

// registerFileFlags adds --config and the settings that came with it:
// administrators.
func registerFileFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "TOML `file` of settings: flags' names as keys, and [kernelspecs.<name>] tables of per-kernelspec limits; flags and the environment override it (env KERNELGATE_CONFIG; see docs/kernelgate.example.toml)")
	fs.Func("admin-users", "comma-separated users who are administrators: they may list every user's kernels (GET /api/admin/kernels); \"anonymous\" for the local user when there is no authentication (env KERNELGATE_ADMIN_USERS)", func(v string) error {
		c.AdminUsers = nil
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.AdminUsers = append(c.AdminUsers, u)
			}
		}
		return nil
	})
}

// FileError is a problem with the config file, at a line when known.
type FileError struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted, e.g. kernelspecs.r.memory
	Err  error
}

func (e *FileError) Error() string {
	at := e.File
	if e.Line > 0 {
		at += " line " + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("config file %s: %v", at, e.Err)
	}
	return fmt.Sprintf("config file %s: %s: %v", at, e.Key, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// applier receives one TOML value and applies it; an error it returns
// comes back from PrimitiveDecode as a toml.ParseError carrying the key's
// line.
type applier func(v any) error

func (a applier) UnmarshalTOML(v any) error { return a(v) }

// loadFile reads the config file at path ("" for none) into c, through the
// flags' own setters so that a value means the same in the file as on the
// command line. It reports every problem, each with its line.
func loadFile(fs *flag.FlagSet, c *Config, path string) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return &FileError{File: path, Err: err}
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &FileError{File: path, Line: pe.Position.Line, Err: errors.New(pe.Message)}
		}
		return &FileError{File: path, Err: err}
	}
	var errs []error
	// decode runs a; an error becomes a FileError at key's line.
	decode := func(p toml.Primitive, key string, a applier) {
		err := md.PrimitiveDecode(p, a)
		if err == nil {
			return
		}
		fe := &FileError{File: path, Key: key, Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			fe.Line, fe.Err = pe.Position.Line, errors.New(pe.Message)
		}
		errs = append(errs, fe)
	}
	// Top-level keys in file order; a table defined only through its
	// subtables ([kernelspecs.r]) has no key of its own.
	var names []string
	for _, k := range md.Keys() {
		if !slices.Contains(names, k[0]) {
			names = append(names, k[0])
		}
	}
	for _, name := range names {
		switch f := fs.Lookup(name); {
		case name == "kernelspecs":
			loadSpecs(md, top[name], c, decode)
		case name == "config":
			decode(top[name], name, func(any) error { return errors.New("a config file cannot name another config file") })
		case f == nil:
			decode(top[name], name, func(any) error {
				return errors.New("unknown key: the top-level keys are the names of kernelgate serve's flags (see kernelgate serve -h), and [kernelspecs.<name>] tables")
			})
		default:
			decode(top[name], name, func(v any) error {
				s, err := flagText(v)
				if err != nil {
					return err
				}
				if err := f.Value.Set(s); err != nil {
					return fmt.Errorf("invalid value %q: %w%s", s, err, typeHint(f.Value))
				}
				return nil
			})
		}
	}
	return errors.Join(errs...)
}

// loadSpecs reads the [kernelspecs.<name>] tables.
func loadSpecs(md toml.MetaData, p toml.Primitive, c *Config, decode func(toml.Primitive, string, applier)) {
	var specs map[string]toml.Primitive
	decode(p, "kernelspecs", func(v any) error {
		if _, ok := v.(map[string]any); !ok {
			return errors.New("want tables: [kernelspecs.<kernelspec name>]")
		}
		return nil
	})
	if err := md.PrimitiveDecode(p, &specs); err != nil {
		return // reported above
	}
	for _, name := range sortedKeys(specs) {
		table := true
		decode(specs[name], "kernelspecs."+name, func(v any) error {
			if _, table = v.(map[string]any); !table {
				return errors.New("want a table of limits, e.g. [kernelspecs." + name + "] with memory = \"8GiB\"")
			}
			return nil
		})
		var keys map[string]toml.Primitive
		if !table || md.PrimitiveDecode(specs[name], &keys) != nil {
			continue
		}
		if errs := validSpecName(name); len(errs) > 0 {
			decode(specs[name], "kernelspecs."+name, func(any) error { return errs[0].(*FieldError).Err })
			continue
		}
		if c.SandboxPolicy.Specs == nil {
			c.SandboxPolicy.Specs = map[string]sandbox.Override{}
		}
		o := c.SandboxPolicy.Specs[name]
		for _, key := range sortedKeys(keys) {
			set, ok := specKeys()[key]
			dotted := "kernelspecs." + name + "." + key
			if !ok {
				decode(keys[key], dotted, func(any) error {
					return fmt.Errorf("unknown key: a kernelspec's table may set %s", strings.Join(sortedKeys(specKeys()), ", "))
				})
				continue
			}
			decode(keys[key], dotted, func(v any) error {
				s, err := flagText(v)
				if err != nil {
					return err
				}
				policy := ""
				if err := set(&o, &policy, s); err != nil {
					return fmt.Errorf("invalid value %q: %w", s, err)
				}
				if policy != "" {
					if c.SpecPythonPolicy == nil {
						c.SpecPythonPolicy = map[string]string{}
					}
					c.SpecPythonPolicy[name] = policy
				}
				return nil
			})
		}
		c.SandboxPolicy.Specs[name] = o
	}
}

// flagText is a TOML value as a flag's text: lists are comma-separated.
func flagText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			s, err := flagText(x)
			if _, nested := x.([]any); err != nil || nested || strings.Contains(s, ",") {
				return "", errors.New("want a list of plain values")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case time.Time:
		return "", errors.New("dates are not settings; durations are strings such as \"10m\"")
	}
	return "", fmt.Errorf("want a value, not a %T", v)
}

// typeHint says what a standard flag's value looks like, for the flag
// package's terse "parse error".
func typeHint(v flag.Value) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return " (want a duration such as \"10m\" or \"2s\")"
	case bool:
		return " (want true or false)"
	case int, int64, uint, uint64, float64:
		return " (want a number)"
	}
	return ""
}

// kernelspecName is jupyter_client's rule for kernel names (kernelspec
// finds specs by their lowercased dir name).
var kernelspecName = regexp.MustCompile(`^[a-z0-9._-]+$`)

func validSpecName(name string) []error {
	if !kernelspecName.MatchString(name) {
		return []error{&FieldError{Field: "kernelspecs", Value: name, Err: errors.New("not a kernelspec name: lowercase letters, digits, '.', '_' and '-'")}}
	}
	return nil
}

// validateAdmin checks the administrators.
func (c Config) validateAdmin() []error {
	var errs []error
	authOn := c.Token != "" || c.TokenFile != "" || c.JWT.Enabled()
	for _, u := range c.AdminUsers {
		switch {
		case strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' }):
			errs = append(errs, &FieldError{Field: "admin-users", Value: u, Err: errors.New("user names have no spaces or control characters")})
		case u == auth.Anonymous && authOn:
			errs = append(errs, &FieldError{Field: "admin-users", Value: u, Err: errors.New("\"anonymous\" is the local user without authentication; with authentication on, name authenticated users")})
		}
	}
	return errs
}

// ApplyKernelSpecs checks the per-kernelspec settings against the
// kernelspecs found at startup (a limit for a kernelspec that does not
// exist is a typo, not a no-op) and sets Kernel.ExtraBootstrap to each
// kernelspec's Python policy.
func (c *Config) ApplyKernelSpecs(specs map[string]kernelspec.Spec) error {
	var unknown []string
	for name := range c.SandboxPolicy.Specs {
		if _, ok := specs[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	for name := range c.SpecPythonPolicy {
		if _, ok := specs[name]; !ok && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("config: settings for kernelspecs that do not exist: %s (found: %s)",
			strings.Join(unknown, ", "), strings.Join(sortedKeys(specs), ", "))
	}
	c.Kernel.ExtraBootstrap = map[string]string{}
	for name := range specs {
		policy := c.PythonPolicy
		if p, ok := c.SpecPythonPolicy[name]; ok {
			policy = p
		}
		code, err := bootstrap.Policy(policy)
		if err != nil {
			return fmt.Errorf("config: kernelspec %s: %w", name, err)
		}
		if code != "" {
			c.Kernel.ExtraBootstrap[name] = code
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
