package securitytest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// kernelPidsCgroup returns the host dir of the pids cgroup of the kernel in
// kernel dir kdir: the sandbox names it <own pids cgroup>/kernelgate-<pid>/
// <kernel dir name>-<incarnation>.
func kernelPidsCgroup(t *testing.T, kdir string) string {
	t.Helper()
	own, err := ownCgroup("pids")
	if err != nil {
		t.Fatalf("find the server's pids cgroup: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(own, fmt.Sprintf("kernelgate-%d", os.Getpid()), filepath.Base(kdir)+"-*"))
	if len(matches) != 1 {
		t.Fatalf("want one pids cgroup for kernel dir %s, found %v", kdir, matches)
	}
	return matches[0]
}

// ownCgroup returns the directory of this process's cgroup that carries
// controller ctrl: its cgroup v1 hierarchy, else cgroup2.
func ownCgroup(ctrl string) (string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	paths := map[string]string{} // controller ("" for cgroup2) → path
	for l := range strings.SplitSeq(strings.TrimSpace(string(pc)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			paths[""] = f[2]
		}
		for c := range strings.SplitSeq(f[1], ",") {
			paths[c] = f[2]
		}
	}
	for _, v2 := range []bool{false, true} {
		for l := range strings.SplitSeq(string(mi), "\n") {
			before, after, ok := strings.Cut(l, " - ")
			if !ok {
				continue
			}
			f, g := strings.Fields(before), strings.Fields(after)
			if len(f) < 5 || len(g) < 3 {
				continue
			}
			key := ctrl
			switch {
			case !v2 && g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), ctrl):
			case v2 && g[0] == "cgroup2":
				key = ""
			default:
				continue
			}
			p, ok := paths[key]
			if !ok {
				continue
			}
			rel, ok := strings.CutPrefix(p, f[3])
			if f[3] == "/" {
				rel, ok = p, true
			}
			if ok {
				return filepath.Join(f[4], rel), nil
			}
		}
	}
	return "", fmt.Errorf("no cgroup hierarchy with %s", ctrl)
}

// readInt reads a cgroup file holding one number (0 if unreadable).
func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
