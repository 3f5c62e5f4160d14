package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The controllers a kernel's cgroups use, in the order Status reports them.
var controllers = []string{"memory", "pids", "cpu"}

// parentName is the directory, under the gateway's own cgroup in each
// hierarchy, that holds one cgroup per kernel. It names this process, so two
// servers (or test binaries) on one machine never clean up each other's.
var parentName = "kernelgate-" + strconv.Itoa(os.Getpid())

// cpuPeriod is the CFS period used with CPUQuota, in microseconds (the
// kernel's default).
const cpuPeriod = 100000

// mount is one line of /proc/self/mountinfo that mounts a cgroup hierarchy.
type mount struct {
	root  string   // the hierarchy path mounted (field 4)
	point string   // where it is mounted (field 5)
	v2    bool     // fstype cgroup2
	opts  []string // super options: for v1, the controllers ("memory", "cpu", ...)
}

// parseMountinfo returns the cgroup and cgroup2 mounts in a
// /proc/self/mountinfo text.
func parseMountinfo(data []byte) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
		before, after, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo: no separator in %q", line)
		}
		f := strings.Fields(before)
		g := strings.Fields(after)
		if len(f) < 6 || len(g) < 3 {
			return nil, fmt.Errorf("mountinfo: short line %q", line)
		}
		fstype := g[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		out = append(out, mount{
			root:  unescapeMountinfo(f[3]),
			point: unescapeMountinfo(f[4]),
			v2:    fstype == "cgroup2",
			opts:  strings.Split(g[2], ","),
		})
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the kernel's octal escaping of space, tab,
// newline and backslash (\040 etc.) in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseProcCgroup parses /proc/self/cgroup. Keys are v1 controller names
// (each one of a co-mounted list such as "cpu,cpuacct" gets its own key),
// and "" for the cgroup2 hierarchy ("0::/path").
func parseProcCgroup(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			return nil, fmt.Errorf("/proc/self/cgroup: malformed line %q", line)
		}
		if parts[0] == "0" && parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c != "" {
				out[c] = parts[2]
			}
		}
	}
	return out, nil
}

// location is where a controller lives: the hierarchy's mount and our own
// cgroup's directory in it.
type location struct {
	mount string // mount point: identifies the hierarchy
	own   string // our own cgroup, as a directory under the mount point
	v2    bool
}

// locate finds the hierarchy of controller ctrl: a v1 hierarchy that has
// it, otherwise the cgroup2 hierarchy (whether cgroup2 really offers it is
// checked later, against cgroup.controllers).
func locate(ctrl string, mounts []mount, procCg map[string]string) (location, error) {
	for _, v2 := range []bool{false, true} {
		key := ctrl
		if v2 {
			key = ""
		}
		var found []mount
		for _, m := range mounts {
			if m.v2 == v2 && (v2 || slices.Contains(m.opts, ctrl)) {
				found = append(found, m)
			}
		}
		if len(found) == 0 {
			continue
		}
		own, ok := procCg[key]
		if !ok {
			h := "cgroup2"
			if !v2 {
				h = "the " + ctrl + " hierarchy"
			}
			return location{}, fmt.Errorf("/proc/self/cgroup names no cgroup in %s", h)
		}
		for _, m := range found {
			rel, ok := within(own, m.root)
			if ok {
				return location{mount: m.point, own: filepath.Join(m.point, rel), v2: v2}, nil
			}
		}
		return location{}, fmt.Errorf("our cgroup %s is outside every mount of its hierarchy (%s is mounted from %s)", own, found[0].point, found[0].root)
	}
	return location{}, fmt.Errorf("no cgroup hierarchy (v1 or v2) is mounted with the %s controller", ctrl)
}

// within reports whether path p lies at or under root, and p relative to it.
func within(p, root string) (string, bool) {
	p, root = filepath.Clean(p), filepath.Clean(root)
	if root == "/" {
		return p, true
	}
	if p == root {
		return "/", true
	}
	if strings.HasPrefix(p, root+"/") {
		return p[len(root):], true
	}
	return "", false
}

// hierarchy is one cgroup hierarchy the sandbox uses, with the controllers
// of ours it carries. A kernel gets one cgroup in each.
type hierarchy struct {
	location
	ctrls []string
	memsw bool // v1 memory.memsw.* (or v2 memory.swap.max) exists
}

// base is the parent of the kernels' cgroups in h.
func (h *hierarchy) base() string { return filepath.Join(h.own, parentName) }

// cgroupPlan is the result of probing the machine's cgroups.
type cgroupPlan struct {
	hier        []*hierarchy
	unavailable map[string]string // controller -> why not
}

// usable reports the hierarchy that carries ctrl, or nil.
func (c *cgroupPlan) usable(ctrl string) *hierarchy {
	for _, h := range c.hier {
		if slices.Contains(h.ctrls, ctrl) {
			return h
		}
	}
	return nil
}

// probeCgroups finds, for each controller, a hierarchy we can create child
// cgroups in, by creating (and removing) a probe cgroup under
// <own>/kernelgate. lockedDo runs its function under the lock that
// serialises changes to the parent directories.
func probeCgroups(lockedDo func(func() error) error) *cgroupPlan {
	plan := &cgroupPlan{unavailable: map[string]string{}}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		for _, c := range controllers {
			plan.unavailable[c] = err.Error()
		}
		return plan
	}
	mounts, err1 := parseMountinfo(mi)
	pc, err2 := os.ReadFile("/proc/self/cgroup")
	var procCg map[string]string
	if err2 == nil {
		procCg, err2 = parseProcCgroup(pc)
	}
	if err := errors.Join(err1, err2); err != nil {
		for _, c := range controllers {
			plan.unavailable[c] = err.Error()
		}
		return plan
	}
	byMount := map[string]*hierarchy{}
	for _, ctrl := range controllers {
		loc, err := locate(ctrl, mounts, procCg)
		if err == nil {
			h := byMount[loc.mount]
			if h == nil {
				h = &hierarchy{location: loc}
			}
			err = lockedDo(func() error { return probeController(h, ctrl) })
			if err == nil {
				if byMount[loc.mount] == nil {
					byMount[loc.mount] = h
					plan.hier = append(plan.hier, h)
				}
				h.ctrls = append(h.ctrls, ctrl)
				continue
			}
		}
		plan.unavailable[ctrl] = err.Error()
	}
	_ = lockedDo(func() error {
		for _, h := range plan.hier {
			removeParentIfEmpty(h)
			sweepStale(h)
		}
		return nil
	})
	return plan
}

// sweepStale removes the kernel cgroups a gateway that died without
// cleaning up (SIGKILL, a crash) left next to ours: parents named after a
// process that no longer exists. Whatever still runs in them is killed.
func sweepStale(h *hierarchy) {
	entries, err := os.ReadDir(h.own)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		pidText, ok := strings.CutPrefix(name, "kernelgate-")
		if !e.IsDir() || !ok || name == parentName {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue // not ours, or its gateway still lives (or the pid was reused: leave it)
		}
		parent := filepath.Join(h.own, name)
		kids, _ := os.ReadDir(parent)
		deadline := time.Now().Add(5 * time.Second)
		for _, k := range kids {
			if k.IsDir() {
				cg := kernelCgroup{h: h, dir: filepath.Join(parent, k.Name())}
				killAll(cg, deadline)
				_ = unix.Rmdir(cg.dir)
			}
		}
		_ = unix.Rmdir(parent)
	}
}

// probeController checks that ctrl works in h: for cgroup2 that it is
// offered and can be delegated; then that a child cgroup can be created
// under the parent and its limit file written.
func probeController(h *hierarchy, ctrl string) error {
	if h.v2 {
		avail, err := os.ReadFile(filepath.Join(h.own, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("cgroup2: %w", err)
		}
		if !slices.Contains(strings.Fields(string(avail)), ctrl) {
			return fmt.Errorf("cgroup2 at %s does not offer the %s controller (it has %q)", h.own, ctrl, strings.TrimSpace(string(avail)))
		}
	}
	if err := ensureParent(h, []string{ctrl}); err != nil {
		return err
	}
	probe := filepath.Join(h.base(), fmt.Sprintf("probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return fmt.Errorf("create probe cgroup: %w", err)
	}
	defer os.Remove(probe)
	var file, value string
	switch {
	case ctrl == "memory" && !h.v2:
		file, value = "memory.limit_in_bytes", "-1"
		h.memsw = exists(filepath.Join(probe, "memory.memsw.limit_in_bytes"))
	case ctrl == "memory":
		file, value = "memory.max", "max"
		h.memsw = exists(filepath.Join(probe, "memory.swap.max"))
	case ctrl == "pids":
		file, value = "pids.max", "max"
	case ctrl == "cpu" && !h.v2:
		file, value = "cpu.cfs_quota_us", "-1"
	case ctrl == "cpu":
		file, value = "cpu.max", "max"
	}
	if err := writeFile(filepath.Join(probe, file), value); err != nil {
		return err
	}
	return nil
}

// ensureParent creates <own>/kernelgate if needed; for cgroup2 it also
// enables ctrls for the children of our own cgroup and of the parent.
// Callers hold the sandbox's cgroup lock.
func ensureParent(h *hierarchy, ctrls []string) error {
	if h.v2 {
		if err := enableSubtree(h.own, ctrls); err != nil {
			return fmt.Errorf("%w (cgroup2's \"no internal processes\" rule: the gateway must run in a cgroup that may have children, e.g. the root of a delegated subtree)", err)
		}
	}
	if err := os.Mkdir(h.base(), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", h.base(), err)
	}
	if h.v2 {
		return enableSubtree(h.base(), ctrls)
	}
	return nil
}

// enableSubtree makes sure dir/cgroup.subtree_control has every one of ctrls.
func enableSubtree(dir string, ctrls []string) error {
	path := filepath.Join(dir, "cgroup.subtree_control")
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cgroup2: %w", err)
	}
	have := strings.Fields(string(cur))
	for _, c := range ctrls {
		if !slices.Contains(have, c) {
			if err := writeFile(path, "+"+c); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeParentIfEmpty removes <own>/kernelgate when no kernel cgroup is left
// in it. rmdir of a cgroup with children fails (EBUSY), which is fine: then
// it is still in use, by us or by another gateway in the same cgroup.
func removeParentIfEmpty(h *hierarchy) { _ = unix.Rmdir(h.base()) }

// kernelCgroup is one kernel's cgroup in one hierarchy.
type kernelCgroup struct {
	h   *hierarchy
	dir string
}

// createKernelCgroups creates the cgroups of kernel id in every usable
// hierarchy and writes the policy's limits. On error nothing is left behind.
func (s *Sandbox) createKernelCgroups(id string, l *limits) ([]kernelCgroup, error) {
	var made []kernelCgroup
	fail := func(err error) ([]kernelCgroup, error) {
		s.removeCgroups(made)
		return nil, err
	}
	for _, h := range s.cg.hier {
		dir := filepath.Join(h.base(), id)
		err := s.lockedDo(func() error {
			// Another gateway in the same cgroup may remove the shared parent
			// between our mkdirs (it does so when it sees it empty): retry.
			for range 5 {
				if err := ensureParent(h, h.ctrls); err != nil {
					return err
				}
				err := os.Mkdir(dir, 0o755)
				if errors.Is(err, fs.ErrExist) {
					// A stale group of a crashed run with the same name: reuse
					// it only if it is empty (rmdir refuses otherwise).
					if rerr := unix.Rmdir(dir); rerr != nil {
						return fmt.Errorf("cgroup %s already exists and is in use: %w", dir, rerr)
					}
					err = os.Mkdir(dir, 0o755)
				}
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return fmt.Errorf("create cgroup: %w", err)
				}
				return nil
			}
			return fmt.Errorf("create cgroup %s: parent keeps disappearing", dir)
		})
		if err != nil {
			return fail(err)
		}
		made = append(made, kernelCgroup{h: h, dir: dir})
		if err := writeLimits(h, dir, l.p); err != nil {
			return fail(fmt.Errorf("cgroup %s: %w", dir, err))
		}
	}
	return made, nil
}

// writeLimits writes p's limits for h's controllers into dir.
func writeLimits(h *hierarchy, dir string, p Policy) error {
	for _, c := range h.ctrls {
		var err error
		switch {
		case c == "memory" && p.MemoryBytes > 0 && !h.v2:
			// The memory limit first: memsw must never be below it.
			v := strconv.FormatInt(p.MemoryBytes, 10)
			err = writeFile(filepath.Join(dir, "memory.limit_in_bytes"), v)
			if err == nil && h.memsw {
				err = writeFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), v)
			}
		case c == "memory" && p.MemoryBytes > 0:
			err = writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(p.MemoryBytes, 10))
			if err == nil && h.memsw {
				err = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
			}
			// Kill the whole kernel, not just its largest process, on OOM.
			if oom := filepath.Join(dir, "memory.oom.group"); err == nil && exists(oom) {
				err = writeFile(oom, "1")
			}
		case c == "pids" && p.PIDs > 0:
			err = writeFile(filepath.Join(dir, "pids.max"), strconv.FormatInt(p.PIDs, 10))
		case c == "cpu" && p.CPUQuota > 0 && !h.v2:
			err = writeFile(filepath.Join(dir, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod))
			if err == nil {
				err = writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), strconv.FormatInt(cpuQuotaUS(p.CPUQuota), 10))
			}
		case c == "cpu" && p.CPUQuota > 0:
			err = writeFile(filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", cpuQuotaUS(p.CPUQuota), cpuPeriod))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func cpuQuotaUS(cores float64) int64 { return int64(cores*cpuPeriod + 0.5) }

// removeCgroups kills every process left in the cgroups and removes them,
// then the shared parents if they became empty. It waits up to about 5 s for
// the processes to go.
func (s *Sandbox) removeCgroups(cgs []kernelCgroup) {
	deadline := time.Now().Add(5 * time.Second)
	for _, cg := range cgs {
		killAll(cg, deadline)
		for {
			err := unix.Rmdir(cg.dir)
			if err == nil || errors.Is(err, unix.ENOENT) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	_ = s.lockedDo(func() error {
		for _, cg := range cgs {
			removeParentIfEmpty(cg.h)
		}
		return nil
	})
}

// killAll SIGKILLs the processes in cg until none is left or the deadline
// passes. Pids are signalled through pidfds that are opened before the pid
// is confirmed to still be in the cgroup, so a recycled pid is never hit.
func killAll(cg kernelCgroup, deadline time.Time) {
	if cg.h.v2 {
		// cgroup.kill (Linux 5.14+) kills the whole subtree atomically.
		_ = writeFile(filepath.Join(cg.dir, "cgroup.kill"), "1")
	}
	procs := filepath.Join(cg.dir, "cgroup.procs")
	for {
		pids, err := readPids(procs)
		if err != nil || len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		fds := map[int]int{}
		for _, pid := range pids {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				fds[pid] = fd
			}
		}
		still, _ := readPids(procs)
		for pid, fd := range fds {
			if slices.Contains(still, pid) {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			}
			unix.Close(fd)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPids(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for f := range strings.FieldsSeq(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// writeFile writes one value to a cgroup control file, which must exist.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
