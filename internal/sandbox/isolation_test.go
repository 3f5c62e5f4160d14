package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// seccompProbe tries what the filter refuses, from Python through ctypes,
// and what it must let through. Each entry is the errno name or "ok".
const seccompProbe = `
import ctypes, errno, json, os, threading, mmap, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
NR = %s
out = {}
child = os.fork()
if child == 0:
    signal.pause()
    os._exit(0)
out["ptrace_attach"] = sc(NR["ptrace"], 16, child, 0, 0)
buf = ctypes.create_string_buffer(8)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
remote = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
r = libc.process_vm_readv(child, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
out["process_vm_readv"] = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
os.kill(child, signal.SIGKILL); os.waitpid(child, 0)
out["unshare_user"] = sc(NR["unshare"], 0x10000000)
out["unshare_net"] = sc(NR["unshare"], 0x40000000)
out["bpf"] = sc(NR["bpf"], 0, 0, 0)
out["mount"] = "ok" if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0 else errno.errorcode[ctypes.get_errno()]
out["io_uring_setup"] = sc(NR["io_uring_setup"], 1, 0)
out["perf_event_open"] = sc(NR["perf_event_open"], 0, 0, -1 & 0xffffffffffffffff, -1 & 0xffffffffffffffff, 0)
out["keyctl"] = sc(NR["keyctl"], 0, 0)
out["userfaultfd"] = sc(NR["userfaultfd"], 0)
out["personality_no_aslr"] = sc(NR["personality"], 0x0040000)
out["personality_query"] = sc(NR["personality"], 0xffffffff)
out["clone3"] = sc(NR["clone3"], 0, 0)
out["clone_newuser"] = sc(NR["clone"], 0x10000000 | 17, 0, 0, 0, 0)
# What must keep working: fork, threads, a pipe, mmap.
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = "ok" if os.waitpid(pid, 0)[1] >> 8 == 7 else "bad"
t = threading.Thread(target=lambda: None); t.start(); t.join()
out["thread"] = "ok"
out["seccomp_status"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
out["init_seccomp_status"] = [l.split()[1] for l in open("/proc/1/status") if l.startswith("Seccomp:")][0]
out["init_mem"] = "ok"
try:
    open("/proc/1/mem", "r+b").close()
except OSError as e:
    out["init_mem"] = errno.errorcode[e.errno]
print(json.dumps(out))
`

// seccompNumbers are the probe's system call numbers on this machine.
func seccompNumbers(t *testing.T) string {
	t.Helper()
	nr := map[string]uintptr{
		"ptrace": unix.SYS_PTRACE, "unshare": unix.SYS_UNSHARE, "bpf": unix.SYS_BPF,
		"io_uring_setup": unix.SYS_IO_URING_SETUP, "perf_event_open": unix.SYS_PERF_EVENT_OPEN,
		"keyctl": unix.SYS_KEYCTL, "userfaultfd": unix.SYS_USERFAULTFD,
		"personality": unix.SYS_PERSONALITY, "clone3": unix.SYS_CLONE3, "clone": unix.SYS_CLONE,
	}
	b, _ := json.Marshal(nr)
	return string(b)
}

func TestSeccompFilter(t *testing.T) {
	s := newSandbox(t, Policy{})
	if !s.seccomp || !strings.Contains(s.Status(), "seccomp filter") {
		t.Fatalf("no seccomp filter on this machine: %s", s.Status())
	}
	out := mustRunPython(t, s, kernelDir(t), fmt.Sprintf(seccompProbe, seccompNumbers(t)))
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	want := map[string]any{
		"ptrace_attach": "EPERM", "process_vm_readv": "EPERM",
		"unshare_user": "EPERM", "unshare_net": "EPERM", "bpf": "EPERM", "mount": "EPERM",
		"io_uring_setup": "EPERM", "perf_event_open": "EPERM", "keyctl": "EPERM",
		"userfaultfd": "EPERM", "personality_no_aslr": "EPERM", "personality_query": "ok",
		"clone3": "ENOSYS", "clone_newuser": "EPERM",
		"fork": "ok", "thread": "ok",
		"seccomp_status": "2", // SECCOMP_MODE_FILTER
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	// bwrap's init (pid 1 of the sandbox) runs as the same user: if it had
	// no filter, writing its memory would get around the kernel's.
	if got["init_seccomp_status"] != "2" && got["init_mem"] == "ok" {
		t.Errorf("ATTACK SUCCEEDED: the sandbox's pid 1 has no seccomp filter and its /proc/1/mem opens for writing: %v", got)
	}
	t.Logf("sandbox pid 1: Seccomp %v, /proc/1/mem for writing: %v", got["init_seccomp_status"], got["init_mem"])
}

// TestSeccompOtherABIs: system calls of another ABI than the filter's
// (32-bit int 0x80, x32) kill the process with SIGSYS.
func TestSeccompOtherABIs(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the other ABIs tested are x86's; this is %s", runtime.GOARCH)
	}
	s := newSandbox(t, Policy{})
	out := mustRunPython(t, s, kernelDir(t), `
import ctypes, mmap, os, json
def child(code):
    pid = os.fork()
    if pid == 0:
        m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        m.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        ctypes.CFUNCTYPE(ctypes.c_long)(addr)()
        os._exit(0)
    st = os.waitpid(pid, 0)[1]
    return "signal %d" % os.WTERMSIG(st) if os.WIFSIGNALED(st) else "exit %d" % os.WEXITSTATUS(st)
res = {
    # mov eax, 20 (getpid on i386); int 0x80; ret
    "int80": child(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"),
    # mov eax, 0x40000027 (x32 getpid); syscall; ret
    "x32": child(b"\xb8\x27\x00\x00\x40\x0f\x05\xc3"),
    # mov eax, 39 (getpid); syscall; ret: the native ABI, for contrast
    "native": child(b"\xb8\x27\x00\x00\x00\x0f\x05\xc3"),
}
print(json.dumps(res))
`)
	want := fmt.Sprintf(`{"int80": "signal %d", "x32": "signal %d", "native": "exit 0"}`, syscall.SIGSYS, syscall.SIGSYS)
	if strings.TrimSpace(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

// TestSeccompOff: NoSeccomp really turns it off, and says so.
func TestSeccompOff(t *testing.T) {
	s := newSandbox(t, Policy{NoSeccomp: true})
	if strings.Contains(s.Status(), "seccomp") {
		t.Errorf("Status mentions seccomp: %s", s.Status())
	}
	out := mustRunPython(t, s, kernelDir(t), `print([l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0])`)
	if out != "0\n" {
		t.Errorf("Seccomp: %q, want 0", out)
	}
}

func TestSeccompFilterAssembles(t *testing.T) {
	p, err := seccompFilter()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(filterBytes(p)); n != 8*len(p) || len(p) < len(deniedSyscalls)+8 {
		t.Errorf("%d instructions, %d bytes", len(p), n)
	}
	if _, err := assemble([]bpfInsn{{code: 0, jt: "nowhere"}}); err == nil {
		t.Error("a jump to a missing label assembled")
	}
	if _, err := assemble([]bpfInsn{{label: "a"}, {code: 0, jt: "a"}}); err == nil {
		t.Error("a backward jump assembled")
	}
}

// TestHiddenHostDirs: /run, /var/tmp and /sys are the sandbox's own: no
// host socket or file in them, and /sys holds the CPU topology only.
func TestHiddenHostDirs(t *testing.T) {
	s := newSandbox(t, Policy{})
	out := mustRunPython(t, s, kernelDir(t), `
import os, json
print(json.dumps({
    "run": sorted(os.listdir("/run")), "var_run": sorted(os.listdir("/var/run")),
    "var_tmp": sorted(os.listdir("/var/tmp")), "sys": sorted(os.listdir("/sys")),
    "sys_devices": sorted(os.listdir("/sys/devices")),
    "cgroup": os.path.exists("/sys/fs/cgroup"), "net": os.path.exists("/sys/class/net"),
    "cpus": os.cpu_count(), "online": open("/sys/devices/system/cpu/online").read().strip(),
}))
`)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	for k, want := range map[string]string{"run": "[]", "var_run": "[]", "var_tmp": "[]", "sys": "[devices]", "sys_devices": "[system]", "cgroup": "false", "net": "false"} {
		if fmt.Sprint(got[k]) != want {
			t.Errorf("%s: %v, want %s", k, got[k], want)
		}
	}
	if got["cpus"] != float64(runtime.NumCPU()) && got["cpus"] != float64(countOnline(t)) {
		t.Errorf("os.cpu_count() = %v in the sandbox, %d outside", got["cpus"], runtime.NumCPU())
	}
}

func countOnline(t *testing.T) int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range strings.SplitSeq(strings.TrimSpace(string(b)), ",") {
		var a, z int
		if _, err := fmt.Sscanf(r, "%d-%d", &a, &z); err == nil {
			n += z - a + 1
		} else {
			n++
		}
	}
	return n
}

// TestWorkDirTmpfs: with WorkBytes the work dir is a tmpfs of that size:
// many small files end in ENOSPC, and nothing reaches the host's disk.
func TestWorkDirTmpfs(t *testing.T) {
	const size = 8 << 20
	s := newSandbox(t, Policy{WorkBytes: size, MemoryBytes: 256 << 20})
	if !strings.Contains(s.Status(), "work dir a tmpfs of 8 MiB") {
		t.Errorf("Status: %s", s.Status())
	}
	dir := kernelDir(t)
	out := mustRunPython(t, s, dir, `
import errno, os
n = 0
try:
    while True:
        with open("f%d" % n, "wb") as f:
            f.write(b"x" * 65536)
        n += 1
except OSError as e:
    print(errno.errorcode[e.errno], n, os.stat(".").st_uid == os.getuid())
`)
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "ENOSPC" || f[2] != "True" {
		t.Fatalf("filling the work dir: %q, want ENOSPC, a count, and the dir owned by the kernel", out)
	}
	if n := atoi(t, f[1]); n < size/65536/2 || n > size/65536 {
		t.Errorf("%d files of 64 KiB before ENOSPC in an 8 MiB work dir", n)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "work"))
	if err != nil || len(ents) != 0 {
		t.Errorf("the host's work dir holds %d entries (%v), want none", len(ents), err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUIDPerKernel: two kernels run as different users, a restart (the
// same dir) keeps its user, and a process with one kernel's credentials on
// the host (one that escaped its namespaces) can neither signal, trace,
// nor read the environment or files of another kernel.
func TestUIDPerKernel(t *testing.T) {
	s := newSandbox(t, Policy{UID: 62000, GID: 62000, UIDs: 4})
	if !strings.Contains(s.Status(), "users 62000-62003:62000-62003, one per kernel") {
		t.Errorf("Status: %s", s.Status())
	}
	victimDir, attackerDir := kernelDir(t), kernelDir(t)
	must(t, os.WriteFile(filepath.Join(victimDir, "work", "secret"), []byte("victim's"), 0o600))
	victim := wrap(t, s, victimDir, python, "-c", "import os,sys; open('mine', 'w').write('x'); print(os.getuid(), os.getgid(), flush=True); sys.stdin.read()")
	victim.cmd.Env = append(victim.cmd.Env, "VICTIM_SECRET=s3cr3t")
	stdin, err := victim.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := victim.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	must(t, victim.cmd.Start())
	defer func() { stdin.Close(); victim.cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var vuid, vgid int
	fmt.Sscan(line, &vuid, &vgid)
	auid, agid := attackerIDs(t, s, attackerDir)
	if vuid == auid || vgid == agid || vuid < 62000 || vuid > 62003 || auid < 62000 || auid > 62003 {
		t.Fatalf("victim %d:%d, attacker %d:%d: want distinct ids in 62000-62003", vuid, vgid, auid, agid)
	}
	// A restart of the attacker (same dir) keeps its id.
	if u, _ := attackerIDs(t, s, attackerDir); u != auid {
		t.Errorf("a second process for the same dir got uid %d, want %d", u, auid)
	}
	pid := pythonPid(t, victim)
	attack := fmt.Sprintf(`
import ctypes, errno, json, os, signal
libc = ctypes.CDLL(None, use_errno=True)
def attempt(f):
    try:
        r = f()
        return "ok" if r is None or r == 0 else ("ok: %%r" %% (r,) if not isinstance(r, int) else errno.errorcode.get(ctypes.get_errno(), str(r)))
    except OSError as e:
        return errno.errorcode[e.errno]
pid = %d
print(json.dumps({
    "kill": attempt(lambda: os.kill(pid, 0)),
    "ptrace": attempt(lambda: libc.ptrace(0x4206, pid, 0, 0)),  # PTRACE_SEIZE: the control must not stop the victim
    "environ": attempt(lambda: open("/proc/%%d/environ" %% pid, "rb").read()),
    "cwd_list": attempt(lambda: os.listdir("/proc/%%d/cwd" %% pid)),
    "secret": attempt(lambda: open("/proc/%%d/cwd/secret" %% pid).read()),
    "write": attempt(lambda: open("/proc/%%d/cwd/mine" %% pid, "a").write("owned")),
    "mem": attempt(lambda: open("/proc/%%d/mem" %% pid, "rb").close()),
}))
`, pid)
	// The control: with the victim's own ids the probe reaches everything,
	// so a refusal below is the uid's doing.
	ctl := runAs(t, vuid, vgid, attack)
	if !strings.Contains(ctl, `"environ": "ok: `) || !strings.Contains(ctl, `"kill": "ok"`) || !strings.Contains(ctl, `"secret": "ok: `) || !strings.Contains(ctl, `"ptrace": "ok"`) {
		t.Fatalf("the probe as the victim's own user does not reach it: %s", ctl)
	}
	out := runAs(t, auid, agid, attack)
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	for k, v := range got {
		if strings.HasPrefix(v, "ok") {
			t.Errorf("ATTACK SUCCEEDED: %s as uid %d against the kernel of uid %d: %s", k, auid, vuid, v)
		}
	}
	if strings.Contains(out, "s3cr3t") || strings.Contains(out, "victim's") {
		t.Errorf("the victim's secrets leaked: %s", out)
	}
	t.Logf("as uid %d against uid %d: %s", auid, vuid, out)
}

// attackerIDs runs a process for dir and returns the uid and gid it ran as.
func attackerIDs(t *testing.T, s *Sandbox, dir string) (int, int) {
	t.Helper()
	sb := wrap(t, s, dir, python, "-c", "import os; print(os.getuid(), os.getgid())")
	out, err := sb.cmd.CombinedOutput()
	sb.release()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var u, g int
	fmt.Sscan(string(out), &u, &g)
	return u, g
}

// pythonPid finds the host pid of the sandboxed python in sb's cgroup.
func pythonPid(t *testing.T, sb *sandboxed) int {
	t.Helper()
	pids, err := readPids(filepath.Join(sb.cgroupOf(t, "pids"), "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); strings.Contains(exe, "python") {
			return p
		}
	}
	t.Fatalf("no python among %v", pids)
	return 0
}

// runAs runs Python code on the host, in no sandbox, as uid:gid: a kernel
// that got out of its namespaces.
func runAs(t *testing.T, uid, gid int, code string) string {
	t.Helper()
	cmd := exec.Command(python, "-c", code)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as %d:%d: %v: %s", uid, gid, err, out)
	}
	return string(out)
}

// TestIDPool: the allocator's rules, without processes.
func TestIDPool(t *testing.T) {
	gone := map[string]bool{}
	isGone := func(d string) bool { return gone[d] }
	p := newIDPool(100, 3)
	steps := []struct {
		op, dir string
		want    int // offset, or -1 for an error
	}{
		{"acquire", "a", 0},
		{"acquire", "b", 1},
		{"acquire", "a", 0}, // a second process of a (a restart): same id
		{"release", "a", 0},
		{"release", "a", 0},
		{"acquire", "c", 2},
		{"acquire", "d", -1}, // a, b, c hold all three; a's dir still exists
		{"gone", "a", 0},
		{"acquire", "d", 0}, // a is gone: its id is free
		{"release", "b", 0},
		{"gone", "b", 0},
		{"acquire", "b", 1}, // a new kernel at b's old path
		{"acquire", "e", -1},
		{"release", "c", 0},
		{"gone", "c", 0},
		{"acquire", "e", 2},
	}
	for i, st := range steps {
		switch st.op {
		case "acquire":
			off, err := p.acquire(st.dir, isGone)
			if st.want < 0 {
				if err == nil || !strings.Contains(err.Error(), "all 3 kernel uids (100-102)") {
					t.Errorf("step %d: acquire %s = %d, %v; want the pool exhausted", i, st.dir, off, err)
				}
				continue
			}
			if err != nil || off != st.want {
				t.Errorf("step %d: acquire %s = %d, %v; want %d", i, st.dir, off, err, st.want)
			}
		case "release":
			p.release(st.dir)
		case "gone":
			gone[st.dir] = true
		}
	}
	if p.inUse() != 3 {
		t.Errorf("%d ids in use, want 3", p.inUse())
	}
	p.release("nobody") // unknown dirs are ignored
}

// TestUIDsFreedWithTheirDir: through Wrap, a kernel's id is reused only
// after its process was released and its dir removed.
func TestUIDsFreedWithTheirDir(t *testing.T) {
	s := newSandbox(t, Policy{UID: 62100, GID: 62100, UIDs: 2})
	d1, d2, d3 := kernelDir(t), kernelDir(t), kernelDir(t)
	_, r1, err := s.Wrap(testID(), "", []string{"/bin/true"}, d1)
	must(t, err)
	_, r2, err := s.Wrap(testID(), "", []string{"/bin/true"}, d2)
	must(t, err)
	defer r2()
	if _, _, err := s.Wrap(testID(), "", []string{"/bin/true"}, d3); err == nil || !strings.Contains(err.Error(), "all 2 kernel uids") {
		t.Fatalf("a third kernel with two ids: %v", err)
	}
	r1()
	if _, _, err := s.Wrap(testID(), "", []string{"/bin/true"}, d3); err == nil {
		t.Fatal("d1's id was reused while d1 (whose kernel may restart) still exists")
	}
	must(t, os.RemoveAll(d1))
	w, r3, err := s.Wrap(testID(), "", []string{"/bin/true"}, d3)
	must(t, err)
	defer r3()
	spec, _, err := parseHelperArgs(w[2:])
	must(t, err)
	if spec.User == nil || spec.User.UID != 62100 || spec.User.GID != 62100 {
		t.Errorf("d3 got %+v, want d1's old 62100:62100", spec.User)
	}
}

// TestScientificStackConfined: what notebooks use keeps working under the
// seccomp filter, the per-kernel user and the hidden /sys, /run and
// /var/tmp: numpy (OpenBLAS threads), pandas, matplotlib, multiprocessing.
func TestScientificStackConfined(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 1 << 30, PIDs: 256, UID: 62200, GID: 62200, UIDs: 2})
	out := mustRunPython(t, s, kernelDir(t), `
import os, io, multiprocessing as mp
import numpy as np, pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
a = np.random.default_rng(1).random((300, 300))
ok = np.allclose(a @ np.linalg.inv(a), np.eye(300), atol=1e-6)
df = pd.DataFrame({"x": range(10), "y": [i * i for i in range(10)]})
fig, ax = plt.subplots(); ax.plot(df.x, df.y); buf = io.BytesIO(); fig.savefig(buf, format="png")
def sq(x): return x * x
with mp.get_context("fork").Pool(2) as p:
    pool = sum(p.map(sq, range(10)))
print(ok, int(df.y.sum()), buf.getvalue()[:4] == b"\x89PNG", pool, os.cpu_count() >= 1)
`)
	if want := "True 285 True 285 True\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
