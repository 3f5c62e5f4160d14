package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// registerSandboxFlags adds the sandbox limits that have no flag in
// config.go, and the Python policy.
func registerSandboxFlags(fs *flag.FlagSet, c *Config) {
	fs.Uint64Var(&c.SandboxPolicy.NoFile, "kernel-nofile", c.SandboxPolicy.NoFile, "open files per sandboxed kernel (RLIMIT_NOFILE), 0 to inherit the server's (env KERNELGATE_KERNEL_NOFILE)")
	fs.Var(fileSize{&c.SandboxPolicy.FileBytes}, "kernel-file-size", "largest file a sandboxed kernel may write (RLIMIT_FSIZE), e.g. 4GiB; 0 for no limit (env KERNELGATE_KERNEL_FILE_SIZE)")
	fs.Var(tmpSize{&c.SandboxPolicy.TmpBytes}, "kernel-tmp-size", "size of each sandboxed kernel's /tmp, /dev/shm and /run, e.g. 512MiB; auto for a quarter of --kernel-memory, 0 for unsized (env KERNELGATE_KERNEL_TMP_SIZE)")
	fs.StringVar(&c.PythonPolicy, "python-policy", c.PythonPolicy, "Python-level policy in kernels, defence in depth only: none, or audit (an audit hook refuses subprocesses and non-loopback sockets with PermissionError) (env KERNELGATE_PYTHON_POLICY)")
}

// parseSize reads "2GiB", "512M", "1.5G" or "1048576" as bytes. Units are
// binary: 1K = 1KB = 1KiB = 1024.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	shift := uint(0)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{
		{"kib", 10}, {"mib", 20}, {"gib", 30}, {"tib", 40},
		{"kb", 10}, {"mb", 20}, {"gb", 30}, {"tb", 40},
		{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40},
		{"b", 0},
	} {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, shift = strings.TrimSpace(num), u.shift
			break
		}
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64>>shift {
			return 0, fmt.Errorf("size %q is out of range", s)
		}
		return n << shift, nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*float64(int64(1)<<shift) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want bytes, optionally with a unit: K, M, G or T (binary: 1K = 1024), e.g. 512MiB", s)
	}
	return int64(f * float64(int64(1)<<shift)), nil
}

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// byteSize is a flag.Value of a size; 0 means no limit.
type byteSize struct{ p *int64 }

func (b byteSize) String() string {
	if b.p == nil {
		return ""
	}
	return formatSize(*b.p)
}

func (b byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*b.p = n
	}
	return err
}

// fileSize is Policy.FileBytes as a flag: 0 means no limit (stored as -1,
// since the policy's 0 is its default).
type fileSize struct{ p *int64 }

func (f fileSize) String() string {
	if f.p == nil || *f.p < 0 {
		return "0"
	}
	if *f.p == 0 {
		return formatSize(sandbox.DefaultFileBytes)
	}
	return formatSize(*f.p)
}

func (f fileSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n == 0 {
		n = -1
	}
	*f.p = n
	return nil
}

// tmpSize is Policy.TmpBytes as a flag: "auto" (the policy's 0: a quarter
// of the memory limit), a size, or 0 for unsized (stored as -1).
type tmpSize struct{ p *int64 }

func (t tmpSize) String() string {
	switch {
	case t.p == nil || *t.p == 0:
		return "auto"
	case *t.p < 0:
		return "0"
	}
	return formatSize(*t.p)
}

func (t tmpSize) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*t.p = 0
		return nil
	}
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n == 0 {
		n = -1
	}
	*t.p = n
	return nil
}

// validateSandbox checks the sandbox limits (the server's and each
// kernelspec's) and the Python policies, naming the setting at fault.
func (c Config) validateSandbox() []error {
	errs := limitErrors(func(key string) string { return "kernel-" + key }, c.SandboxPolicy)
	for _, name := range sortedKeys(c.SandboxPolicy.Specs) {
		errs = append(errs, validSpecName(name)...)
		errs = append(errs, limitErrors(func(key string) string { return "kernelspecs." + name + "." + key }, c.SandboxPolicy.ForSpec(name))...)
	}
	if _, err := bootstrap.Policy(c.PythonPolicy); err != nil {
		errs = append(errs, &FieldError{Field: "python-policy", Value: c.PythonPolicy, Err: errors.New("want none or audit")})
	}
	for _, name := range sortedKeys(c.SpecPythonPolicy) {
		if _, ok := c.SandboxPolicy.Specs[name]; !ok {
			errs = append(errs, validSpecName(name)...)
		}
		if _, err := bootstrap.Policy(c.SpecPythonPolicy[name]); err != nil {
			errs = append(errs, &FieldError{Field: "kernelspecs." + name + ".python-policy", Value: c.SpecPythonPolicy[name], Err: errors.New("want none or audit")})
		}
	}
	return errs
}

// limitErrors checks one policy's limits; field names a limit's setting.
func limitErrors(field func(key string) string, p sandbox.Policy) []error {
	var errs []error
	bad := func(key, value, why string) {
		errs = append(errs, &FieldError{Field: field(key), Value: value, Err: errors.New(why)})
	}
	if p.MemoryBytes < 0 || p.MemoryBytes > 0 && p.MemoryBytes < 16<<20 {
		bad("memory", formatSize(p.MemoryBytes), "want 0 (no limit) or at least 16MiB, enough to start a kernel")
	}
	if p.PIDs < 0 || p.PIDs > 0 && p.PIDs < 8 {
		bad("pids", strconv.FormatInt(p.PIDs, 10), "want 0 (no limit) or at least 8 (bwrap alone needs 2)")
	}
	if p.CPUQuota < 0 || math.IsNaN(p.CPUQuota) || math.IsInf(p.CPUQuota, 0) || p.CPUQuota > 0 && p.CPUQuota < 0.01 {
		bad("cpus", strconv.FormatFloat(p.CPUQuota, 'g', -1, 64), "want 0 (no limit) or at least 0.01 cores")
	}
	if p.NoFile > 0 && p.NoFile < 64 {
		bad("nofile", strconv.FormatUint(p.NoFile, 10), "want 0 (inherit) or at least 64 (a kernel opens a few dozen files and sockets)")
	}
	if p.FileBytes > 0 && p.FileBytes < 1<<20 {
		bad("file-size", formatSize(p.FileBytes), "want 0 (no limit) or at least 1MiB")
	}
	if p.TmpBytes > 0 && p.TmpBytes < 1<<20 {
		bad("tmp-size", formatSize(p.TmpBytes), "want auto, 0 (unsized) or at least 1MiB")
	}
	return errs
}
