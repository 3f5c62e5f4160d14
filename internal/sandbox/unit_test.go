package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseHelperArgs(t *testing.T) {
	good := `{"cgroups":["/sys/fs/cgroup/pids/kernelgate/k/cgroup.procs"],"rlimits":[{"resource":"NOFILE","soft":64,"hard":64}],"user":{"uid":1000,"gid":1000},"dir":"/run/kg/k","hide":"/run/kg"}`
	spec, argv, err := parseHelperArgs([]string{good, "--", "/usr/bin/bwrap", "--", "/usr/bin/python3"})
	if err != nil {
		t.Fatal(err)
	}
	want := helperSpec{
		Cgroups: []string{"/sys/fs/cgroup/pids/kernelgate/k/cgroup.procs"},
		Rlimits: []rlimitSpec{{Resource: "NOFILE", Soft: 64, Hard: 64}},
		User:    &userSpec{UID: 1000, GID: 1000},
		Dir:     "/run/kg/k",
		Hide:    "/run/kg",
	}
	if d := cmp.Diff(want, spec); d != "" {
		t.Errorf("spec (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/usr/bin/bwrap", "--", "/usr/bin/python3"}, argv); d != "" {
		t.Errorf("argv (-want +got):\n%s", d)
	}

	// encode and parse round-trip.
	enc, err := encodeHelperArgs(want, []string{"/usr/bin/bwrap", "x"})
	if err != nil {
		t.Fatal(err)
	}
	spec2, argv2, err := parseHelperArgs(enc)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, spec2); d != "" || !slices.Equal(argv2, []string{"/usr/bin/bwrap", "x"}) {
		t.Errorf("round trip: %s %q", d, argv2)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"too few", []string{"{}", "--"}, "want <json spec> -- <command...>"},
		{"no separator", []string{"{}", "/bin/true", "x"}, `want "--" after the spec`},
		{"not json", []string{"{", "--", "/bin/true"}, "spec: unexpected EOF"},
		{"null", []string{"null", "--", "/bin/true"}, "not a JSON object"},
		{"array", []string{"[]", "--", "/bin/true"}, "spec: json: cannot unmarshal array"},
		{"unknown field", []string{`{"cgroup":[]}`, "--", "/bin/true"}, `unknown field "cgroup"`},
		{"trailing", []string{`{} {}`, "--", "/bin/true"}, "trailing data"},
		{"relative cgroup", []string{`{"cgroups":["a/cgroup.procs"]}`, "--", "/bin/true"}, "not an absolute, clean path to a cgroup.procs file"},
		{"not procs", []string{`{"cgroups":["/sys/fs/cgroup/pids/x/pids.max"]}`, "--", "/bin/true"}, "cgroup.procs"},
		{"unclean cgroup", []string{`{"cgroups":["/sys/fs/cgroup/../x/cgroup.procs"]}`, "--", "/bin/true"}, "cgroup.procs"},
		{"unknown rlimit", []string{`{"rlimits":[{"resource":"STACK"}]}`, "--", "/bin/true"}, `unknown rlimit "STACK"`},
		{"rlimit twice", []string{`{"rlimits":[{"resource":"CORE"},{"resource":"CORE"}]}`, "--", "/bin/true"}, "given twice"},
		{"soft above hard", []string{`{"rlimits":[{"resource":"NOFILE","soft":10,"hard":5}]}`, "--", "/bin/true"}, "soft 10 above hard 5"},
		{"negative rlimit", []string{`{"rlimits":[{"resource":"NOFILE","soft":-1,"hard":5}]}`, "--", "/bin/true"}, "cannot unmarshal number -1"},
		{"root user", []string{`{"user":{"uid":0,"gid":1000}}`, "--", "/bin/true"}, "never root"},
		{"dir without user", []string{`{"dir":"/run/kg/k"}`, "--", "/bin/true"}, "dir needs a user"},
		{"relative dir", []string{`{"user":{"uid":1,"gid":1},"dir":"kg/k"}`, "--", "/bin/true"}, "not an absolute, clean path"},
		{"hide without dir", []string{`{"hide":"/run"}`, "--", "/bin/true"}, "hide needs a dir"},
		{"hide not ancestor", []string{`{"user":{"uid":1,"gid":1},"dir":"/run/kg/k","hide":"/run/k"}`, "--", "/bin/true"}, "not an ancestor"},
		{"hide root", []string{`{"user":{"uid":1,"gid":1},"dir":"/run/kg/k","hide":"/"}`, "--", "/bin/true"}, "not an ancestor"},
		{"hide is dir", []string{`{"user":{"uid":1,"gid":1},"dir":"/run/kg/k","hide":"/run/kg/k"}`, "--", "/bin/true"}, "not an ancestor"},
		{"relative command", []string{`{}`, "--", "bwrap"}, `command "bwrap" is not an absolute path`},
	}
	for _, tt := range bad {
		_, _, err := parseHelperArgs(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

// This machine's layout (cgroup v1 with a memory cgroup of its own, and a
// hugetlb-only cgroup2), a pure cgroup2 host, and a container with cgroup
// namespaces and co-mounted cpu,cpuacct.
func TestLocate(t *testing.T) {
	hybridMI := `22 1 0:20 / / rw - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/cpu rw shared:5 - cgroup cgroup rw,cpu
36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
`
	hybridCg := "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"

	v2MI := `25 1 0:21 / / rw - ext4 /dev/sda rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	v2Cg := "0::/system.slice/kernelgate.service\n"

	containerMI := `40 39 0:33 /docker/c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
41 39 0:34 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
42 39 0:35 /docker/c1 /sys/fs/cgroup/my\040pids rw - cgroup cgroup rw,pids
`
	containerCg := "5:cpu,cpuacct:/docker/c1\n4:memory:/docker/c1/sub\n3:pids:/elsewhere\n"

	for _, tt := range []struct {
		name, mi, cg, ctrl string
		want               location
		wantErr            string
	}{
		{"hybrid memory", hybridMI, hybridCg, "memory", location{mount: "/sys/fs/cgroup/memory", own: "/sys/fs/cgroup/memory/process_api/abc"}, ""},
		{"hybrid pids", hybridMI, hybridCg, "pids", location{mount: "/sys/fs/cgroup/pids", own: "/sys/fs/cgroup/pids"}, ""},
		{"hybrid cpu", hybridMI, hybridCg, "cpu", location{mount: "/sys/fs/cgroup/cpu", own: "/sys/fs/cgroup/cpu"}, ""},
		{"hybrid io falls to cgroup2", hybridMI, hybridCg, "io", location{mount: "/sys/fs/cgroup/unified", own: "/sys/fs/cgroup/unified", v2: true}, ""},
		{"v2 memory", v2MI, v2Cg, "memory", location{mount: "/sys/fs/cgroup", own: "/sys/fs/cgroup/system.slice/kernelgate.service", v2: true}, ""},
		{"container cpu", containerMI, containerCg, "cpu", location{mount: "/sys/fs/cgroup/cpu,cpuacct", own: "/sys/fs/cgroup/cpu,cpuacct"}, ""},
		{"container memory", containerMI, containerCg, "memory", location{mount: "/sys/fs/cgroup/memory", own: "/sys/fs/cgroup/memory/sub"}, ""},
		{"container pids outside", containerMI, containerCg, "pids", location{}, "our cgroup /elsewhere is outside every mount of its hierarchy (/sys/fs/cgroup/my pids"},
		{"container no cgroup2", containerMI, containerCg, "io", location{}, "no cgroup hierarchy (v1 or v2) is mounted with the io controller"},
		{"no line", hybridMI, "0::/\n", "memory", location{}, "/proc/self/cgroup names no cgroup in the memory hierarchy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mounts, err := parseMountinfo([]byte(tt.mi))
			if err != nil {
				t.Fatal(err)
			}
			pc, err := parseProcCgroup([]byte(tt.cg))
			if err != nil {
				t.Fatal(err)
			}
			got, err := locate(tt.ctrl, mounts, pc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := parseMountinfo([]byte("1 2 3\n")); err == nil {
		t.Error("mountinfo without separator accepted")
	}
	if _, err := parseMountinfo([]byte("1 2 - cgroup\n")); err == nil {
		t.Error("short mountinfo line accepted")
	}
	if _, err := parseProcCgroup([]byte("4:memory\n")); err == nil {
		t.Error("short /proc/self/cgroup line accepted")
	}
	if got := unescapeMountinfo(`a\040b\\c\0`); got != `a b\\c\0` {
		t.Errorf("unescape: %q", got)
	}
}

func TestAncestors(t *testing.T) {
	var got []string
	for a := range ancestors("/a/bb/c") {
		got = append(got, a)
	}
	if d := cmp.Diff([]string{"/a", "/a/bb", "/a/bb/c"}, got); d != "" {
		t.Error(d)
	}
	if !under("/a/b", "/a") || !under("/a", "/a") || under("/ab", "/a") {
		t.Error("under")
	}
}

// TestHandOver checks what the helper gives the sandbox user, and that it
// never follows a symlink or touches a file linked from elsewhere.
func TestHandOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("must run as root (it chowns)")
	}
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside") // stands for /etc/shadow
	must(t, os.WriteFile(outside, []byte("secret"), 0o600))
	outsideDir := filepath.Join(tmp, "outside-dir")
	must(t, os.Mkdir(outsideDir, 0o700))

	dir := filepath.Join(tmp, "k")
	must(t, os.Mkdir(dir, 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "connection-1.json"), []byte("{}"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "work", "sub"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "work", "sub", "f"), nil, 0o600))
	must(t, os.Mkdir(filepath.Join(dir, "i1"), 0o700))
	must(t, os.Symlink(outside, filepath.Join(dir, "link")))
	must(t, os.Symlink(outsideDir, filepath.Join(dir, "dirlink")))
	must(t, os.Link(outside, filepath.Join(dir, "hardlink")))
	// A dir the kernel already owns: not descended into.
	must(t, os.Mkdir(filepath.Join(dir, "mine"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "mine", "rootfile"), nil, 0o600))
	must(t, os.Chown(filepath.Join(dir, "mine"), 1000, 1000))

	if err := handOver(dir, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (uint32, uint32, os.FileMode) {
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		return st.Uid, st.Gid, os.FileMode(st.Mode & 0o7777)
	}
	for _, tt := range []struct {
		path     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{dir, 0, 1000, 0o710},
		{filepath.Join(dir, "connection-1.json"), 1000, 1000, 0o600},
		{filepath.Join(dir, "work"), 1000, 1000, 0o700},
		{filepath.Join(dir, "work", "sub"), 1000, 1000, 0o700},
		{filepath.Join(dir, "work", "sub", "f"), 1000, 1000, 0o600},
		{filepath.Join(dir, "i1"), 1000, 1000, 0o700},
		{filepath.Join(dir, "mine", "rootfile"), 0, 0, 0o600},
		{outside, 0, 0, 0o600},
		{outsideDir, 0, 0, 0o700},
	} {
		uid, gid, mode := owner(tt.path)
		if uid != tt.uid || gid != tt.gid || mode != tt.mode {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", tt.path, uid, gid, mode, tt.uid, tt.gid, tt.mode)
		}
	}
	if uid, _, _ := owner(filepath.Join(dir, "link")); uid != 0 {
		t.Errorf("symlink itself chowned to %d", uid)
	}

	// Handing over twice is harmless, and a dir that is a symlink is refused.
	if err := handOver(dir, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := handOver(filepath.Join(dir, "dirlink"), 1000, 1000); err == nil {
		t.Error("handOver followed a symlinked dir")
	}
	if uid, _, _ := owner(outsideDir); uid != 0 {
		t.Error("symlink target chowned")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadPolicies(t *testing.T) {
	for _, p := range []Policy{
		{Bwrap: "bwrap"},
		{UID: -1},
		{MemoryBytes: -1},
		{MemoryBytes: 1 << 20},
		{PIDs: -1},
		{PIDs: 2},
		{CPUQuota: -1},
		{CPUQuota: 0.001},
		{Bwrap: "/nonexistent/bwrap"},
		{TmpBytes: 1000},
		{FileBytes: 1000},
		{Specs: map[string]Override{"r": {MemoryBytes: ptr[int64](1 << 20)}}},
		{Specs: map[string]Override{"r": {PIDs: ptr[int64](-1)}}},
		{Specs: map[string]Override{"r": {CPUQuota: ptr(-0.5)}}},
		{Specs: map[string]Override{"": {NoFile: ptr[uint64](10)}}},
	} {
		if s, err := New(p); err == nil {
			t.Errorf("New(%+v) succeeded: %s", p, s.Status())
		} else {
			t.Logf("%+v: %v", p, err)
		}
	}
}

// A gateway killed without cleanup leaves its kernels' cgroups; the next
// sandbox on the machine removes them (and kills what still runs there).
func TestSweepStale(t *testing.T) {
	s, err := New(Policy{PIDs: 64})
	if err != nil {
		t.Fatal(err)
	}
	h := s.cg.usable("pids")
	if h == nil {
		t.Fatal("no pids hierarchy on this machine")
	}
	// A pid that does not exist: a real process that has exited and been reaped.
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(h.own, fmt.Sprintf("kernelgate-%d", gone.Process.Pid))
	if err := os.MkdirAll(filepath.Join(stale, "abc-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Rmdir(filepath.Join(stale, "abc-1")); unix.Rmdir(stale) })
	live := filepath.Join(h.own, fmt.Sprintf("kernelgate-%d", os.Getppid()))
	if err := os.Mkdir(live, 0o755); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Rmdir(live) })
	sweepStale(h)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale cgroup %s still there: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the cgroup of a live gateway was removed: %v", err)
	}
}

func TestWithThreads(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		n    int
		want []string
	}{
		{"off", []string{"A=1"}, 0, []string{"A=1"}},
		{"all set", []string{"A=1"}, 2, []string{"A=1", "OPENBLAS_NUM_THREADS=2", "OMP_NUM_THREADS=2", "MKL_NUM_THREADS=2", "NUMEXPR_NUM_THREADS=2"}},
		{"the kernel's own value wins", []string{"OMP_NUM_THREADS=8", "OPENBLAS_NUM_THREADS_X=3"}, 1,
			[]string{"OMP_NUM_THREADS=8", "OPENBLAS_NUM_THREADS_X=3", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1", "NUMEXPR_NUM_THREADS=1"}},
	} {
		if diff := cmp.Diff(c.want, withThreads(c.env, c.n)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}
