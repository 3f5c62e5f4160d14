package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Helper is the hidden subcommand of the gateway binary that starts a
// sandboxed process. Its command line is
//
//	<binary> __sandbox-exec <spec> -- <bwrap> <bwrap args...>
//
// where <spec> is one JSON object (see helperSpec), for example
//
//	{"cgroups":["/sys/fs/cgroup/pids/kernelgate/k1/cgroup.procs"],
//	 "rlimits":[{"resource":"CORE","soft":0,"hard":0},{"resource":"NOFILE","soft":256,"hard":256}],
//	 "user":{"uid":1000,"gid":1000},"dir":"/tmp/kernelgate-1/0a1b2c3d4e5f6","hide":"/tmp/kernelgate-1"}
//
// The bwrap command line stays plain arguments so that ps shows it. A
// malformed command line (unknown or missing fields, relative paths, an
// unknown rlimit, ...) is refused with exit status 127 and a message on
// stderr before anything is changed.
const Helper = "__sandbox-exec"

// helperExit is the helper's exit status when it fails before exec, the
// shell's "command could not be run".
const helperExit = 127

// helperSpec is what the helper does before it execs the command, in this
// order: join the cgroups, set the rlimits, hand dir over to the user, set
// up the mount view (Hide), drop to the user; then it marks every fd but
// stdio close-on-exec, sets no_new_privs and execs.
type helperSpec struct {
	// Cgroups are cgroup.procs files to write the helper's pid to.
	Cgroups []string `json:"cgroups"`
	// Rlimits are set for the helper and so for everything it execs.
	Rlimits []rlimitSpec `json:"rlimits"`
	// User, if set, is the uid and gid the helper switches to (dropping all
	// supplementary groups) right before exec. Only a root gateway sets it.
	User *userSpec `json:"user,omitempty"`
	// Dir, if set (with User), is the kernel's private dir: the helper hands
	// it over to User (see handOver).
	Dir string `json:"dir,omitempty"`
	// Hide, if set (with Dir), is an ancestor of Dir that the helper, still
	// root, replaces with an empty tmpfs in a mount namespace of its own,
	// with Dir bind-mounted at its path inside (see showOnly). bwrap, which
	// runs as User and inherits that view, then finds Dir even if User could
	// not search Dir's ancestors on the host, and sees none of Dir's
	// siblings.
	Hide string `json:"hide,omitempty"`
	// Seccomp, if set, has the helper pass the seccomp filter (see
	// seccompFilter) to the command, which must be bwrap, as
	// "--seccomp <fd>" right after argv[0].
	Seccomp bool `json:"seccomp,omitempty"`
	// Threads, if set, is the default for the thread pools of numeric
	// libraries (OpenBLAS, OpenMP, MKL, numexpr) that the kernel's
	// environment leaves unset: their idle workers spin, and under a CPU
	// quota the spinning eats the quota (a matplotlib plot took twice as
	// long at one core). The kernelspec's or the start's own values win.
	Threads int `json:"threads,omitempty"`
}

// threadVars are the variables Threads sets.
var threadVars = []string{"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"}

// withThreads returns env with each of threadVars set to n unless env sets
// it already.
func withThreads(env []string, n int) []string {
	if n <= 0 {
		return env
	}
	out := env
	for _, v := range threadVars {
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, v+"=") }) {
			out = append(out, v+"="+strconv.Itoa(n))
		}
	}
	return out
}

type rlimitSpec struct {
	Resource string `json:"resource"` // a key of rlimitResources
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

type userSpec struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// rlimitResources are the rlimits the helper may set.
var rlimitResources = map[string]int{
	"NOFILE": unix.RLIMIT_NOFILE,
	"CORE":   unix.RLIMIT_CORE,
	"NPROC":  unix.RLIMIT_NPROC,
	"AS":     unix.RLIMIT_AS,
	"FSIZE":  unix.RLIMIT_FSIZE,
	"CPU":    unix.RLIMIT_CPU,
}

// encodeHelperArgs returns the helper's arguments after Helper.
func encodeHelperArgs(spec helperSpec, argv []string) ([]string, error) {
	if err := spec.validate(argv); err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return append([]string{string(b), "--"}, argv...), nil
}

// parseHelperArgs parses the helper's arguments after Helper: the JSON spec,
// "--", then the command. It rejects anything malformed: unknown fields,
// trailing data, relative paths, unknown rlimits, a missing command.
func parseHelperArgs(args []string) (helperSpec, []string, error) {
	var spec helperSpec
	if len(args) < 3 {
		return spec, nil, fmt.Errorf("want <json spec> -- <command...>, got %d argument(s)", len(args))
	}
	if args[1] != "--" {
		return spec, nil, fmt.Errorf("want \"--\" after the spec, got %q", args[1])
	}
	dec := json.NewDecoder(strings.NewReader(args[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, nil, fmt.Errorf("spec: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return spec, nil, errors.New("spec: trailing data after the JSON object")
	}
	if !bytes.HasPrefix(bytes.TrimSpace([]byte(args[0])), []byte("{")) {
		return spec, nil, errors.New("spec: not a JSON object")
	}
	argv := args[2:]
	if err := spec.validate(argv); err != nil {
		return spec, nil, err
	}
	return spec, argv, nil
}

func (s helperSpec) validate(argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command after --")
	}
	if !filepath.IsAbs(argv[0]) {
		return fmt.Errorf("command %q is not an absolute path", argv[0])
	}
	for _, c := range s.Cgroups {
		if !filepath.IsAbs(c) || filepath.Clean(c) != c || filepath.Base(c) != "cgroup.procs" {
			return fmt.Errorf("spec: cgroup %q is not an absolute, clean path to a cgroup.procs file", c)
		}
	}
	seen := map[string]bool{}
	for _, r := range s.Rlimits {
		if _, ok := rlimitResources[r.Resource]; !ok {
			return fmt.Errorf("spec: unknown rlimit %q", r.Resource)
		}
		if seen[r.Resource] {
			return fmt.Errorf("spec: rlimit %s given twice", r.Resource)
		}
		seen[r.Resource] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("spec: rlimit %s soft %d above hard %d", r.Resource, r.Soft, r.Hard)
		}
	}
	if s.User != nil && (s.User.UID <= 0 || s.User.GID <= 0) {
		return fmt.Errorf("spec: user %d:%d: uid and gid must be positive (never root)", s.User.UID, s.User.GID)
	}
	if s.Dir != "" {
		if s.User == nil {
			return errors.New("spec: dir needs a user to hand it to")
		}
		if !filepath.IsAbs(s.Dir) || filepath.Clean(s.Dir) != s.Dir || s.Dir == "/" {
			return fmt.Errorf("spec: dir %q is not an absolute, clean path below /", s.Dir)
		}
	}
	if s.Hide != "" {
		if s.Dir == "" {
			return errors.New("spec: hide needs a dir")
		}
		if s.Hide == "/" || filepath.Clean(s.Hide) != s.Hide || !strings.HasPrefix(s.Dir, s.Hide+"/") {
			return fmt.Errorf("spec: hide %q is not an ancestor of dir %q below /", s.Hide, s.Dir)
		}
	}
	return nil
}

// MaybeRunHelper runs the sandbox helper if this process was started as one
// (os.Args[1] == Helper) and never returns then: it execs the sandboxed
// command or exits with status 127 after a message on stderr. Otherwise it
// returns at once. Call it first thing in main (and in TestMain of tests
// that start sandboxed processes), before anything else starts.
func MaybeRunHelper() {
	if len(os.Args) < 2 || os.Args[1] != Helper {
		return
	}
	err := runHelper(os.Args[2:])
	fmt.Fprintf(os.Stderr, "kernelgate sandbox helper: %v\n", err)
	os.Exit(helperExit)
}

// runHelper confines the current process as spec says and execs the
// command. It returns only on failure.
func runHelper(args []string) error {
	spec, argv, err := parseHelperArgs(args)
	if err != nil {
		return fmt.Errorf("bad arguments: %w", err)
	}
	// One thread from here on: the mount namespace and no_new_privs are per
	// thread, and this must be the thread that execs.
	runtime.LockOSThread()
	pid := strconv.Itoa(os.Getpid())
	for _, c := range spec.Cgroups {
		if err := writeFile(c, pid); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	for _, r := range spec.Rlimits {
		// syscall.Setrlimit, not a raw prlimit: the Go runtime raised its own
		// NOFILE soft limit at startup and would restore the original one on
		// exec unless told about the change.
		if err := syscall.Setrlimit(rlimitResources[r.Resource], &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("set rlimit %s to %d/%d: %w", r.Resource, r.Soft, r.Hard, err)
		}
	}
	if u := spec.User; u != nil {
		if spec.Dir != "" {
			if err := handOver(spec.Dir, u.UID, u.GID); err != nil {
				return fmt.Errorf("hand %s to %d:%d: %w", spec.Dir, u.UID, u.GID, err)
			}
		}
		if spec.Hide != "" {
			if err := showOnly(spec.Dir, spec.Hide); err != nil {
				return fmt.Errorf("mount view of %s: %w", spec.Dir, err)
			}
		}
		// Go applies these to every thread of the process.
		if err := syscall.Setgroups(nil); err != nil {
			return fmt.Errorf("drop supplementary groups: %w", err)
		}
		if err := syscall.Setresgid(u.GID, u.GID, u.GID); err != nil {
			return fmt.Errorf("setresgid %d: %w", u.GID, err)
		}
		if err := syscall.Setresuid(u.UID, u.UID, u.UID); err != nil {
			return fmt.Errorf("setresuid %d: %w", u.UID, err)
		}
		if os.Getuid() != u.UID || os.Geteuid() != u.UID || os.Getgid() != u.GID || os.Getegid() != u.GID {
			return fmt.Errorf("still uid %d/%d gid %d/%d after switching to %d:%d", os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), u.UID, u.GID)
		}
	}
	// The gateway may have inherited fds it never opened (Go marks only its
	// own close-on-exec), and bwrap passes every open fd on: none may reach
	// the kernel.
	if err := cloexecFrom(3); err != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	if spec.Seccomp {
		// The one fd bwrap inherits; it reads the filter and closes it
		// before it starts the kernel.
		prog, err := seccompFilter()
		if err != nil {
			return err
		}
		fd, err := seccompFile(filterBytes(prog), 0)
		if err != nil {
			return err
		}
		argv = append([]string{argv[0], "--seccomp", strconv.Itoa(fd)}, argv[1:]...)
	}
	// bwrap sets no_new_privs for the sandboxed process itself; setting it
	// here as well means nothing exec'd from here can gain privileges.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	err = unix.Exec(argv[0], argv, withThreads(os.Environ(), spec.Threads))
	return fmt.Errorf("exec %s: %w", argv[0], err)
}

// showOnly gives the calling thread (locked to its goroutine, and about to
// exec) a private mount namespace in which hide is an empty tmpfs that
// holds only dir, bind-mounted at its own path. Mounts propagate from the
// host into the namespace, never back.
func showOnly(dir, hide string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	// Open dir before hide is covered (and after the unshare: a bind source
	// must be in the caller's namespace); mount(2) follows the magic link.
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mount("tmpfs", hide, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", hide, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(fd), dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	return nil
}

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC (Linux 5.11), which x/sys lacks.
const closeRangeCloexec = 1 << 2

// cloexecFrom marks every fd from first on close-on-exec, so that exec
// closes them and they stay usable until then.
func cloexecFrom(first int) error {
	if err := unix.CloseRange(uint(first), ^uint(0), closeRangeCloexec); err == nil {
		return nil
	}
	// Older kernels: one by one.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
			if err != nil && !errors.Is(err, unix.EBADF) {
				return err
			}
		}
	}
	return nil
}
