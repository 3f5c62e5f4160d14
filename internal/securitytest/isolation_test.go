package securitytest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// listenUnix serves a unix socket at addr (a path, or "@name" for an
// abstract one) that anyone may connect to, and counts the connections.
func listenUnix(t *testing.T, addr string) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if !strings.HasPrefix(addr, "@") {
		if err := os.Chmod(addr, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Write([]byte("host service"))
			c.Close()
		}
	}()
	return &n
}

// hostSockets lists the unix sockets in the host's file system, but for
// /proc, /sys and /dev (the sandbox has its own).
func hostSockets(t *testing.T) []string {
	t.Helper()
	var out []string
	filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (p == "/proc" || p == "/sys" || p == "/dev") {
			return filepath.SkipDir
		}
		if d.Type()&fs.ModeSocket != 0 && len(out) < 500 {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestAttack_HostUnixSockets: a kernel tries to connect to unix sockets of
// the host that any user may connect to: one in /var/tmp, one in /run (and
// so /var/run), an abstract one, and every socket the host's file system
// holds (D-Bus, systemd, databases, other kernels' ipc sockets...). The
// network namespace does not cover sockets in the file system; the
// sandbox's own /run, /var/tmp, /tmp and /dev/shm do.
func TestAttack_HostUnixSockets(t *testing.T) {
	t.Parallel()
	varTmp := filepath.Join(filepath.Dir(srv.tokenFile), "service.sock")
	run := "/run/kgsec-" + randomHex(6) + ".sock"
	t.Cleanup(func() { os.Remove(run) })
	abstract := "@kgsec-" + randomHex(6)
	counts := []*atomic.Int64{listenUnix(t, varTmp), listenUnix(t, run), listenUnix(t, abstract)}
	all := hostSockets(t)
	res := probe(t, "sock", "unix", fmt.Sprintf(`
import socket
own = os.path.dirname(os.getcwd())
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(path)
    finally:
        s.close()
res = {
    "var_tmp": attempt(connect, %q), "run": attempt(connect, %q), "var_run": attempt(connect, %q),
    "abstract": attempt(connect, "\0" + %q[1:]),
    "ls_run": attempt(os.listdir, "/run"), "ls_var_run": attempt(os.listdir, "/var/run"), "ls_var_tmp": attempt(os.listdir, "/var/tmp"),
    "dbus": os.path.exists("/run/dbus/system_bus_socket"), "systemd": os.path.exists("/run/systemd"),
}
reached = {}
for p in %s:
    if not p.startswith(own + "/"):
        r = attempt(connect, p)
        if r.startswith("ok"):
            reached[p] = r
res["host_sockets_tried"] = %d
res["reached"] = reached
report(res)
`, varTmp, run, "/var"+run, abstract, pyList(all), len(all)))
	t.Logf("%v", res)
	denied(t, res, "var_tmp", "ENOENT")
	denied(t, res, "run", "ENOENT")
	denied(t, res, "var_run", "ENOENT")
	// Abstract sockets belong to a network namespace.
	denied(t, res, "abstract", "ECONNREFUSED")
	for _, k := range []string{"ls_run", "ls_var_run", "ls_var_tmp"} {
		if res[k] != "ok: []" {
			t.Errorf("%s: %v, want an empty dir of the sandbox's own", k, res[k])
		}
	}
	if res["dbus"] != false || res["systemd"] != false {
		t.Errorf("the host's /run/dbus or /run/systemd is visible: %v %v", res["dbus"], res["systemd"])
	}
	if r, _ := res["reached"].(map[string]any); len(r) > 0 {
		t.Errorf("ATTACK SUCCEEDED: the kernel connected to host sockets %v", r)
	}
	for i, c := range counts {
		if n := c.Load(); n != 0 {
			t.Errorf("ATTACK SUCCEEDED: host listener %d accepted %d connections", i, n)
		}
	}
	if len(all) < 3 {
		t.Errorf("found only %d sockets on the host, the three of this test included", len(all))
	}
	serverFine(t)
}

// TestAttack_SysHidden: a kernel looks for other kernels (their cgroups,
// named after their kernel dirs, and memory use), the network devices and
// the kernel's own settings in /sys. The sandbox's /sys is an empty,
// read-only tmpfs with only the CPU topology bound back; numpy still
// counts its CPUs.
func TestAttack_SysHidden(t *testing.T) {
	t.Parallel()
	res := probe(t, "sys", "sys", `
import glob
res = {"own": os.path.basename(os.path.dirname(os.getcwd()))}
res["cgroups"] = sorted(set(os.path.basename(p) for p in glob.glob("/sys/fs/cgroup/*/**/kernelgate-*/*", recursive=True)))
res["sys"] = attempt(os.listdir, "/sys")
res["sys_fs_cgroup"] = attempt(os.listdir, "/sys/fs/cgroup")
res["sys_class_net"] = attempt(os.listdir, "/sys/class/net")
res["sys_kernel"] = attempt(lambda: open("/sys/kernel/mm/transparent_hugepage/enabled").read())
res["sys_block"] = attempt(os.listdir, "/sys/block")
res["write_sys"] = attempt(lambda: open("/sys/x", "w").write("x"))
res["write_cpu"] = attempt(lambda: open("/sys/devices/system/cpu/online", "w").write("0"))
import numpy as np
res["cpu_count"] = os.cpu_count()
res["matmul"] = float((np.ones((64, 64)) @ np.ones((64, 64)))[0, 0])
report(res)
`)
	t.Logf("%v", res)
	if c, _ := res["cgroups"].([]any); len(c) != 0 {
		t.Errorf("ATTACK SUCCEEDED: the kernel lists kernel cgroups %v", c)
	}
	if res["sys"] != "ok: ['devices']" {
		t.Errorf("/sys holds %v, want only devices (the CPU topology)", res["sys"])
	}
	for _, k := range []string{"sys_fs_cgroup", "sys_class_net", "sys_kernel", "sys_block"} {
		denied(t, res, k, "ENOENT")
	}
	denied(t, res, "write_sys", "EROFS")
	denied(t, res, "write_cpu", "EROFS", "EACCES")
	if res["cpu_count"] == nil || res["cpu_count"].(float64) < 1 || res["matmul"] != float64(64) {
		t.Errorf("cpu_count %v, matmul %v: numpy must still work", res["cpu_count"], res["matmul"])
	}
	serverFine(t)
}

// TestAttack_Seccomp: a kernel tries what the seccomp filter refuses:
// ptrace and process_vm_readv of a sibling process (its own child, same
// uid, same namespaces: nothing else stops it), unshare of a user
// namespace, bpf, mount, io_uring, a personality that turns ASLR off, and
// a 32-bit system call (int 0x80), which kills the process.
func TestAttack_Seccomp(t *testing.T) {
	t.Parallel()
	res := probe(t, "seccomp", "seccomp", `
import ctypes, mmap, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    if libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args]) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
res = {}
child = os.fork()
if child == 0:
    signal.pause()
    os._exit(0)
res["ptrace_sibling"] = attempt(sc, 101, 16, child, 0, 0)        # ptrace(PTRACE_ATTACH)
res["ptrace_seize_sibling"] = attempt(sc, 101, 0x4206, child, 0, 0)
buf = ctypes.create_string_buffer(64)
iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 64)
res["process_vm_readv_sibling"] = attempt(sc, 310, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0)
res["process_vm_writev_sibling"] = attempt(sc, 311, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0)
os.kill(child, signal.SIGKILL); os.waitpid(child, 0)
res["unshare_user"] = attempt(sc, 272, 0x10000000)
res["bpf"] = attempt(sc, 321, 0, 0, 0)                              # BPF_MAP_CREATE
res["mount"] = attempt(sc, 165, 0, 0, 0, 0, 0)
res["io_uring_setup"] = attempt(sc, 425, 1, 0)
res["personality_no_aslr"] = attempt(sc, 135, 0x0040000)
res["userfaultfd"] = attempt(sc, 323, 0)
res["Seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
pid = os.fork()
if pid == 0:
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3")  # mov eax, 20; int 0x80; ret
    ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()
    os._exit(0)
st = os.waitpid(pid, 0)[1]
res["int80"] = "signal %d" % os.WTERMSIG(st) if os.WIFSIGNALED(st) else "exit %d" % os.WEXITSTATUS(st)
report(res)
`)
	t.Logf("%v", res)
	for _, k := range []string{"ptrace_sibling", "ptrace_seize_sibling", "process_vm_readv_sibling", "process_vm_writev_sibling",
		"unshare_user", "bpf", "mount", "io_uring_setup", "personality_no_aslr", "userfaultfd"} {
		denied(t, res, k, "EPERM")
	}
	if res["Seccomp"] != "2" {
		t.Errorf("Seccomp = %v, want 2 (a filter)", res["Seccomp"])
	}
	if want := fmt.Sprintf("signal %d", syscall.SIGSYS); res["int80"] != want {
		t.Errorf("a 32-bit system call: %v, want the process killed (%s)", res["int80"], want)
	}
	serverFine(t)
}

// hostPidOf returns the pid of the python whose cwd is dir, as the host
// sees it.
func hostPidOf(t *testing.T, dir string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if cwd == dir && strings.Contains(exe, "python") {
			return pid
		}
	}
	t.Fatalf("no python with cwd %s on the host", dir)
	return 0
}

// TestAttack_OtherKernelsUID: every kernel runs as a uid of its own, so a
// kernel that got out of its namespaces (here: a process on the host with
// the attacker kernel's uid and gid) still cannot kill or trace another
// kernel, read its environment or memory, or read or write its files
// through /proc/<pid>/cwd. The same probe run with the victim's own ids
// reaches all of it, so the refusals are the uid's doing.
func TestAttack_OtherKernelsUID(t *testing.T) {
	t.Parallel()
	ids := func(user string) (uid, gid int, cwd string) {
		res := probe(t, user, "uid", `
open("secret.txt", "w").write("victim's secret")
report({"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd()})
`)
		return int(res["uid"].(float64)), int(res["gid"].(float64)), res["cwd"].(string)
	}
	vuid, vgid, vcwd := ids("uidvictim")
	auid, agid, _ := ids("uidattacker")
	cuid, _, _ := ids("canary")
	if vuid == auid || vgid == agid || cuid == vuid || cuid == auid {
		t.Fatalf("kernels share ids: victim %d:%d, attacker %d:%d, canary %d", vuid, vgid, auid, agid, cuid)
	}
	kernelDirOf(t, vcwd)
	pid := hostPidOf(t, vcwd)
	probeCode := `
import ctypes, errno, json, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
pid, sig = int(sys.argv[1]), int(sys.argv[2])
def attempt(f):
    try:
        r = f()
        return "ok: %r" % (r,)
    except OSError as e:
        return errno.errorcode[e.errno]
def seize():
    if libc.ptrace(0x4206, pid, 0, 0) != 0:   # PTRACE_SEIZE: does not stop the victim
        raise OSError(ctypes.get_errno(), "ptrace")
res = {
    "kill": attempt(lambda: os.kill(pid, sig)),
    "ptrace": attempt(seize),
    "environ": attempt(lambda: len(open("/proc/%d/environ" % pid, "rb").read())),
    "mem": attempt(lambda: open("/proc/%d/mem" % pid, "rb").close()),
    "list_work_dir": attempt(lambda: os.listdir("/proc/%d/cwd" % pid)),
    "read_file": attempt(lambda: open("/proc/%d/cwd/secret.txt" % pid).read()),
}
if sig:  # the attack writes too; the control does not
    res["write_file"] = attempt(lambda: open("/proc/%d/cwd/secret.txt" % pid, "a").write("owned"))
    res["plant_file"] = attempt(lambda: open("/proc/%d/cwd/planted" % pid, "w").close())
print(json.dumps(res))
`
	runAs := func(uid, gid, sig int) map[string]string {
		cmd := exec.Command("/usr/bin/python3", "-c", probeCode, fmt.Sprint(pid), fmt.Sprint(sig))
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		var m map[string]string
		if err != nil || json.Unmarshal(out, &m) != nil {
			t.Fatalf("probe as %d:%d: %v: %s", uid, gid, err, out)
		}
		return m
	}
	// The control, with signal 0 and nothing written: the victim's own ids.
	ctl := runAs(vuid, vgid, 0)
	for _, k := range []string{"kill", "ptrace", "environ", "mem", "list_work_dir", "read_file"} {
		if !strings.HasPrefix(ctl[k], "ok") {
			t.Fatalf("the probe as the victim's own uid fails %s (%s): it would prove nothing", k, ctl[k])
		}
	}
	// The attack, with SIGKILL.
	got := runAs(auid, agid, int(syscall.SIGKILL))
	t.Logf("uid %d against the kernel of uid %d (pid %d): %v", auid, vuid, pid, got)
	if len(got) != 8 {
		t.Errorf("the attack reported %d results, want 8: %v", len(got), got)
	}
	for k, v := range got {
		if strings.HasPrefix(v, "ok") {
			t.Errorf("ATTACK SUCCEEDED: %s: %s", k, v)
		}
	}
	r := runCell(t, "uidvictim", "uid", `open("secret.txt").read() + " " + str(sorted(os.listdir(".")))`)
	if r["status"] != "ok" || !strings.Contains(fmt.Sprint(r["result"]), "victim's secret") || strings.Contains(fmt.Sprint(r["result"]), "planted") {
		t.Errorf("the victim after the attack: %v", r)
	}
	serverFine(t)
}

// TestAttack_FillWorkDir: on a server with --kernel-work-size 16MiB a
// kernel writes small files into its work dir until it cannot: ENOSPC at
// 16 MiB, however many files, nothing on the host's disk, and the server's
// other kernels (and the shared server's canary) carry on.
func TestAttack_FillWorkDir(t *testing.T) {
	t.Parallel()
	const size = 16 << 20
	s, cleanup, err := launch(false, "--kernel-work-size", fmt.Sprint(size))
	t.Cleanup(cleanup)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.execute("", "filler", prelude+`
n = 0
def fill():
    global n
    while True:
        with open("f%06d" % n, "wb") as f:
            f.write(b"x" * 16384)
        n += 1
res = {"fill": attempt(fill)}
res["files"] = n
st = os.statvfs(".")
res["size"] = st.f_blocks * st.f_frsize
res["cwd"] = os.getcwd()
res["after_rm"] = attempt(lambda: [os.remove("f%06d" % i) for i in range(10)] and open("again", "w").write("ok"))
report(res)
`)
	if err != nil || r["status"] != "ok" {
		t.Fatalf("filler: %v, %v", r, err)
	}
	res := result(t, fmt.Sprint(r["output"]))
	t.Logf("%v", res)
	denied(t, res, "fill", "ENOSPC")
	if n := res["files"].(float64); n < size/16384/2 || n > size/16384 {
		t.Errorf("%v files of 16 KiB before ENOSPC in a %d-byte work dir", n, size)
	}
	if res["size"] != float64(size) {
		t.Errorf("the work dir's file system is %v bytes, want %d", res["size"], size)
	}
	if res["after_rm"] != "ok: 2" {
		t.Errorf("after removing files the kernel cannot write again: %v", res["after_rm"])
	}
	work := res["cwd"].(string)
	if ents, err := os.ReadDir(work); err != nil || len(ents) != 0 {
		t.Errorf("the host's %s holds %d entries (%v): the files reached the host's disk", work, len(ents), err)
	}
	if r, err := s.execute("", "other", "1+1"); err != nil || r["result"] != "2" {
		t.Errorf("another kernel of the server: %v, %v", r, err)
	}
	if r, err := s.execute("", "filler", "len(os.listdir('.'))"); err != nil || r["status"] != "ok" {
		t.Errorf("the filler's kernel after the attack: %v, %v", r, err)
	}
	serverFine(t)
}
