package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/connfile"
)

// These tests run real bwrap, real cgroups and real processes. They need
// root, /usr/bin/bwrap and the memory, pids and cpu controllers; where the
// machine lacks one they fail and say so, they do not skip.

const python = "/usr/bin/python3"

func TestMain(m *testing.M) {
	MaybeRunHelper() // the test binary is the helper of its own sandboxes
	code := m.Run()
	if n := sweepTestCgroups(); n > 0 {
		fmt.Fprintf(os.Stderr, "sandbox tests left %d cgroup(s) behind (now removed)\n", n)
		code = 1
	}
	os.Exit(code)
}

var (
	testSandboxesMu sync.Mutex
	testSandboxes   []*Sandbox
	idSeq           int
)

// testID returns a cgroup name unique to this test process, so the sweep
// finds exactly what the tests made.
func testID() string {
	testSandboxesMu.Lock()
	defer testSandboxesMu.Unlock()
	idSeq++
	return fmt.Sprintf("test%d-%d", os.Getpid(), idSeq)
}

// sweepTestCgroups removes any cgroup the tests created and did not remove,
// and reports how many there were.
func sweepTestCgroups() int {
	testSandboxesMu.Lock()
	defer testSandboxesMu.Unlock()
	n := 0
	for _, s := range testSandboxes {
		for _, h := range s.cg.hier {
			left, _ := filepath.Glob(filepath.Join(h.base(), fmt.Sprintf("test%d-*", os.Getpid())))
			for _, d := range left {
				n++
				s.removeCgroups([]kernelCgroup{{h: h, dir: d}})
			}
			removeParentIfEmpty(h)
		}
	}
	return n
}

func newSandbox(t *testing.T, p Policy) *Sandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the sandbox tests must run as root (they create cgroups and switch users)")
	}
	s, err := New(p)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	testSandboxesMu.Lock()
	testSandboxes = append(testSandboxes, s)
	testSandboxesMu.Unlock()
	for _, c := range controllers {
		if s.cg.usable(c) == nil {
			t.Fatalf("cgroup controller %s is not usable on this machine: %s\nstatus: %s", c, s.cg.unavailable[c], s.Status())
		}
	}
	return s
}

// kernelDir makes a kernel dir as the kernel package does: <runtime>/<id>
// and <id>/work, both 0700 and root's.
func kernelDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "k")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sandboxed is a wrapped command and the kernel cgroups it runs in.
type sandboxed struct {
	cmd     *exec.Cmd
	cgs     []kernelCgroup
	release func()
}

func wrap(t *testing.T, s *Sandbox, dir string, argv ...string) *sandboxed {
	t.Helper()
	return wrapSpec(t, s, "", dir, argv...)
}

// wrapSpec is wrap for a kernel of kernelspec spec.
func wrapSpec(t *testing.T, s *Sandbox, spec, dir string, argv ...string) *sandboxed {
	t.Helper()
	id := testID()
	wrapped, release, err := s.Wrap(id, spec, argv, dir)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	t.Cleanup(release)
	if wrapped[0] != s.self || wrapped[1] != Helper {
		t.Fatalf("wrapped argv starts %q, want the binary and %s", wrapped[:2], Helper)
	}
	var cgs []kernelCgroup
	for _, h := range s.cg.hier {
		d := filepath.Join(h.base(), id)
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("Wrap did not create cgroup %s: %v", d, err)
		}
		cgs = append(cgs, kernelCgroup{h: h, dir: d})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, wrapped[0], wrapped[1:]...)
	cmd.Dir = filepath.Join(dir, "work")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PYDEVD_DISABLE_FILE_VALIDATION=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return &sandboxed{cmd: cmd, cgs: cgs, release: release}
}

// runPython runs code confined and returns its combined output and the
// error of Wait.
func runPython(t *testing.T, s *Sandbox, dir, code string) (*sandboxed, string, error) {
	t.Helper()
	sb := wrap(t, s, dir, python, "-c", code)
	out, err := sb.cmd.CombinedOutput()
	return sb, string(out), err
}

func mustRunPython(t *testing.T, s *Sandbox, dir, code string) string {
	t.Helper()
	_, out, err := runPython(t, s, dir, code)
	if err != nil {
		t.Fatalf("sandboxed python failed: %v\n%s", err, out)
	}
	return out
}

// cgroupOf returns the kernel's cgroup carrying ctrl.
func (sb *sandboxed) cgroupOf(t *testing.T, ctrl string) string {
	t.Helper()
	for _, cg := range sb.cgs {
		for _, c := range cg.h.ctrls {
			if c == ctrl {
				return cg.dir
			}
		}
	}
	t.Fatalf("no %s cgroup", ctrl)
	return ""
}

func TestStatusOnThisMachine(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 128 << 20, PIDs: 32, CPUQuota: 1, NoFile: 256})
	st := s.Status()
	t.Log(st)
	for _, want := range []string{"sandbox on: namespaces (network off)", "user 1000:1000", "memory 128 MiB", "pids 32", "cpu 1 cores", "nofile 256", "no core dumps"} {
		if !strings.Contains(st, want) {
			t.Errorf("Status() = %q, missing %q", st, want)
		}
	}
	if strings.Contains(st, "unavailable") {
		t.Errorf("Status() reports something unavailable on a machine that has it all: %q", st)
	}
	// New leaves no cgroup behind.
	for _, h := range s.cg.hier {
		if _, err := os.Stat(h.base()); err == nil {
			entries, _ := os.ReadDir(h.base())
			for _, e := range entries {
				if e.IsDir() && strings.HasPrefix(e.Name(), "probe-") {
					t.Errorf("probe cgroup %s left behind", filepath.Join(h.base(), e.Name()))
				}
			}
		}
	}
}

func TestNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	code := fmt.Sprintf(`
import socket
try:
    socket.create_connection(("127.0.0.1", %d), timeout=5).close()
    print("connected")
except OSError as e:
    print("failed:", e)
`, port)
	for _, tt := range []struct {
		network bool
		want    string
	}{{false, "failed:"}, {true, "connected"}} {
		t.Run(fmt.Sprintf("network=%v", tt.network), func(t *testing.T) {
			s := newSandbox(t, Policy{Network: tt.network})
			out := mustRunPython(t, s, kernelDir(t), code)
			if !strings.HasPrefix(out, tt.want) {
				t.Errorf("connecting to the host's 127.0.0.1:%d: got %q, want %q...", port, out, tt.want)
			}
		})
	}
}

func TestFilesystemAndUser(t *testing.T) {
	s := newSandbox(t, Policy{})
	dir := kernelDir(t)
	work := filepath.Join(dir, "work")

	// A file in the host's /tmp, and a sibling kernel dir with a secret.
	hostTmp, err := os.CreateTemp("/tmp", "kgsandbox-host-")
	if err != nil {
		t.Fatal(err)
	}
	hostTmp.Close()
	defer os.Remove(hostTmp.Name())
	sibling := filepath.Join(filepath.Dir(dir), "other")
	if err := os.MkdirAll(sibling, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "connection-1.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "connection-1.json"), []byte(`{"key":"k"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	code := fmt.Sprintf(`
import errno, os, json
def tryw(p):
    try:
        with open(p, "w") as f: f.write("x")
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def tryr(p):
    try:
        open(p).read()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(), "groups": os.getgroups(),
    "home": os.environ.get("HOME"), "cwd": os.getcwd(),
    "usr": tryw("/usr/x"), "etc": tryw("/etc/kgsandbox"),
    "work": tryw(%[1]q + "/made-inside"),
    "dir": tryw(%[2]q + "/planted"),
    "conn": tryr(%[2]q + "/connection-1.json"),
    "tmp_write": tryw("/tmp/inside"),
    "host_tmp_visible": os.path.exists(%[3]q),
    "sibling_visible": os.path.exists(%[4]q),
    "shadow": tryr("/etc/shadow"),
    "pid": os.getpid(),
    "fds": sorted(os.listdir("/proc/self/fd")),
}))
`, work, dir, hostTmp.Name(), filepath.Join(sibling, "connection-1.json"))
	out := mustRunPython(t, s, dir, code)
	want := map[string]string{
		`"uid": 1000`:                 "the sandbox uid",
		`"gid": 1000`:                 "the sandbox gid",
		`"euid": 1000`:                "the sandbox euid",
		`"groups": []`:                "no supplementary groups",
		`"home": "` + work + `"`:      "HOME is dir/work",
		`"cwd": "` + work + `"`:       "cwd is dir/work",
		`"usr": "EROFS"`:              "/ is mounted read-only",
		`"etc": "EROFS"`:              "/etc is read-only",
		`"work": "ok"`:                "dir/work is writable",
		`"dir": "EACCES"`:             "dir itself is not writable by the kernel",
		`"conn": "ok"`:                "the connection file is readable",
		`"tmp_write": "ok"`:           "/tmp is writable",
		`"host_tmp_visible": false`:   "/tmp is private",
		`"sibling_visible": false`:    "other kernels' dirs are hidden",
		`"shadow": "EACCES"`:          "root's files are not the kernel's",
		`"pid": 2`:                    "a pid namespace (bwrap's init is 1)",
		`"fds": ["0", "1", "2", "3"]`: "no inherited fds beyond stdio (3 is listdir's)",
	}
	for frag, what := range want {
		if !strings.Contains(out, frag) {
			t.Errorf("%s: output lacks %s\n%s", what, frag, out)
		}
	}
	// The helper's mount namespace (a tmpfs over the runtime dir) stayed
	// private: the host still sees the sibling, and no new mount.
	if _, err := os.Stat(filepath.Join(sibling, "connection-1.json")); err != nil {
		t.Errorf("host view changed: %v", err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), filepath.Dir(dir)) {
		t.Errorf("a mount under %s leaked to the host:\n%s", filepath.Dir(dir), mi)
	}
	if _, err := os.Stat("/tmp/inside"); err == nil {
		t.Error("/tmp/inside, written in the sandbox, appeared in the host's /tmp")
	}
	fi, err := os.Stat(filepath.Join(work, "made-inside"))
	if err != nil {
		t.Fatalf("file written in dir/work is not on the host: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("file the kernel wrote is owned by %d:%d on the host, want 1000:1000", st.Uid, st.Gid)
	}
}

// TestNotRootOutside looks at the kernel's processes from the host: every
// one of them, bwrap included, runs as the sandbox user, not as root.
func TestNotRootOutside(t *testing.T) {
	s := newSandbox(t, Policy{})
	dir := kernelDir(t)
	sb := wrap(t, s, dir, python, "-c", "import os,sys; print('uid', os.getuid(), flush=True); sys.stdin.read()")
	stdin, err := sb.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sb.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "uid 1000\n" {
		t.Fatalf("sandboxed python said %q, %v; want uid 1000", line, err)
	}
	pids, err := readPids(filepath.Join(sb.cgroupOf(t, "pids"), "cgroup.procs"))
	if err != nil || len(pids) < 3 {
		t.Fatalf("pids in the kernel's cgroup: %v, %v (want bwrap, its init and python)", pids, err)
	}
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.SplitSeq(string(status), "\n") {
			if f := strings.Fields(l); len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") {
				for _, id := range f[1:] {
					if id != "1000" {
						t.Errorf("pid %d: %s (want 1000 everywhere)", pid, l)
					}
				}
			}
			if strings.HasPrefix(l, "CapEff:") && strings.TrimSpace(strings.TrimPrefix(l, "CapEff:")) != "0000000000000000" {
				t.Errorf("pid %d has capabilities: %s", pid, l)
			}
		}
	}
	stdin.Close()
	if err := sb.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLimitKills(t *testing.T) {
	const limit = 128 << 20
	s := newSandbox(t, Policy{MemoryBytes: limit})
	dir := kernelDir(t)
	// 300 MiB of distinct, touched pages, more than twice the limit.
	sb, out, err := runPython(t, s, dir, `
chunks = [bytes([i % 251]) * (1 << 20) for i in range(300)]
print("allocated", len(chunks))
`)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("allocating 300 MiB under a 128 MiB limit: err %v, want an exit error\n%s", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	// The command is bwrap, which reports a child killed by signal n as exit
	// status 128+n; on cgroup2 (memory.oom.group) bwrap itself is killed.
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL || ws.Exited() && ws.ExitStatus() == 128+int(syscall.SIGKILL)
	if !killed {
		t.Errorf("wait status %v (%#x), want SIGKILL (bwrap: exit 137)\n%s", ee, uint32(ws), out)
	}
	t.Logf("wait status: %v", ee)
	if strings.Contains(out, "allocated") {
		t.Errorf("the allocation succeeded: %s", out)
	}
	mem := sb.cgroupOf(t, "memory")
	events := "memory.oom_control"
	if s.cg.usable("memory").v2 {
		events = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(mem, events))
	if err != nil {
		t.Fatal(err)
	}
	if n := counter(string(data), "oom_kill"); n < 1 {
		t.Errorf("%s: oom_kill %d, want the OOM killer to have run\n%s", events, n, data)
	}
	if limitFile := filepath.Join(mem, "memory.limit_in_bytes"); !s.cg.usable("memory").v2 {
		got, _ := os.ReadFile(limitFile)
		if strings.TrimSpace(string(got)) != strconv.Itoa(limit) {
			t.Errorf("memory.limit_in_bytes = %s, want %d", got, limit)
		}
	}
}

// counter returns the value of "name N" in a cgroup key-value file.
func counter(data, name string) int64 {
	for l := range strings.SplitSeq(data, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

func TestPidsLimit(t *testing.T) {
	s := newSandbox(t, Policy{PIDs: 32})
	_, out, err := runPython(t, s, kernelDir(t), `
import threading, sys
stop = threading.Event()
n = 0
try:
    for _ in range(100):
        threading.Thread(target=stop.wait, daemon=True).start()
        n += 1
except RuntimeError as e:
    print("stopped at", n, e)
    stop.set()
    sys.exit(3)
print("started", n)
stop.set()
`)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("starting 100 threads with pids.max=32: %v, want exit 3\n%s", err, out)
	}
	var n int
	if _, err := fmt.Sscanf(out, "stopped at %d", &n); err != nil || n < 20 || n >= 32 {
		t.Errorf("output %q: want to stop below 32 threads (bwrap and python count too)", out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

func TestNoFileAndCore(t *testing.T) {
	s := newSandbox(t, Policy{NoFile: 64})
	out := mustRunPython(t, s, kernelDir(t), `
import resource, os, errno
print("nofile", resource.getrlimit(resource.RLIMIT_NOFILE))
print("core", resource.getrlimit(resource.RLIMIT_CORE))
fds = []
try:
    for _ in range(200):
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("open failed after", len(fds), errno.errorcode[e.errno])
`)
	for _, want := range []string{"nofile (64, 64)", "core (0, 0)", "EMFILE"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCPUQuota(t *testing.T) {
	s := newSandbox(t, Policy{CPUQuota: 0.2})
	sb, out, err := runPython(t, s, kernelDir(t), `
import time
t0, c0 = time.monotonic(), time.process_time()
while time.monotonic() - t0 < 1.5:
    pass
print("share %.2f" % ((time.process_time() - c0) / (time.monotonic() - t0)))
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var share float64
	if _, err := fmt.Sscanf(out, "share %f", &share); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if share > 0.35 {
		t.Errorf("a busy loop got %.2f of a core under a 0.2 core quota", share)
	}
	if !s.cg.usable("cpu").v2 {
		data, _ := os.ReadFile(filepath.Join(sb.cgroupOf(t, "cpu"), "cpu.stat"))
		if counter(string(data), "nr_throttled") < 1 {
			t.Errorf("cpu.stat shows no throttling:\n%s", data)
		}
	}
}

// Under a CPU quota the numeric libraries' thread pools default to the
// quota's cores (their spinning workers would eat it); an explicit value in
// the kernel's environment stays.
func TestThreadPoolsFollowTheCPUQuota(t *testing.T) {
	s := newSandbox(t, Policy{CPUQuota: 1.5})
	sb := wrap(t, s, kernelDir(t), python, "-c", `
import os
print(*(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")))
`)
	sb.cmd.Env = append(sb.cmd.Env, "MKL_NUM_THREADS=7")
	b, err := sb.cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "2 2 7 2" {
		t.Errorf("thread pool variables in the sandbox: %q; want 2 2 7 2", out)
	}
}

func TestReleaseRemovesCgroups(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 256 << 20, PIDs: 64, CPUQuota: 1})

	t.Run("after exit", func(t *testing.T) {
		sb, out, err := runPython(t, s, kernelDir(t), "print('hi')")
		if err != nil || out != "hi\n" {
			t.Fatalf("%v: %q", err, out)
		}
		sb.release()
		for _, cg := range sb.cgs {
			if _, err := os.Stat(cg.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s still exists after release: %v", cg.dir, err)
			}
		}
		sb.release() // idempotent
	})

	t.Run("kills what is left", func(t *testing.T) {
		sb := wrap(t, s, kernelDir(t), python, "-c", "import time; print('up', flush=True); time.sleep(600)")
		stdout, err := sb.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sb.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- sb.cmd.Wait() }()
		done := make(chan struct{})
		go func() { sb.release(); close(done) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Fatal("release did not kill the running kernel")
		}
		<-done
		for _, cg := range sb.cgs {
			if _, err := os.Stat(cg.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s still exists after release: %v", cg.dir, err)
			}
		}
	})

	// With no kernel left, the shared parents are gone too.
	for _, h := range s.cg.hier {
		if entries, err := os.ReadDir(h.base()); err == nil {
			var names []string
			for _, e := range entries {
				if e.IsDir() {
					names = append(names, e.Name())
				}
			}
			if len(names) == 0 {
				t.Errorf("empty parent cgroup %s left behind", h.base())
			}
		}
	}
}

func TestWrapErrorsLeaveNothing(t *testing.T) {
	s := newSandbox(t, Policy{PIDs: 16})
	dir := kernelDir(t)
	for _, tt := range []struct {
		name, id string
		argv     []string
		dir      string
	}{
		{"bad id", "../x", []string{python}, dir},
		{"empty argv", "ok", nil, dir},
		{"relative dir", "ok", []string{python}, "k"},
		{"dir under /", "ok", []string{python}, "/tmp"},
		{"missing dir", "ok", []string{python}, dir + "-missing"},
		{"program hidden", "ok", []string{"/tmp/python"}, dir},
	} {
		if _, _, err := s.Wrap(tt.id, "", tt.argv, tt.dir); err == nil {
			t.Errorf("%s: Wrap succeeded", tt.name)
		} else {
			t.Logf("%s: %v", tt.name, err)
		}
	}
	for _, h := range s.cg.hier {
		if _, err := os.Stat(filepath.Join(h.base(), "ok")); err == nil {
			t.Errorf("a failed Wrap left cgroup %s", filepath.Join(h.base(), "ok"))
		}
	}
}

// TestHelperRejectsBadArguments runs the helper itself with a malformed spec.
func TestHelperRejectsBadArguments(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(self, Helper, `{"cgroups":["relative/cgroup.procs"]}`, "--", "/bin/true").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != helperExit {
		t.Fatalf("err %v, want exit %d", err, helperExit)
	}
	if !strings.Contains(string(out), "kernelgate sandbox helper: bad arguments: spec: cgroup \"relative/cgroup.procs\"") {
		t.Errorf("stderr %q", out)
	}
}

// TestKernelStarts runs a real ipykernel in the sandbox with an ipc
// connection file and waits for its five sockets, which the gateway (on the
// host) can then connect to.
func TestKernelStarts(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 512 << 20, PIDs: 64, CPUQuota: 1, NoFile: 1024})
	dir := kernelDir(t)
	if err := os.Mkdir(filepath.Join(dir, "i1"), 0o700); err != nil {
		t.Fatal(err)
	}
	info, err := connfile.NewIPC(filepath.Join(dir, "i1"))
	if err != nil {
		t.Fatal(err)
	}
	cf := filepath.Join(dir, "connection-1.json")
	if err := connfile.Write(cf, info); err != nil {
		t.Fatal(err)
	}
	sb := wrap(t, s, dir, python, "-m", "ipykernel_launcher", "-f", cf)
	stderr := &syncWriter{w: &strings.Builder{}}
	sb.cmd.Stdout, sb.cmd.Stderr = io.Discard, stderr
	if err := sb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sb.cmd.Wait() }()

	var sockets []string
	for _, ch := range connfile.Channels() {
		ep, err := info.Endpoint(ch)
		if err != nil {
			t.Fatal(err)
		}
		sockets = append(sockets, strings.TrimPrefix(ep, "ipc://"))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := 0
		for _, p := range sockets {
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				ready++
			}
		}
		if ready == len(sockets) {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("kernel exited before binding its sockets: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d ipc sockets appeared in 60 s\n%s", ready, len(sockets), stderr.String())
		}
	}
	// The sockets are live: the host side can connect to them.
	for _, p := range sockets {
		c, err := net.DialTimeout("unix", p, 5*time.Second)
		if err != nil {
			t.Errorf("connect to %s from the host: %v", p, err)
			continue
		}
		c.Close()
	}
	// IPython keeps its profile in HOME = dir/work.
	deadline = time.Now().Add(20 * time.Second)
	for !exists(filepath.Join(dir, "work", ".ipython")) {
		if time.Now().After(deadline) {
			t.Errorf("no ~/.ipython in %s/work\n%s", dir, stderr.String())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("kernel exited: %v\n%s", err, stderr.String())
	default:
	}
	// Every process of the kernel is in every one of its cgroups.
	var first []int
	for i, cg := range sb.cgs {
		pids, err := readPids(filepath.Join(cg.dir, "cgroup.procs"))
		if err != nil || len(pids) < 3 {
			t.Errorf("%s holds %v, %v; want bwrap, its init and the kernel", cg.dir, pids, err)
		}
		slices.Sort(pids)
		if i == 0 {
			first = pids
		} else if !slices.Equal(pids, first) {
			t.Errorf("%s holds %v, but %s holds %v", cg.dir, pids, sb.cgs[0].dir, first)
		}
	}
	sb.release() // kills the kernel
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the kernel survived release")
	}
	t.Logf("kernel stderr:\n%s", stderr.String())
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.w)
}

// TestSiblingsHiddenInOpenRuntimeDir: with a runtime dir the sandbox user
// could search (0755, outside /tmp), its other entries are still hidden.
func TestSiblingsHiddenInOpenRuntimeDir(t *testing.T) {
	s := newSandbox(t, Policy{})
	rt, err := os.MkdirTemp("/var/tmp", "kgsandbox-rt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rt) })
	must(t, os.Chmod(rt, 0o755))
	dir := filepath.Join(rt, "k")
	must(t, os.Mkdir(dir, 0o700))
	other := filepath.Join(rt, "other")
	must(t, os.Mkdir(other, 0o755))
	must(t, os.WriteFile(filepath.Join(other, "connection-1.json"), []byte("{}"), 0o644))
	out := mustRunPython(t, s, dir, fmt.Sprintf(`
import os
print(sorted(os.listdir(%q)), os.path.exists(%q))
`, rt, filepath.Join(other, "connection-1.json")))
	if want := "['k'] False\n"; out != want {
		t.Errorf("the sandbox sees %q, want %q (only its own dir)", out, want)
	}
}

// TestConcurrentKernels wraps, runs and releases kernels in parallel: they
// share the parent cgroups, which the last release removes.
func TestConcurrentKernels(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 256 << 20, PIDs: 64, CPUQuota: 0.5})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			dir := kernelDir(t)
			sb := wrap(t, s, dir, python, "-c", fmt.Sprintf("print(%d)", i))
			out, err := sb.cmd.CombinedOutput()
			if err != nil || string(out) != fmt.Sprintf("%d\n", i) {
				t.Errorf("kernel %d: %v: %q", i, err, out)
			}
			sb.release()
		})
	}
	wg.Wait()
	for _, h := range s.cg.hier {
		if _, err := os.Stat(h.base()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("parent cgroup %s still there after every kernel was released: %v", h.base(), err)
		}
	}
}
