package config

import (
	"flag"
	"strconv"
)

// registerSeccompFlags adds --sandbox-seccomp, the sandbox's seccomp
// filter (on by default; Policy.NoSeccomp is its negation, so that the
// policy's zero value is the secure one).
func registerSeccompFlags(fs *flag.FlagSet, c *Config) {
	fs.Var(seccompOn{&c.SandboxPolicy.NoSeccomp}, "sandbox-seccomp", "a seccomp filter in sandboxed kernels that refuses ptrace, mount, namespaces, bpf, kernel modules, io_uring and other system calls notebooks never need (EPERM); false to turn it off (env KERNELGATE_SANDBOX_SECCOMP)")
}

// seccompOn is a boolean flag that sets its target to the opposite.
type seccompOn struct{ off *bool }

func (s seccompOn) String() string {
	if s.off == nil {
		return "true"
	}
	return strconv.FormatBool(!*s.off)
}

func (s seccompOn) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	*s.off = !on
	return nil
}

func (s seccompOn) IsBoolFlag() bool { return true }
