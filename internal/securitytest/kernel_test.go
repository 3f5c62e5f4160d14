package securitytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Attacks by code running in a kernel: a notebook user running hostile
// code, who wants other users' data, the server's secrets, the network,
// the host, or to take the service down for everyone.

// TestAttack_ReadAnotherKernelsFiles: bob's kernel goes after a file that
// alice's kernel wrote in its working directory, by every path it can name.
func TestAttack_ReadAnotherKernelsFiles(t *testing.T) {
	t.Parallel()
	secret := "alice-secret-" + randomHex(8)
	a := probe(t, "alice", "files", fmt.Sprintf(`
import ipykernel.connect
open("secret.txt", "w").write(%q)
os.mkdir("sub")
open("sub/secret2.txt", "w").write(%[1]q)
report({"cwd": os.getcwd(), "conn": ipykernel.connect.get_connection_file()})
`, secret))
	aCwd, aConn := a["cwd"].(string), a["conn"].(string)
	aDir := kernelDirOf(t, aCwd)
	// The file is where alice's kernel says, on the host: the paths bob
	// tries are the real ones.
	if b, err := os.ReadFile(filepath.Join(aCwd, "secret.txt")); err != nil || string(b) != secret {
		t.Fatalf("alice's file on the host: %q, %v", b, err)
	}
	var conn struct{ Key string }
	if b, err := os.ReadFile(aConn); err != nil || json.Unmarshal(b, &conn) != nil || len(conn.Key) < 16 {
		t.Fatalf("alice's connection file %s on the host: %v", aConn, err)
	}

	r := runCell(t, "bob", "files", prelude+fmt.Sprintf(`
A, CONN, ADIR, R = %q, %q, %q, %q
res = {}
res["path"] = attempt(lambda: open(A + "/secret.txt").read())
res["subpath"] = attempt(lambda: open(A + "/sub/secret2.txt").read())
res["connection_file"] = attempt(lambda: open(CONN).read())
res["list_kernel_dir"] = attempt(lambda: sorted(os.listdir(ADIR)))
res["list_work_dir"] = attempt(lambda: sorted(os.listdir(A)))
res["list_runtime_dir"] = attempt(lambda: sorted(os.listdir(R)))
res["own_kernel_dir"] = os.path.basename(os.path.dirname(os.getcwd()))
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
res["pids"] = pids
for p in pids + [os.getpid()]:
    for via in ("root" + A + "/secret.txt", "root" + CONN, "cwd/secret.txt", "root/proc/1/root" + A + "/secret.txt"):
        res["/proc/%%d/%%s" %% (p, via)] = attempt(lambda: open("/proc/%%d/%%s" %% (p, via)).read())
found = []
for top in ("/tmp", "/var/tmp", "/dev/shm", "/run", R, os.path.dirname(R), "/proc/1/root" + R):
    for dirpath, dirs, files in os.walk(top):
        found += [os.path.join(dirpath, f) for f in files if f.startswith("secret")]
res["found"] = found
report(res)
`, aCwd, aConn, aDir, srv.runtimeDir))
	out := fmt.Sprint(r["output"])
	if strings.Contains(out, secret) || strings.Contains(out, conn.Key) {
		t.Errorf("ATTACK SUCCEEDED: bob's kernel read alice's file or key:\n%.3000s", out)
	}
	res := result(t, out)
	t.Logf("bob's view: %.1500s", out)
	for _, k := range []string{"path", "subpath", "connection_file", "list_kernel_dir", "list_work_dir"} {
		denied(t, res, k, "ENOENT") // alice's dir does not exist in bob's sandbox
	}
	for k := range res {
		if strings.HasPrefix(k, "/proc/") {
			denied(t, res, k)
		}
	}
	own := res["own_kernel_dir"].(string)
	if got := res["list_runtime_dir"]; got != "ok: ['"+own+"']" {
		t.Errorf("listing the runtime dir shows %v, want only bob's own dir %s", got, own)
	}
	if found, _ := res["found"].([]any); len(found) > 0 {
		t.Errorf("ATTACK SUCCEEDED: bob found %v", found)
	}
	if own == filepath.Base(aDir) {
		t.Errorf("alice and bob share kernel dir %s", own)
	}
	// alice's file is intact.
	if b, err := os.ReadFile(filepath.Join(aCwd, "secret.txt")); err != nil || string(b) != secret {
		t.Errorf("alice's file after the attack: %q, %v", b, err)
	}
	serverFine(t)
}

// TestAttack_ServerSecrets: a kernel looks for the server's environment
// (KERNELGATE_TOKEN and other KERNELGATE_ variables), the host's
// /proc/<pid>/environ and the token file.
func TestAttack_ServerSecrets(t *testing.T) {
	t.Parallel()
	r := runCell(t, "envu", "secrets", prelude+fmt.Sprintf(`
P, TF = %d, %q
res = {}
res["kernelgate_vars"] = sorted(k for k in os.environ if k.upper().startswith("KERNELGATE"))
res["environ"] = dict(os.environ)
pids = [p for p in os.listdir("/proc") if p.isdigit()]
for p in pids + ["1", "self", str(P)]:
    res["/proc/%%s/environ" %% p] = attempt(lambda: open("/proc/%%s/environ" %% p, "rb").read().decode("latin-1"))
res["server_pid_visible"] = os.path.exists("/proc/%%d" %% P)
res["server_cmdline"] = attempt(lambda: open("/proc/%%d/cmdline" %% P).read())
res["token_file"] = attempt(lambda: open(TF).read())
res["token_file_via_proc_root"] = attempt(lambda: open("/proc/1/root" + TF).read())
res["token_dir"] = attempt(lambda: sorted(os.listdir(os.path.dirname(TF))))
report(res)
`, os.Getpid(), srv.tokenFile))
	out := fmt.Sprint(r["output"])
	for user, tok := range srv.tokens {
		if strings.Contains(out, tok) {
			t.Errorf("ATTACK SUCCEEDED: the kernel found %s's token", user)
		}
	}
	if strings.Contains(out, srv.envSecret) || strings.Contains(out, "KERNELGATE_") {
		t.Errorf("ATTACK SUCCEEDED: a KERNELGATE_ variable reached the kernel:\n%.3000s", out)
	}
	res := result(t, out)
	if v, _ := res["kernelgate_vars"].([]any); len(v) != 0 {
		t.Errorf("the kernel's environment has %v", v)
	}
	if res["server_pid_visible"] != false {
		t.Errorf("the server's pid %d is visible in the kernel's /proc", os.Getpid())
	}
	denied(t, res, "server_cmdline", "ENOENT")
	denied(t, res, "/proc/"+fmt.Sprint(os.Getpid())+"/environ", "ENOENT")
	// The token file is on the host's /var/tmp, which the sandbox replaces
	// with an empty dir of its own; on the host it is root's, 0600
	// (TestAttack_AuditPolicy's server shows a /var/tmp dir is not listed).
	denied(t, res, "token_file", "ENOENT")
	denied(t, res, "token_file_via_proc_root", "EACCES", "ENOENT")
	denied(t, res, "token_dir", "ENOENT")
	serverFine(t)
}

// TestAttack_NetworkEgress: a kernel tries to open TCP connections to a
// listener on the host's loopback, to the server's own port, to the
// host's other addresses and to the internet.
func TestAttack_NetworkEgress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", ":0") // every address of the host
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	lport := ln.Addr().(*net.TCPAddr).Port
	_, sport, _ := net.SplitHostPort(srv.addr)
	res := probe(t, "net", "egress", fmt.Sprintf(`
import socket
LP, SP, HOSTIPS = %d, %s, %s
res = {}
targets = [("127.0.0.1", LP), ("127.0.0.1", SP), ("localhost", SP), ("::1", SP), ("1.1.1.1", 53), ("8.8.8.8", 443)]
targets += [(ip, LP) for ip in HOSTIPS] + [(ip, SP) for ip in HOSTIPS]
for h, p in targets:
    res["tcp %%s %%d" %% (h, p)] = attempt(lambda: socket.create_connection((h, p), timeout=3).close())
res["udp 8.8.8.8 53"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)))
res["dns"] = attempt(lambda: socket.getaddrinfo("example.com", 443))
res["interfaces"] = sorted(n for _, n in socket.if_nameindex())
report(res)
`, lport, sport, pyList(hostIPs(t))))
	t.Logf("%v", res)
	for k := range res {
		if strings.HasPrefix(k, "tcp ") || strings.HasPrefix(k, "udp ") || k == "dns" {
			denied(t, res, k)
		}
	}
	if fmt.Sprint(res["interfaces"]) != "[lo]" {
		t.Errorf("the kernel has network interfaces %v, want only its own lo", res["interfaces"])
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("ATTACK SUCCEEDED: the host listener accepted %d connection(s) from the kernel", n)
	}
	serverFine(t)
}

// TestAttack_ForkBomb: a classic fork bomb. The pids cgroup must hold it at
// the limit, the execution timeout must stop the cell, and a reset must
// give the session a working kernel; nobody else notices.
func TestAttack_ForkBomb(t *testing.T) {
	t.Parallel()
	w := dialWS(t, "fork")
	c := w.runOK("bomb", prelude+`report({"cwd": os.getcwd()})`, 60*time.Second)
	cg := kernelPidsCgroup(t, kernelDirOf(t, result(t, fmt.Sprint(c.final["stdout"]))["cwd"].(string)))

	var peak atomic.Int64
	var events atomic.Value // the last pids.events read: "max N", N failed forks
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if n := readInt(filepath.Join(cg, "pids.current")); n > peak.Load() {
				peak.Store(n)
			}
			if b, err := os.ReadFile(filepath.Join(cg, "pids.events")); err == nil {
				events.Store(strings.TrimSpace(string(b)))
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	bomb := w.run("bomb", `
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
`, 60*time.Second)
	// A stuck kernel is restarted after the interrupt; either way the rest
	// of the bomb is killed by the reset, which empties the cgroup.
	w.send(map[string]any{"type": "reset_kernel"})
	w.until(60*time.Second, isRestarted)
	close(stop)
	wg.Wait()
	ev, _ := events.Load().(string)
	t.Logf("bomb stopped after %v; peak pids.current %d; pids.events %q; told: %s", bomb.took.Round(time.Millisecond), peak.Load(), ev, bomb.errors())
	if p := peak.Load(); p > pidsLimit || p < pidsLimit-8 {
		t.Errorf("peak pids.current %d: want the bomb held at the %d limit", p, pidsLimit)
	}
	var failed int
	if _, err := fmt.Sscanf(ev, "max %d", &failed); err != nil || failed == 0 {
		t.Errorf("pids.events %q: want failed forks counted (the limit was hit)", ev)
	}
	if !strings.Contains(bomb.errors(), "execution timeout") {
		t.Errorf("the bomb's cell was not stopped by the execution timeout:\n%s", bomb.errors())
	}
	w.runOK("bomb", "1+1", 60*time.Second)
	serverFine(t)
	// The canary can still start processes.
	if r := runCell(t, "canary", "canary", "import subprocess\nsubprocess.run(['/bin/true']).returncode"); r["result"] != "0" {
		t.Errorf("the canary cannot start a process after the bomb: %v", r)
	}
}

// TestAttack_MemoryExhaustion: a cell allocates four times its kernel's
// memory limit. The kernel is killed, the user is told why, the kernel
// comes back.
func TestAttack_MemoryExhaustion(t *testing.T) {
	t.Parallel()
	w := dialWS(t, "mem")
	w.runOK("hog", "x = 1", 60*time.Second)
	c := w.run("hog", fmt.Sprintf("chunks = [bytes([i %% 251]) * (1 << 20) for i in range(%d)]", 4*memoryLimit>>20), 60*time.Second)
	told := c.errors()
	t.Logf("after %v: %s", c.took.Round(time.Millisecond), told)
	if c.final["status"] == "ok" {
		t.Fatalf("ATTACK SUCCEEDED: allocated %d MiB under a %d MiB limit", 4*memoryLimit>>20, memoryLimit>>20)
	}
	if !strings.Contains(told, "out of memory") && !strings.Contains(told, "memory limit") {
		t.Errorf("the user was not told the kernel ran out of memory:\n%s", told)
	}
	w.restarted(c.msgs, 60*time.Second)
	if r := w.runOK("hog", "1+1", 60*time.Second); r.final["result"] != "2" {
		t.Errorf("after the restart: %v", r.final)
	}
	serverFine(t)
}

// TestAttack_FillDisk: a kernel writes one endless file in its work dir,
// then fills /tmp with files below the file size limit, then tries to
// lift the limit.
func TestAttack_FillDisk(t *testing.T) {
	t.Parallel()
	res := probe(t, "disk", "fill", `
import resource
def fill(path):
    # Appends 1 MiB at a time, up to 1 GiB: (error name or "none", bytes).
    n = 0
    try:
        with open(path, "wb") as f:
            while n < (1 << 30):
                f.write(b"x" * (1 << 20))
                f.flush()
                n += 1 << 20
        return "none", n
    except OSError as e:
        return _errno.errorcode[e.errno] + ": " + e.strerror, n
def fill_many(d):
    total = 0
    for i in range(1000):
        err, n = fill(os.path.join(d, "f%d" % i))
        total += n
        if not err.startswith("EFBIG"):
            return err, total
    return "none", total
res = {}
res["work_error"], res["work_bytes"] = fill("big")
res["cwd"] = os.getcwd()
os.mkdir("/tmp/fill")
res["tmp_error"], res["tmp_bytes"] = fill_many("/tmp/fill")
res["raise_limit"] = attempt(resource.setrlimit, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
for f in os.listdir("/tmp/fill"):
    os.remove("/tmp/fill/" + f)
report(res)
`)
	t.Logf("%v", res)
	if !strings.HasPrefix(fmt.Sprint(res["work_error"]), "EFBIG: File too large") || res["work_bytes"] != float64(fileLimit) {
		t.Errorf("writing an endless file in the work dir: %v after %v bytes; want EFBIG (File too large) at %d", res["work_error"], res["work_bytes"], fileLimit)
	}
	if fi, err := os.Stat(filepath.Join(res["cwd"].(string), "big")); err != nil || fi.Size() > fileLimit {
		t.Errorf("the file on the host: %v, %v; want at most %d bytes", fi, err, fileLimit)
	}
	if n, _ := res["tmp_bytes"].(float64); !strings.HasPrefix(fmt.Sprint(res["tmp_error"]), "ENOSPC: No space left on device") || n > tmpLimit {
		t.Errorf("filling /tmp: %v after %v bytes; want ENOSPC (No space left on device) by %d", res["tmp_error"], res["tmp_bytes"], tmpLimit)
	}
	denied(t, res, "raise_limit", "ValueError")
	serverFine(t)
}

// TestAttack_PrintFlood: cells print without end, in 10 kB lines and in
// 32 MiB prints, each waiting for its output to be sent. The client gets
// the stream cap's notice and no more than the cap, the cell is stopped,
// and the server's live heap stays bounded.
func TestAttack_PrintFlood(t *testing.T) {
	t.Parallel()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	var gap atomic.Bool // the known gap below happened: a kernel ran on
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			// Live memory: what a GC cannot free.
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		t.Logf("server's live heap: %d MiB before the floods, peak %d MiB", base>>20, peak.Load()>>20)
		switch {
		case peak.Load() <= base+floodHeapBound:
		case gap.Load():
			t.Logf("KNOWN GAP: while a kernel ran on after its cell ended, the server's live heap grew from %d to %d MiB", base>>20, peak.Load()>>20)
		default:
			t.Errorf("the server's live heap grew from %d to %d MiB during the floods", base>>20, peak.Load()>>20)
		}
		serverFine(t)
	})
	for _, tt := range []struct {
		name    string
		size    int      // of each print
		endings []string // what may stop the cell
	}{
		{"10 kB lines", 10000, []string{"execution timeout"}},
		// The kernel may fill its memory with output it cannot send fast
		// enough: then its memory limit stops it.
		{"32 MiB prints", 32 << 20, []string{"execution timeout", "memory limit"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := dialWS(t, "flood")
			session := "flood-" + strings.Fields(tt.name)[1]
			c := w.runOK(session, prelude+`report({"cwd": os.getcwd()})`, 60*time.Second)
			cwd := result(t, fmt.Sprint(c.final["stdout"]))["cwd"].(string)
			printed := func() int64 {
				b, _ := os.ReadFile(filepath.Join(cwd, "printed"))
				n, _ := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
				return n
			}
			flood := w.run(session, fmt.Sprintf(`
import sys
line = "x" * (%d - 1) + "\n"
n = 0
fd = os.open("printed", os.O_WRONLY | os.O_CREAT, 0o600)
while True:
    sys.stdout.write(line)
    sys.stdout.flush()
    n += len(line)
    os.pwrite(fd, b"%%15d" %% n, 0)
`, tt.size), 60*time.Second)
			var streamed int
			notice := ""
			for _, m := range flood.msgs {
				if m["type"] == "stream_output" && m["is_last"] == false {
					if m["truncated"] == true {
						notice = fmt.Sprint(m["content"])
					} else {
						streamed += len(fmt.Sprint(m["content"]))
					}
				}
			}
			told := flood.errors()
			n0 := printed()
			t.Logf("the kernel printed %d bytes in %v; the client got %d bytes of stdout; told: %s %s",
				n0, flood.took.Round(time.Millisecond), streamed, strings.TrimSpace(notice), told)
			// A kernel that fills its memory with output it could not send
			// yet may die before the client got the cap's worth.
			if !strings.Contains(notice, "printed more than") && (tt.size < 1<<20 || streamed >= streamCap) {
				t.Errorf("no stream cap notice; got %d bytes of stdout", streamed)
			}
			if streamed > streamCap {
				t.Errorf("the client got %d bytes of stdout, over the %d cap", streamed, streamCap)
			}
			// The cell is over for the client: the kernel must have stopped.
			time.Sleep(time.Second)
			if n1 := printed(); n1 > n0 {
				// Stop it before anything else: it floods the server.
				w.send(map[string]any{"type": "reset_kernel"})
				w.until(60*time.Second, isRestarted)
				if strings.Contains(told, "lost track of the cell") {
					gap.Store(true)
					t.Skipf("KNOWN GAP (docs/security.md): prints larger than half the kernel journal push the cell's own events out of it; "+
						"the cell ends as %q and escapes the execution timeout, the kernel printed %d more bytes in the second after", strings.TrimSpace(told), n1-n0)
				}
				t.Errorf("ATTACK SUCCEEDED: the kernel printed %d more bytes in the second after its cell ended (%s)", n1-n0, told)
			}
			if !slices.ContainsFunc(tt.endings, func(e string) bool { return strings.Contains(told, e) }) {
				t.Errorf("the flood was not stopped by any of %q:\n%s", tt.endings, told)
			}
			w.runOK(session, "1+1", 60*time.Second)
		})
	}
}

// TestAttack_CPUSpin: busy loops past the execution timeout, one that
// lets itself be interrupted and one that ignores SIGINT.
func TestAttack_CPUSpin(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, code, want string
	}{
		{"interruptible", "while True:\n    pass", "KeyboardInterrupt"},
		{"ignores SIGINT", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", "is being restarted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := dialWS(t, "spin")
			w.runOK("spin-"+tt.name, "x = 1", 60*time.Second)
			c := w.run("spin-"+tt.name, tt.code, 60*time.Second)
			told := c.errors()
			if details, ok := c.final["error_details"].(map[string]any); ok {
				told += fmt.Sprint(details["ename"])
			}
			t.Logf("stopped after %v: %s", c.took.Round(time.Millisecond), told)
			if !strings.Contains(told, "execution timeout") || !strings.Contains(told, tt.want) {
				t.Errorf("want the execution timeout and %q:\n%s", tt.want, told)
			}
			if c.took > executionTimeout+15*time.Second {
				t.Errorf("the spin ran %v", c.took)
			}
			w.runOK("spin-"+tt.name, "1+1", 60*time.Second)
			serverFine(t)
		})
	}
}

// TestAttack_SignalAndPtraceOutside: a kernel tries to kill and ptrace the
// server, to find any process outside its sandbox, and finally kills every
// process it can (kill -1): that is its own sandbox only. The canary's
// kernel runs as the same uid outside the sandbox and must survive.
func TestAttack_SignalAndPtraceOutside(t *testing.T) {
	t.Parallel()
	P := os.Getpid()
	res := probe(t, "kill", "killer", fmt.Sprintf(`
import ctypes, signal
P = %d
libc = ctypes.CDLL(None, use_errno=True)
def ptrace_attach(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
res = {}
res["kill_server"] = attempt(os.kill, P, signal.SIGKILL)
res["ptrace_server"] = attempt(ptrace_attach, P)
res["pidfd_server"] = attempt(os.pidfd_open, P)
res["pid1_cmdline"] = attempt(lambda: open("/proc/1/cmdline").read()[:40])
# Every pid (or thread id) that kill() finds, and the process it belongs to.
found = set()
for pid in list(range(1, 1 << 16)) + list(range(P - 64, P + 64)):
    try:
        os.kill(pid, 0)
        found.add(pid)
    except ProcessLookupError:
        pass
    except PermissionError:
        found.add(pid)
res["signalable"] = sorted(found)
res["signalable_processes"] = sorted(set(int(l.split()[1]) for p in found for l in open("/proc/%%d/status" %% p) if l.startswith("Tgid:")))
res["proc"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
report(res)
`, P))
	t.Logf("%v", res)
	denied(t, res, "kill_server", "ESRCH")
	// The seccomp filter refuses ptrace before the pid is looked up.
	denied(t, res, "ptrace_server", "EPERM", "ESRCH")
	denied(t, res, "pidfd_server", "ESRCH")
	// The pids kill() finds are the threads of the processes in the
	// kernel's own /proc: bwrap's init and python.
	if fmt.Sprint(res["signalable_processes"]) != fmt.Sprint(res["proc"]) || len(res["proc"].([]any)) > 4 || slices.Contains(res["signalable"].([]any), any(float64(P))) {
		t.Errorf("the kernel can signal pids %v of processes %v; its /proc shows %v: want only its own", res["signalable"], res["signalable_processes"], res["proc"])
	}
	if v := fmt.Sprint(res["pid1_cmdline"]); !strings.HasPrefix(v, "ok: '/usr/bin/bwrap") {
		t.Errorf("pid 1 in the kernel's view is %v, want its own bwrap", v)
	}
	// kill -1 from a child: every process it may signal but itself and
	// its pid 1. That is the kernel (not the canary: its pid namespace hides
	// it, and it runs as another uid).
	r := runCell(t, "kill", "killer", "import os, signal\nif os.fork() == 0:\n    os.kill(-1, signal.SIGKILL)\n    os._exit(0)\nimport time; time.sleep(10)")
	t.Logf("kill -1: %v", r["error"])
	if !strings.Contains(fmt.Sprint(r["error"]), "kernel died") {
		t.Errorf("kill -1 did not kill the kernel itself: %v", r)
	}
	serverFine(t)
}

// TestAttack_WriteOutsideWorkDir: a kernel tries to write to the system,
// the runtime dir, its own kernel dir (where the server writes as root)
// and /sys and /proc.
func TestAttack_WriteOutsideWorkDir(t *testing.T) {
	t.Parallel()
	tag := "kgsec-" + randomHex(6)
	res := probe(t, "write", "writer", fmt.Sprintf(`
TAG, R = %q, %q
K = os.path.dirname(os.getcwd())
targets = {"usr": "/usr/" + TAG, "etc": "/etc/" + TAG, "var_tmp": "/var/tmp/" + TAG, "root_home": "/root/" + TAG,
           "opt": "/opt/" + TAG, "runtime_dir": R + "/" + TAG, "in_kernel_dir": K + "/" + TAG,
           "python_binary": "/usr/bin/python3", "stdlib": os.__file__, "etc_passwd": "/etc/passwd",
           "sys": "/sys/kernel/" + TAG, "proc_sys": "/proc/sys/kernel/hostname", "sysrq": "/proc/sysrq-trigger",
           "cgroup_procs": "/sys/fs/cgroup/pids/cgroup.procs"}
res = {"kernel_dir": K, "tmp_listing": sorted(os.listdir("/tmp"))}
for k, p in targets.items():
    res[k] = attempt(lambda: open(p, "a").write("x"))
res["mkdir_runtime_dir"] = attempt(os.mkdir, R + "/" + TAG)
res["symlink_in_kernel_dir"] = attempt(os.symlink, "/etc/shadow", K + "/connection-99.json")
res["rename_work_dir"] = attempt(os.rename, K + "/work", K + "/" + TAG)
res["chmod_kernel_dir"] = attempt(os.chmod, K, 0o777)
res["control_work"] = attempt(lambda: open("written.txt", "w").write("x"))
res["control_tmp"] = attempt(lambda: open("/tmp/" + TAG, "w").write("x"))
report(res)
`, tag, srv.runtimeDir))
	t.Logf("%v", res)
	for _, k := range []string{"usr", "etc", "var_tmp", "root_home", "opt", "python_binary", "stdlib", "etc_passwd", "sys", "cgroup_procs"} {
		denied(t, res, k, "EROFS", "EACCES", "ENOENT")
	}
	for _, k := range []string{"in_kernel_dir", "symlink_in_kernel_dir", "rename_work_dir", "chmod_kernel_dir", "proc_sys"} {
		denied(t, res, k, "EROFS", "EACCES", "EPERM")
	}
	denied(t, res, "sysrq", "EROFS", "EACCES", "EPERM", "ENOENT")
	// The runtime dir is under /tmp, as by default ($TMPDIR/kernelgate-<pid>),
	// so in the sandbox its path leads into the kernel's private /tmp,
	// where bwrap made the dirs on the way to the kernel dir: writes there
	// succeed and stay in that tmpfs (checked on the host below). A runtime
	// dir elsewhere is hidden under a root-owned tmpfs instead (see the
	// sandbox package's tests).
	if !strings.HasPrefix(srv.runtimeDir, "/tmp/") {
		denied(t, res, "runtime_dir", "EROFS", "EACCES", "EPERM")
		denied(t, res, "mkdir_runtime_dir", "EROFS", "EACCES", "EPERM")
	}
	if res["control_work"] != "ok: 1" || res["control_tmp"] != "ok: 1" {
		t.Errorf("the kernel cannot write its own work dir or /tmp: %v, %v", res["control_work"], res["control_tmp"])
	}
	kdir := res["kernel_dir"].(string)
	for _, p := range []string{"/usr/" + tag, "/etc/" + tag, "/var/tmp/" + tag, "/root/" + tag, "/opt/" + tag, "/tmp/" + tag,
		filepath.Join(srv.runtimeDir, tag), filepath.Join(kdir, tag), filepath.Join(kdir, "connection-99.json")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("ATTACK SUCCEEDED: %s exists on the host", p)
			os.RemoveAll(p)
		}
	}
	if _, err := os.Stat(filepath.Join(kdir, "work", "written.txt")); err != nil {
		t.Errorf("the control write is not on the host: %v", err)
	}
	serverFine(t)
}

// TestAttack_PrivilegeEscalation: a kernel checks its credentials and
// tries to become root, make namespaces, mount, leave its cgroups or read
// root's files.
func TestAttack_PrivilegeEscalation(t *testing.T) {
	t.Parallel()
	res := probe(t, "priv", "escalate", `
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    if getattr(libc, name)(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
res = {"uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups()}
for l in open("/proc/self/status"):
    k, _, v = l.partition(":")
    if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        res[k] = v.strip()
res["setuid_0"] = attempt(os.setuid, 0)
res["setgid_0"] = attempt(os.setgid, 0)
# unshare(2) of a user namespace needs a single-threaded process: a fresh
# interpreter, not the kernel's.
import subprocess, sys
def unshare_in_child(flags):
    out = subprocess.run([sys.executable, "-c", "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
        "print('ok' if libc.unshare(%d) == 0 else __import__('errno').errorcode[ctypes.get_errno()])" % flags],
        capture_output=True, text=True).stdout.strip()
    if out != "ok":
        raise OSError(getattr(_errno, out, 0), out)
res["unshare_user"] = attempt(unshare_in_child, 0x10000000)
res["unshare_mount"] = attempt(unshare_in_child, 0x00020000)
res["unshare_net"] = attempt(unshare_in_child, 0x40000000)
res["mount_tmpfs"] = attempt(call, "mount", b"none", b"/mnt", b"tmpfs", 0, None)
res["chroot"] = attempt(os.chroot, "/")
res["sethostname"] = attempt(call, "sethostname", b"evil", 4)
res["read_shadow"] = attempt(lambda: open("/etc/shadow").read())
res["read_root_home"] = attempt(os.listdir, "/root")
res["leave_memory_cgroup"] = attempt(lambda: open("/sys/fs/cgroup/memory/cgroup.procs", "w").write(str(os.getpid())))
res["raise_memory_limit"] = attempt(lambda: [open(os.path.join(d, "memory.limit_in_bytes"), "w").write("-1") for d, _, f in os.walk("/sys/fs/cgroup/memory") if "memory.limit_in_bytes" in f][:1])
report(res)
`)
	t.Logf("%v", res)
	uid := fmt.Sprint(res["uid"].([]any)[0])
	if id := res["uid"].([]any)[0].(float64); id < 61000 || id > 61999 || fmt.Sprint(res["uid"], res["gid"], res["groups"]) != fmt.Sprintf("[%[1]s %[1]s %[1]s] [%[1]s %[1]s %[1]s] []", uid) {
		t.Errorf("credentials %v %v %v, want one id of 61000-61999 everywhere and no groups", res["uid"], res["gid"], res["groups"])
	}
	if res["Seccomp"] != "2" {
		t.Errorf("Seccomp = %v, want 2 (a filter)", res["Seccomp"])
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if res[k] != "0000000000000000" {
			t.Errorf("%s = %v, want no capabilities", k, res[k])
		}
	}
	if res["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs = %v, want 1 (setuid binaries give nothing)", res["NoNewPrivs"])
	}
	// setuid(0): EINVAL, root is not mapped in the sandbox's user namespace.
	denied(t, res, "setuid_0", "EINVAL", "EPERM")
	denied(t, res, "setgid_0", "EINVAL", "EPERM")
	// A new user namespace would give capabilities in it: bwrap's
	// --disable-userns sets the sandbox's limit to 0 (ENOSPC).
	denied(t, res, "unshare_user", "ENOSPC", "EPERM")
	for _, k := range []string{"unshare_mount", "unshare_net", "mount_tmpfs", "chroot", "sethostname"} {
		denied(t, res, k, "EPERM")
	}
	denied(t, res, "read_shadow", "EACCES")
	denied(t, res, "read_root_home", "EACCES")
	denied(t, res, "leave_memory_cgroup", "EROFS", "EACCES", "ENOENT")
	if v := fmt.Sprint(res["raise_memory_limit"]); v != "ok: []" {
		denied(t, res, "raise_memory_limit", "EROFS", "EACCES")
	}
	serverFine(t)
}
