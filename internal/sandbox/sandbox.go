// Package sandbox confines kernel processes. It decorates a kernel's
// command line (Wrap) so that the process the supervisor starts is already
// confined when the kernel's first instruction runs.
//
// # Layers
//
// A Jupyter kernel runs arbitrary user code, so the boundary has to be the
// operating system's, in layers that each do one thing:
//
//   - bubblewrap (bwrap) gives the kernel its own user, pid, ipc, uts,
//     cgroup and (unless Policy.Network) network namespaces, and its own
//     mount tree: the host's / read-only, fresh /dev and /proc, private
//     tmpfs /tmp, /dev/shm and /run (host services' unix sockets live in
//     /run), empty read-only /var/tmp and /sys (only the CPU topology bound
//     back), and only the kernel's private dir bind-mounted writable, at the same path so the
//     ipc socket paths in the connection file mean the same on both sides.
//     The kernel's siblings in the runtime dir are hidden under a tmpfs.
//     bwrap also gives --die-with-parent, --new-session (no terminal
//     injection), and forbids nested user namespaces.
//   - A seccomp filter (seccomp.go), which bwrap installs right before it
//     execs the kernel, refuses system calls a notebook never needs and an
//     attacker of the host's kernel does (ptrace, mount, bpf, new
//     namespaces, kernel modules, io_uring, ...) with EPERM, and kills
//     system calls of another ABI.
//   - cgroups limit memory (with swap, where accounted), pids and CPU, and
//     let release kill whatever the kernel left behind, even processes that
//     left its process group or session. The kernel's cgroups nest under the
//     gateway's own, so limits placed on the gateway still apply. Both
//     cgroup v1 and v2 work, per controller.
//   - rlimits cap open files and the size of any one file the kernel
//     writes (RLIMIT_FSIZE), and turn core dumps off. The tmpfs mounts have
//     a size (Policy.TmpBytes).
//   - A root gateway runs the kernel as an unprivileged user (Policy.UID,
//     GID), one of its own per kernel from a range (Policy.UIDs, idPool):
//     outside the sandbox too, not just mapped inside it, so that a kernel
//     that escaped its namespaces still cannot signal, trace or read
//     another. bwrap run
//     by root would otherwise map the sandbox user to root outside, and that
//     process, though without capabilities, would still own every root file
//     it can see (other kernels' keys, /etc/shadow).
//
// # Ordering: the helper
//
// bwrap cannot set rlimits or join cgroups, and doing either after the
// kernel started (prlimit, writing its pid to cgroup.procs) leaves a window
// in which user code runs unconfined. Wrap therefore returns a command line
// that starts this binary again as a small helper (the hidden subcommand
// Helper): it joins the kernel's cgroups, sets the rlimits, hands the
// kernel dir to the sandbox user, drops to that user and then execs bwrap.
// bwrap and everything it starts inherit all of it, so no process of the
// kernel ever runs unconfined. Binaries that start sandboxed kernels must
// call MaybeRunHelper first thing in main.
//
// The helper also prepares bwrap's view of the runtime dir while it is
// still root: bwrap runs as the sandbox user, who usually cannot search the
// gateway's 0700 runtime dir, so the helper enters a mount namespace of its
// own and covers the runtime dir (or the highest ancestor that user cannot
// search) with a tmpfs that holds only the kernel's dir. The host's mounts
// are untouched.
//
// # What is not a boundary
//
// Blocking imports or builtins inside Python (audit hooks, a restricted
// __import__, removing os) is not a security boundary: the interpreter has
// many ways around any such filter (ctypes, gc introspection, frame
// objects). It can be a convenience on top of this package, never instead.
//
// Not covered here: a quota on the work dir on the host's disk
// (RLIMIT_FSIZE bounds each file, not how many the kernel writes; the
// optional Policy.WorkBytes tmpfs bounds both but does not outlive the
// process), filesystem unix sockets outside /run, /var/tmp, /tmp and
// /dev/shm that the sandbox user may connect to on the read-only host
// tree, and, with Network, the host's abstract unix sockets.
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Policy is what a sandbox allows a kernel. Zero values mean "no limit" (or
// the documented default).
type Policy struct {
	// Bwrap is the bubblewrap binary (default "/usr/bin/bwrap").
	Bwrap string
	// Network keeps the host's network namespace (bwrap --share-net). With
	// false the kernel has only its own, unconfigured loopback, so it must
	// use the ipc transport.
	Network bool
	// MemoryBytes limits memory (and swap, where the machine accounts it)
	// through the memory cgroup; on excess the kernel's OOM killer sends
	// SIGKILL. 0 means no limit.
	MemoryBytes int64
	// PIDs limits the processes and threads of the kernel, bwrap's two
	// included, through pids.max. 0 means no limit.
	PIDs int64
	// CPUQuota is the CPU time per wall time, in cores (1.0 = one core),
	// through cpu.cfs_quota_us or cpu.max. 0 means no limit.
	CPUQuota float64
	// NoFile is RLIMIT_NOFILE (soft and hard); 0 leaves the inherited limit.
	NoFile uint64
	// UID and GID are the user the kernel runs as, inside the sandbox and,
	// when the gateway is root, outside as well; 0 means 1000. They must not
	// own files the kernel should not read: a dedicated, otherwise unused id
	// is best.
	UID, GID int
	// UIDs is how many consecutive ids from UID (and from GID) kernels get,
	// one of its own for each kernel that runs or may restart (see idPool);
	// a kernel gets UID+i and GID+i. 0 or 1: every kernel is UID:GID. Only
	// a root gateway can switch users, so without root it is ignored.
	UIDs int
	// NoSeccomp turns off the seccomp filter (see seccomp.go), which is on
	// where the machine supports it.
	NoSeccomp bool
	// WorkBytes, if positive, makes the kernel's work dir (its cwd and HOME)
	// a tmpfs of that size inside the sandbox instead of the kernel dir's
	// work/ on the host's disk: a kernel that fills it gets ENOSPC, however
	// many files it writes, and its pages count against MemoryBytes. Its
	// files are lost when the kernel's process ends, restarts included.
	// 0: the work dir is on the host's disk, bounded per file only.
	WorkBytes int64
	// TmpBytes is the size of each tmpfs the kernel may write (/tmp,
	// /dev/shm and, without Network, /run); a write past it fails with
	// ENOSPC. Their pages also count against MemoryBytes, so a size below
	// the memory limit makes a full /tmp an error rather than a kill. 0
	// means a quarter of MemoryBytes, or DefaultTmpBytes without a memory
	// limit; negative means no size (the kernel's default, half the RAM).
	TmpBytes int64
	// FileBytes is RLIMIT_FSIZE (soft and hard): the largest file the
	// kernel may write anywhere, its work dir included. A write past it
	// fails with EFBIG ("File too large"; Python ignores SIGXFSZ, most other
	// programs are killed by it). It bounds each file, not their total. 0
	// means DefaultFileBytes; negative leaves the inherited limit.
	FileBytes int64
	// Specs changes limits for the kernels of some kernelspecs, by the
	// kernelspec name Wrap is given; other kernels get the fields above.
	Specs map[string]Override
}

// Override replaces some of a Policy's limits for the kernels of one
// kernelspec; nil fields keep the Policy's. The sandbox user, bwrap and the
// namespaces other than the network's are the same for every kernel.
type Override struct {
	Network     *bool
	MemoryBytes *int64
	PIDs        *int64
	CPUQuota    *float64
	NoFile      *uint64
	TmpBytes    *int64
	FileBytes   *int64
}

// ForSpec returns the policy of kernels of kernelspec spec: p with the
// spec's Override applied, and without Specs.
func (p Policy) ForSpec(spec string) Policy {
	o, ok := p.Specs[spec]
	p.Specs = nil
	if !ok {
		return p
	}
	set(&p.Network, o.Network)
	set(&p.MemoryBytes, o.MemoryBytes)
	set(&p.PIDs, o.PIDs)
	set(&p.CPUQuota, o.CPUQuota)
	set(&p.NoFile, o.NoFile)
	set(&p.TmpBytes, o.TmpBytes)
	set(&p.FileBytes, o.FileBytes)
	return p
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// check reports what is wrong with a policy's limits.
func (p Policy) check() error {
	switch {
	case p.MemoryBytes < 0:
		return fmt.Errorf("negative memory limit %d", p.MemoryBytes)
	case p.MemoryBytes > 0 && p.MemoryBytes < 16<<20:
		return fmt.Errorf("memory limit %d bytes is too small to start a kernel (at least 16 MiB)", p.MemoryBytes)
	case p.PIDs < 0:
		return fmt.Errorf("negative pids limit %d", p.PIDs)
	case p.PIDs > 0 && p.PIDs < 8:
		return fmt.Errorf("pids limit %d is too small (bwrap alone needs 2; at least 8)", p.PIDs)
	case p.CPUQuota < 0 || math.IsNaN(p.CPUQuota) || math.IsInf(p.CPUQuota, 0):
		return fmt.Errorf("invalid cpu quota %v", p.CPUQuota)
	case p.CPUQuota > 0 && cpuQuotaUS(p.CPUQuota) < 1000:
		return fmt.Errorf("cpu quota %v cores is below the kernel's minimum of 0.01", p.CPUQuota)
	case p.TmpBytes > 0 && p.TmpBytes < 1<<20:
		return fmt.Errorf("tmpfs size %d bytes is too small (at least 1 MiB)", p.TmpBytes)
	case p.FileBytes > 0 && p.FileBytes < 1<<20:
		return fmt.Errorf("file size limit %d bytes is too small for a kernel to start (at least 1 MiB)", p.FileBytes)
	case p.WorkBytes < 0 || p.WorkBytes > 0 && p.WorkBytes < 1<<20:
		return fmt.Errorf("work dir size %d bytes: want 0 (on disk) or at least 1 MiB", p.WorkBytes)
	}
	return nil
}

// limits are one policy's per-kernel settings, resolved.
type limits struct {
	p         Policy // without Specs
	tmpBytes  int64  // --size of the writable tmpfs mounts; 0: none
	fileBytes uint64 // RLIMIT_FSIZE; 0: inherited
}

func resolve(p Policy) *limits {
	l := &limits{p: p}
	switch {
	case p.TmpBytes > 0:
		l.tmpBytes = p.TmpBytes
	case p.TmpBytes == 0 && p.MemoryBytes > 0:
		l.tmpBytes = p.MemoryBytes / 4
	case p.TmpBytes == 0:
		l.tmpBytes = DefaultTmpBytes
	}
	switch {
	case p.FileBytes > 0:
		l.fileBytes = uint64(p.FileBytes)
	case p.FileBytes == 0:
		l.fileBytes = DefaultFileBytes
	}
	return l
}

// Defaults for Policy fields left zero.
const (
	DefaultBwrap     = "/usr/bin/bwrap"
	DefaultUID       = 1000
	DefaultGID       = 1000
	DefaultTmpBytes  = 1 << 30 // without a memory limit; else a quarter of it
	DefaultFileBytes = 4 << 30
)

// Sandbox confines kernels according to a Policy. It is safe for concurrent
// use.
type Sandbox struct {
	p      Policy // the default policy; Bwrap, UID and GID hold for every kernel
	self   string // this binary, which runs the helper
	root   bool   // the gateway is root: switch users, hand dirs over
	cg     *cgroupPlan
	status string

	def        *limits            // kernels of kernelspecs without an Override
	specs      map[string]*limits // by kernelspec
	tmpUnsized string             // why TmpBytes could not be applied, or ""

	mu sync.Mutex // serialises changes to the cgroup parent dirs

	memMu sync.Mutex
	mem   map[string]int64 // memory limit by kernel id, for MemoryLimitHit

	idMu sync.Mutex
	ids  *idPool // the kernels' uids and gids, by kernel dir

	seccomp    bool   // kernels get the seccomp filter
	seccompOff string // why they do not, when the policy asked for it
}

// New checks the machine once: that bwrap runs with the policy's
// namespaces (as the sandbox user), and which cgroup controllers can be
// used, nested under the gateway's own cgroups (v1 or v2). It fails only if
// the policy is invalid or bwrap does not work; controllers it cannot use
// are reported by Status, so the caller can log what is enforced. Secure by
// default: a caller should enable the sandbox whenever New succeeds.
func New(p Policy) (*Sandbox, error) {
	if p.Bwrap == "" {
		p.Bwrap = DefaultBwrap
	}
	if p.UID == 0 {
		p.UID = DefaultUID
	}
	if p.GID == 0 {
		p.GID = DefaultGID
	}
	switch {
	case !filepath.IsAbs(p.Bwrap):
		return nil, fmt.Errorf("sandbox: bwrap path %q is not absolute", p.Bwrap)
	case p.UID < 0 || p.GID < 0:
		return nil, fmt.Errorf("sandbox: uid/gid %d/%d must be positive", p.UID, p.GID)
	case p.UIDs < 0 || p.UIDs > 1<<20:
		return nil, fmt.Errorf("sandbox: %d kernel uids: want 0 to %d", p.UIDs, 1<<20)
	case int64(p.UID)+int64(max(p.UIDs, 1)) > 1<<31 || int64(p.GID)+int64(max(p.UIDs, 1)) > 1<<31:
		return nil, fmt.Errorf("sandbox: uid/gid range from %d/%d of %d ids is out of range", p.UID, p.GID, p.UIDs)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sandbox: find own binary for the helper: %w", err)
	}
	s := &Sandbox{p: p, self: self, root: os.Geteuid() == 0, def: resolve(p.ForSpec("")),
		specs: make(map[string]*limits, len(p.Specs)), mem: make(map[string]int64),
		ids: newIDPool(p.UID, max(p.UIDs, 1))}
	if !s.root {
		s.ids = newIDPool(p.UID, 1)
	}
	if _, ok := p.Specs[""]; ok {
		return nil, errors.New("sandbox: limits for a kernelspec without a name")
	}
	for name := range p.Specs {
		sp := p.ForSpec(name)
		if err := sp.check(); err != nil {
			return nil, fmt.Errorf("sandbox: kernelspec %q: %w", name, err)
		}
		s.specs[name] = resolve(sp)
	}
	if !p.NoSeccomp {
		s.seccomp = true
		if _, err := seccompFilter(); err != nil {
			s.seccomp, s.seccompOff = false, err.Error()
		} else if err := s.probeAll(); err != nil {
			// A kernel without seccomp filters, or a bwrap that refuses
			// --seccomp: confined all the same, and said so in Status.
			s.seccomp = false
			if s.probeAll() == nil {
				s.seccompOff = fmt.Sprintf("%s refused the filter: %v", p.Bwrap, err)
			} else {
				s.seccomp = true // something else is wrong: see below
			}
		}
	}
	if err := s.probeAll(); err != nil {
		size := s.def.tmpBytes
		if !s.sized() {
			return nil, err
		}
		// An old bwrap without --size: unsized tmpfs mounts (still bounded
		// by the memory cgroup) rather than no sandbox at all.
		for _, l := range s.all() {
			l.tmpBytes = 0
		}
		if s.probeAll() != nil {
			return nil, err
		}
		s.tmpUnsized = fmt.Sprintf("tmpfs size %s (%s refuses --size: %v)", formatBytes(size), p.Bwrap, err)
	}
	s.cg = probeCgroups(s.lockedDo)
	s.status = s.describe()
	return s, nil
}

// all returns the default limits and every kernelspec's.
func (s *Sandbox) all() []*limits {
	out := []*limits{s.def}
	for _, l := range s.specs {
		out = append(out, l)
	}
	return out
}

// sized reports whether any kernel gets sized tmpfs mounts.
func (s *Sandbox) sized() bool {
	return slices.ContainsFunc(s.all(), func(l *limits) bool { return l.tmpBytes > 0 })
}

// limitsFor returns the limits of kernels of kernelspec spec.
func (s *Sandbox) limitsFor(spec string) *limits {
	if l, ok := s.specs[spec]; ok {
		return l
	}
	return s.def
}

// probeAll runs probeBwrap once for each distinct set of bwrap options the
// kernels may get (the network and tmpfs sizes can differ by kernelspec).
func (s *Sandbox) probeAll() error {
	done := map[string]bool{}
	for _, l := range s.all() {
		key := strings.Join(s.baseArgs(l, s.p.UID, s.p.GID), "\x00")
		if done[key] {
			continue
		}
		done[key] = true
		if err := s.probeBwrap(l); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sandbox) lockedDo(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f()
}

// Status describes what the sandbox enforces on this machine and what it
// could not enable, for the server's log, e.g.
//
//	sandbox on: namespaces (network off), user 1000:1000, memory 512 MiB, pids 64, nofile 1024, files up to 4 GiB, tmpfs 128 MiB each, no core dumps; unavailable: cpu (...)
func (s *Sandbox) Status() string { return s.status }

func (s *Sandbox) describe() string {
	var on []string
	net := "network off"
	if s.def.p.Network {
		net = "network shared"
	}
	on = append(on, "namespaces ("+net+")")
	switch {
	case s.root && s.ids.n > 1:
		on = append(on, fmt.Sprintf("users %d-%d:%d-%d, one per kernel", s.p.UID, s.p.UID+s.ids.n-1, s.p.GID, s.p.GID+s.ids.n-1))
	case s.root:
		on = append(on, fmt.Sprintf("user %d:%d", s.p.UID, s.p.GID))
	default:
		on = append(on, fmt.Sprintf("user %d:%d inside, the gateway's uid %d outside (not root, cannot switch users)", s.p.UID, s.p.GID, os.Geteuid()))
	}
	var off []string
	for _, c := range controllers {
		h := s.cg.usable(c)
		if h == nil {
			off = append(off, c+" ("+s.cg.unavailable[c]+")")
			continue
		}
		v := "v1"
		if h.v2 {
			v = "v2"
		}
		switch c {
		case "memory":
			swap := ", swap included"
			if !h.memsw {
				swap = ", swap not limited"
			}
			on = append(on, describeMemory(s.def.p.MemoryBytes)+" (cgroup "+v+swap+")")
		case "pids":
			on = append(on, describePIDs(s.def.p.PIDs)+" (cgroup "+v+")")
		case "cpu":
			on = append(on, describeCPU(s.def.p.CPUQuota)+" (cgroup "+v+")")
		}
	}
	on = append(on, s.def.describeRlimitsAndTmp(false)...)
	if s.tmpUnsized != "" {
		off = append(off, s.tmpUnsized)
	}
	if s.seccomp {
		on = append(on, "seccomp filter")
	} else if !s.p.NoSeccomp {
		off = append(off, "seccomp ("+s.seccompOff+")")
	}
	on = append(on, "no core dumps")
	st := "sandbox on: " + strings.Join(on, ", ")
	for _, name := range slices.Sorted(maps.Keys(s.specs)) {
		st += fmt.Sprintf("; kernelspec %q: %s", name, s.describeSpec(name))
	}
	if len(off) > 0 {
		st += "; unavailable: " + strings.Join(off, "; ")
	}
	return st
}

// describeSpec says how kernelspec name's kernels differ from the default.
func (s *Sandbox) describeSpec(name string) string {
	l, d := s.specs[name], s.def
	var out []string
	if l.p.Network != d.p.Network {
		out = append(out, map[bool]string{true: "network shared", false: "network off"}[l.p.Network])
	}
	if l.p.MemoryBytes != d.p.MemoryBytes {
		out = append(out, describeMemory(l.p.MemoryBytes))
	}
	if l.p.PIDs != d.p.PIDs {
		out = append(out, describePIDs(l.p.PIDs))
	}
	if l.p.CPUQuota != d.p.CPUQuota {
		out = append(out, describeCPU(l.p.CPUQuota))
	}
	if l.p.NoFile != d.p.NoFile || l.fileBytes != d.fileBytes || l.tmpBytes != d.tmpBytes || l.p.WorkBytes != d.p.WorkBytes {
		out = append(out, l.describeRlimitsAndTmp(true)...)
	}
	if len(out) == 0 {
		return "the default limits"
	}
	return strings.Join(out, ", ")
}

func describeMemory(n int64) string {
	if n == 0 {
		return "memory unlimited"
	}
	return "memory " + formatBytes(n)
}

func describePIDs(n int64) string {
	if n == 0 {
		return "pids unlimited"
	}
	return fmt.Sprintf("pids %d", n)
}

func describeCPU(cores float64) string {
	if cores == 0 {
		return "cpu unlimited"
	}
	return "cpu " + strconv.FormatFloat(cores, 'f', -1, 64) + " cores"
}

// describeRlimitsAndTmp lists the open-files and file size limits and the
// tmpfs size; with all, also those that are off.
func (l *limits) describeRlimitsAndTmp(all bool) []string {
	var out []string
	switch {
	case l.p.NoFile > 0:
		out = append(out, fmt.Sprintf("nofile %d", l.p.NoFile))
	case all:
		out = append(out, "nofile inherited")
	}
	switch {
	case l.fileBytes > 0:
		out = append(out, "files up to "+formatBytes(int64(l.fileBytes)))
	case all:
		out = append(out, "file size unlimited")
	}
	switch {
	case l.tmpBytes > 0:
		out = append(out, "tmpfs "+formatBytes(l.tmpBytes)+" each")
	case all:
		out = append(out, "tmpfs unsized")
	}
	switch {
	case l.p.WorkBytes > 0:
		out = append(out, "work dir a tmpfs of "+formatBytes(l.p.WorkBytes))
	case all:
		out = append(out, "work dir on disk")
	}
	return out
}

func formatBytes(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// idPattern is what a kernel's cgroup may be named.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Wrap returns the command line that runs argv confined, and release, which
// kills whatever is left in the kernel's cgroups and removes them; call it
// once the process has exited (it is idempotent).
//
// dir is the kernel's private dir: its connection file, its ipc sockets
// (in subdirectories) and dir/work, the kernel's working directory and
// HOME (created if missing). It is bind-mounted at the same path; the rest
// of the host is read-only. The helper hands dir to the sandbox user just
// before it starts the kernel (see handOver): dir itself stays root's
// (group GID, mode 0710), so the kernel cannot plant files or symlinks
// where the gateway later writes as root; what the gateway put in dir
// (connection files, dir/work, ipc dirs) becomes the kernel's. dir's parent is replaced by an empty tmpfs in the sandbox, so
// a kernel never sees another kernel's dir; so is any ancestor the sandbox
// user could not search anyway. dir must therefore be a canonical path (no
// symlinks) in a directory of its own, such as the gateway's runtime dir.
//
// id names the kernel's cgroups, <own cgroup>/kernelgate/<id> in each
// hierarchy; it must be unique among running kernels. spec is the kernel's
// kernelspec: its Policy.Specs entry, if any, sets the kernel's limits.
//
// The returned command starts this binary with the subcommand Helper, which
// joins the cgroups, sets RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_CORE=0, switches to the
// sandbox user and execs bwrap. The exit status the caller sees is bwrap's:
// a kernel killed by a signal (such as the OOM killer's SIGKILL) shows as
// exit status 128+signal, bwrap's convention, not as a signal.
func (s *Sandbox) Wrap(id, spec string, argv []string, dir string) (wrapped []string, release func(), err error) {
	if !idPattern.MatchString(id) {
		return nil, nil, fmt.Errorf("sandbox: invalid kernel id %q (want 1-64 of [A-Za-z0-9_.-], starting alphanumeric)", id)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, nil, errors.New("sandbox: empty command")
	}
	l := s.limitsFor(spec)
	uid, gid, err := s.leaseID(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.releaseID(dir)
		}
	}()
	mounts, hide, err := s.mountArgs(l, dir, argv[0], uid, gid)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, nil, fmt.Errorf("sandbox: create work dir: %w", err)
	}
	if fi, err := os.Lstat(work); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("sandbox: %s is not a directory", work)
	}

	bw := append([]string{s.p.Bwrap}, s.baseArgs(l, uid, gid)...)
	bw = append(bw, mounts...)
	if l.p.WorkBytes > 0 {
		bw = append(bw, "--perms", "0700", "--size", strconv.FormatInt(l.p.WorkBytes, 10), "--tmpfs", work)
	}
	bw = append(bw, sealArgs()...)
	bw = append(bw,
		"--chdir", work,
		"--setenv", "HOME", work,
		"--setenv", "TMPDIR", "/tmp",
		"--")
	bw = append(bw, argv...)

	hs := helperSpec{Rlimits: []rlimitSpec{{Resource: "CORE"}}}
	if l.p.NoFile > 0 {
		hs.Rlimits = append(hs.Rlimits, rlimitSpec{Resource: "NOFILE", Soft: l.p.NoFile, Hard: l.p.NoFile})
	}
	if l.fileBytes > 0 {
		hs.Rlimits = append(hs.Rlimits, rlimitSpec{Resource: "FSIZE", Soft: l.fileBytes, Hard: l.fileBytes})
	}
	if s.root {
		hs.User = &userSpec{UID: uid, GID: gid}
		hs.Dir = dir
		hs.Hide = hide
	}
	hs.Seccomp = s.seccomp
	if l.p.CPUQuota > 0 {
		hs.Threads = max(1, int(math.Ceil(l.p.CPUQuota)))
	}

	cgs, err := s.createKernelCgroups(id, l)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	for _, cg := range cgs {
		hs.Cgroups = append(hs.Cgroups, filepath.Join(cg.dir, "cgroup.procs"))
	}
	args, err := encodeHelperArgs(hs, bw)
	if err != nil {
		s.removeCgroups(cgs)
		return nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	s.memMu.Lock()
	s.mem[id] = l.p.MemoryBytes
	s.memMu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.removeCgroups(cgs)
			s.memMu.Lock()
			delete(s.mem, id)
			s.memMu.Unlock()
			s.releaseID(dir)
		})
	}
	ok = true
	return append([]string{s.self, Helper}, args...), release, nil
}

// leaseID returns the uid and gid of the kernel whose dir is dir (see
// idPool); releaseID gives them back once its process is gone.
func (s *Sandbox) leaseID(dir string) (uid, gid int, err error) {
	if s.ids.n == 1 {
		return s.p.UID, s.p.GID, nil // one id that every kernel shares
	}
	s.idMu.Lock()
	defer s.idMu.Unlock()
	off, err := s.ids.acquire(dir, func(d string) bool {
		_, err := os.Lstat(d)
		return errors.Is(err, fs.ErrNotExist)
	})
	if err != nil {
		return 0, 0, err
	}
	return s.p.UID + off, s.p.GID + off, nil
}

func (s *Sandbox) releaseID(dir string) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	s.ids.release(dir)
}

// baseArgs are the bwrap options that do not depend on the kernel's dir:
// the namespaces, the user (uid:gid), and the mounts every sandbox of
// limits l has.
func (s *Sandbox) baseArgs(l *limits, uid, gid int) []string {
	a := []string{"--unshare-all"}
	if l.p.Network {
		a = append(a, "--share-net")
	}
	a = append(a,
		// --unshare-all only tries the user namespace; require it.
		"--unshare-user", "--disable-userns",
		"--uid", strconv.Itoa(uid), "--gid", strconv.Itoa(gid),
		"--die-with-parent", "--new-session",
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
	)
	a = append(a, l.tmpfs("1777", "/tmp")...)
	a = append(a, l.tmpfs("1777", "/dev/shm")...)
	// Host services' unix sockets (D-Bus, systemd, databases) live in /run
	// (and /var/run, a symlink to it): the network namespace does not
	// cover sockets in the file system.
	a = append(a, l.tmpfs("", "/run")...)
	if l.p.Network {
		// A resolv.conf that is a symlink into /run (systemd-resolved)
		// must still resolve.
		if t, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && t != "/etc/resolv.conf" && under(t, "/run") {
			a = append(a, "--ro-bind-try", t, t)
		}
	}
	// /var/tmp is shared by every user of the host and may hold their
	// files and sockets: an empty, read-only dir instead (it was read-only
	// before too).
	if fi, err := os.Lstat("/var/tmp"); err == nil && fi.IsDir() {
		a = append(a, "--perms", "0755", "--tmpfs", "/var/tmp")
	}
	// The host's /sys lists every kernel's cgroup (named after its kernel
	// dir) with its counters, the network devices and more. Only the CPU
	// topology comes back (os.cpu_count, OpenBLAS and numpy read it).
	a = append(a, "--perms", "0755", "--tmpfs", "/sys",
		"--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu")
	return a
}

// sealArgs make the empty stand-ins for /var/tmp and /sys read-only; they
// come after every other mount, since bwrap may have to create a kernel
// dir's mount point in them.
func sealArgs() []string {
	a := []string{"--remount-ro", "/sys"}
	if fi, err := os.Lstat("/var/tmp"); err == nil && fi.IsDir() {
		a = append(a, "--remount-ro", "/var/tmp")
	}
	return a
}

// tmpfs returns the bwrap options that mount a writable tmpfs at path, of
// the sandbox's tmpfs size, with mode perms ("" for bwrap's default).
func (l *limits) tmpfs(perms, path string) []string {
	var a []string
	if perms != "" {
		a = append(a, "--perms", perms)
	}
	if l.tmpBytes > 0 {
		a = append(a, "--size", strconv.FormatInt(l.tmpBytes, 10))
	}
	return append(a, "--tmpfs", path)
}

// hiddenRoots are the host paths a sandbox of limits l replaces with empty
// mounts.
func (l *limits) hiddenRoots() []string {
	return []string{"/tmp", "/dev", "/proc", "/run", "/var/tmp", "/sys"}
}

// mountArgs returns the bwrap options that make dir, and only dir, of the
// runtime dir visible and writable, and hide, the ancestor of dir that the
// helper replaces with an empty tmpfs ("" if bwrap does it).
//
// hide is dir's parent, or the topmost ancestor that the sandbox user
// cannot search if there is one (everything under it is out of that
// user's reach anyway, and the tmpfs makes the path to dir searchable). A
// root gateway's helper hides it, in a mount namespace of its own, before
// it becomes the sandbox user, because bwrap then runs as that user and must
// be able to resolve dir. Without root, bwrap runs as the gateway's user,
// which can reach dir, and hides it itself.
func (s *Sandbox) mountArgs(l *limits, dir, prog string, uid, gid int) (args []string, hide string, err error) {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return nil, "", fmt.Errorf("kernel dir %q is not an absolute, clean path", dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, "", fmt.Errorf("kernel dir: %w", err)
	}
	if real != dir {
		return nil, "", fmt.Errorf("kernel dir %s is reached through a symlink (it is %s); use the canonical path", dir, real)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, "", fmt.Errorf("kernel dir %s is not a directory", dir)
	}
	for _, bad := range []string{"/dev", "/proc", "/sys"} {
		if under(dir, bad) {
			return nil, "", fmt.Errorf("kernel dir %s is under %s", dir, bad)
		}
	}
	parent := filepath.Dir(dir)
	if parent == "/" {
		return nil, "", fmt.Errorf("kernel dir %s is directly under /; put kernel dirs in a runtime dir of their own", dir)
	}
	hide = parent
	for a := range ancestors(parent) {
		ok, err := s.searchable(a, uid, gid)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			hide = a
			break
		}
	}
	if filepath.IsAbs(prog) {
		for _, h := range append(l.hiddenRoots(), hide) {
			if under(prog, h) {
				return nil, "", fmt.Errorf("the kernel's program %s would be hidden in the sandbox (%s is replaced by an empty dir there)", prog, h)
			}
		}
	}
	args = []string{"--bind", dir, dir}
	if s.root {
		return args, hide, nil
	}
	if !slices.ContainsFunc(l.hiddenRoots(), func(r string) bool { return under(hide, r) }) {
		args = append([]string{"--tmpfs", hide}, args...)
	}
	return args, "", nil
}

// ancestors yields "/a", "/a/b", ... down to and including p (not "/").
func ancestors(p string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for i := 1; i <= len(p); i++ {
			if i == len(p) || p[i] == '/' {
				if !yield(p[:i]) {
					return
				}
			}
		}
	}
}

// under reports whether p is r or below it.
func under(p, r string) bool { return p == r || strings.HasPrefix(p, r+"/") }

// searchable reports whether the sandbox user (with only its primary group)
// may search directory p. Without root there is no user switch, so the
// gateway's own access counts.
func (s *Sandbox) searchable(p string, kuid, kgid int) (bool, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return false, fmt.Errorf("kernel dir ancestor: %w", err)
	}
	uid, gid := uint32(kuid), uint32(kgid)
	if !s.root {
		return syscall.Access(p, 1) == nil, nil // X_OK
	}
	switch {
	case st.Uid == uid:
		return st.Mode&0o100 != 0, nil
	case st.Gid == gid:
		return st.Mode&0o010 != 0, nil
	}
	return st.Mode&0o001 != 0, nil
}

// probeBwrap runs bwrap with the namespaces and mounts of a sandbox of
// limits l, as the sandbox user, on /bin/true.
func (s *Sandbox) probeBwrap(l *limits) error {
	argv := []string{s.p.Bwrap}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: probe bwrap: %w", err)
	}
	defer r.Close()
	attr := &os.ProcAttr{Dir: "/", Files: []*os.File{nil, nil, w}, Env: []string{"PATH=/usr/bin:/bin"}}
	if s.seccomp {
		prog, err := seccompFilter()
		if err != nil {
			w.Close()
			return fmt.Errorf("sandbox: %w", err)
		}
		fd, err := seccompFile(filterBytes(prog), unix.MFD_CLOEXEC)
		if err != nil {
			w.Close()
			return fmt.Errorf("sandbox: %w", err)
		}
		f := os.NewFile(uintptr(fd), "seccomp")
		defer f.Close()
		attr.Files = append(attr.Files, f) // fd 3 in bwrap
		argv = append(argv, "--seccomp", "3")
	}
	argv = append(append(append(argv, s.baseArgs(l, s.p.UID, s.p.GID)...), sealArgs()...), "--", "/bin/true")
	if s.root {
		attr.Sys = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.p.UID), Gid: uint32(s.p.GID), Groups: []uint32{}}}
	}
	proc, err := os.StartProcess(s.p.Bwrap, argv, attr)
	w.Close()
	if err != nil {
		return fmt.Errorf("sandbox: bwrap unusable: %w (install bubblewrap)", err)
	}
	timer := time.AfterFunc(10*time.Second, func() { _ = proc.Kill() })
	defer timer.Stop()
	out, _ := io.ReadAll(io.LimitReader(r, 4096))
	st, err := proc.Wait()
	if err != nil {
		return fmt.Errorf("sandbox: probe bwrap: %w", err)
	}
	if !st.Success() {
		return fmt.Errorf("sandbox: bwrap unusable as uid %d: `%s` %s: %s", s.p.UID, strings.Join(argv, " "), st, strings.TrimSpace(string(out)))
	}
	return nil
}
