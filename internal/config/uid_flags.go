package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// registerUIDFlags adds the per-kernel user range and the work dir size.
func registerUIDFlags(fs *flag.FlagSet, c *Config) {
	fs.Var(uidRange{&c.SandboxPolicy.UID, &c.SandboxPolicy.GID, &c.SandboxPolicy.UIDs}, "kernel-uid-range", "`first-last` uids (and gids) of sandboxed kernels, one of its own per kernel; ids no user or file of the machine has, at least as many as --max-kernels plus the pool (env KERNELGATE_KERNEL_UID_RANGE)")
	fs.Var(workSize{byteSize{&c.SandboxPolicy.WorkBytes}}, "kernel-work-size", "make each sandboxed kernel's work dir a tmpfs of this size, e.g. 1GiB, instead of a dir on the host's disk: bounds the bytes and files a kernel writes there (ENOSPC), counts against --kernel-memory, and loses the files when the kernel restarts; 0 keeps it on disk (env KERNELGATE_KERNEL_WORK_SIZE)")
}

// uidRange is Policy.UID, GID and UIDs as "first-last" (gids equal uids)
// or one id, which every kernel shares.
type uidRange struct{ uid, gid, n *int }

func (r uidRange) String() string {
	if r.uid == nil {
		return ""
	}
	if *r.n <= 1 {
		return strconv.Itoa(*r.uid)
	}
	return fmt.Sprintf("%d-%d", *r.uid, *r.uid+*r.n-1)
}

func (r uidRange) Set(s string) error {
	first, last, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		last = first
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(first))
	b, err2 := strconv.Atoi(strings.TrimSpace(last))
	switch {
	case err1 != nil || err2 != nil:
		return errors.New("want first-last, e.g. 61000-61999")
	case a < 1000 || b < a:
		return errors.New("want first-last with 1000 <= first <= last (never root or system ids)")
	case b-a >= 1<<20 || b >= 1<<31-1:
		return errors.New("range too large")
	}
	*r.uid, *r.gid, *r.n = a, a, b-a+1
	return nil
}

// workSize is Policy.WorkBytes: 0 (on disk) or at least 1 MiB, checked
// here so that a bad value stops the server rather than the sandbox.
type workSize struct{ byteSize }

func (w workSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n > 0 && n < 1<<20 {
		return errors.New("want 0 (on disk) or at least 1MiB")
	}
	*w.p = n
	return nil
}
