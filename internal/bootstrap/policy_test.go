package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPolicy(t *testing.T) {
	for _, tt := range []struct {
		name    string
		want    string // a fragment of the code; "" for none
		wantErr bool
	}{
		{PolicyNone, "", false},
		{PolicyAudit, "sys.addaudithook(hook)", false},
		{"", "", true},
		{"strict", "", true},
		{"Audit", "", true},
	} {
		code, err := Policy(tt.name)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("Policy(%q) succeeded", tt.name)
		case tt.wantErr && !strings.Contains(err.Error(), "want none or audit"):
			t.Errorf("Policy(%q) error %q does not name the valid policies", tt.name, err)
		case !tt.wantErr && err != nil:
			t.Errorf("Policy(%q): %v", tt.name, err)
		case tt.want == "" && code != "":
			t.Errorf("Policy(%q) = %d bytes of code, want none", tt.name, len(code))
		case !strings.Contains(code, tt.want):
			t.Errorf("Policy(%q) lacks %q", tt.name, tt.want)
		}
	}
	// Appended to the bootstrap in one cell: it must start on a line of its own.
	if code, _ := Policy(PolicyAudit); !strings.HasPrefix(code, "\n") {
		t.Error("the audit policy does not start with a newline")
	}
}

// policyHarness sets up listeners, then runs the bootstrap and the policy
// exactly as a kernel does (one piece of code), then tries each case and
// prints {"name": "ok" | "<ExceptionType>: <message>"} as JSON.
const policyHarness = `
import json, os, socket, sys
cfg = json.load(sys.stdin)
tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen(8)
port = tcp.getsockname()[1]
outside = socket.socket(socket.AF_UNIX); outside.bind(cfg["outside_sock"]); outside.listen(1)
if cfg["policy"]:
    exec(compile(cfg["boot"], "<boot>", "exec"), {"get_ipython": lambda: None, "__name__": "__kgboot__"})
res = {}
for name, code in cfg["cases"]:
    try:
        exec(code, {"port": port, "cfg": cfg, "os": os, "socket": socket})
        res[name] = "ok"
    except BaseException as e:
        res[name] = "%s: %s" % (type(e).__name__, e)
res["policy attribute"] = getattr(sys.modules.get("_kernelgate"), "policy", "none")
print("KGRESULT " + json.dumps(res))
`

// TestAuditPolicyInPython runs the audit policy in a real interpreter and
// checks what it refuses and what still works. Every refused case is also
// run without the policy, where it must work, so a refusal is the policy's.
func TestAuditPolicyInPython(t *testing.T) {
	audit, err := Policy(PolicyAudit)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	outside, err := os.MkdirTemp("/var/tmp", "kgpolicy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })

	// No case sends a packet beyond this machine, with or without the
	// policy: UDP connects send nothing, and 0.0.0.0 is this host.
	type tc struct{ name, code, refused string }
	cases := []tc{
		{"subprocess.run", "import subprocess; subprocess.run(['/bin/true'], check=True)", "starting programs is not allowed in this kernel (subprocess.Popen ['/bin/true'])"},
		{"os.system", "assert os.system('true') == 0", "(os.system b'true')"},
		{"os.popen", "os.popen('true').read()", "subprocess.Popen"},
		{"os.execv in a child", "import os\npid = os.fork()\nif pid == 0:\n    try:\n        os.execv('/bin/true', ['true'])\n    finally:\n        os._exit(7)\n_, st = os.waitpid(pid, 0)\nassert os.waitstatus_to_exitcode(st) == 0, st", "AssertionError"},
		// On Linux os.spawn* are fork and exec in Python: the child's exec
		// is refused and it exits 127.
		{"os.spawnv", "assert os.spawnv(os.P_WAIT, '/bin/true', ['true']) == 0", "AssertionError"},
		{"os.posix_spawn", "os.waitpid(os.posix_spawn('/bin/true', ['true'], {}), 0)", "(os.posix_spawn ['true'])"},
		{"udp connect outside", "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('192.0.2.1', 9)); s.close()", "socket.connect to ('192.0.2.1', 9) is not allowed"},
		{"tcp connect 0.0.0.0", "socket.create_connection(('0.0.0.0', port), timeout=5).close()", "socket.connect to ('0.0.0.0', "},
		{"udp sendto 0.0.0.0", "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('0.0.0.0', port)); s.close()", "socket.sendto to ('0.0.0.0', "},
		{"bind any address", "s = socket.socket(); s.bind(('', 0)); s.close()", "socket.bind to ('', 0)"},
		{"bind a host name", "s = socket.socket(); s.bind((socket.gethostname(), 0)); s.close()", "socket.bind to ("},
		{"unix socket outside /tmp and HOME", "s = socket.socket(socket.AF_UNIX); s.connect(cfg['outside_sock']); s.close()", "socket.connect to '" + outside},
	}
	allowedCases := []tc{
		{"tcp connect 127.0.0.1", "socket.create_connection(('127.0.0.1', port), timeout=5).close()", ""},
		{"tcp connect localhost", "socket.create_connection(('localhost', port), timeout=5).close()", ""},
		{"bind 127.0.0.1", "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.close()", ""},
		{"bind ::1", "s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.close()", ""},
		{"udp sendto 127.0.0.1", "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('127.0.0.1', port)); s.close()", ""},
		{"unix socket under HOME", "s = socket.socket(socket.AF_UNIX); s.bind(os.path.join(os.environ['HOME'], 's%d' % os.getpid())); s.close()", ""},
		{"abstract unix socket", "s = socket.socket(socket.AF_UNIX); s.bind('\\0kgpolicy%d' % os.getpid()); s.close()", ""},
		{"socketpair", "a, b = socket.socketpair(); a.send(b'x'); assert b.recv(1) == b'x'", ""},
		{"files", "open(os.path.join(os.environ['HOME'], 'f'), 'w').write('x')", ""},
		{"fork", "pid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)", ""},
		{"multiprocessing pool", "import multiprocessing as mp\nwith mp.get_context('fork').Pool(2) as p:\n    assert p.map(abs, [-1, -2]) == [1, 2]", ""},
		{"platform.processor", "import platform; platform.processor()", ""},
		{"rebinding names does not unhook", "import ipaddress; ipaddress.ip_address = lambda h: ipaddress.IPv4Address('127.0.0.1'); os.path.realpath = lambda p: '/tmp/x'\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.connect(('192.0.2.1', 9))\nexcept PermissionError:\n    pass\nelse:\n    raise AssertionError('connect passed')", ""},
	}
	all := append(append([]tc{}, cases...), allowedCases...)
	var pairs [][2]string
	for _, c := range all {
		pairs = append(pairs, [2]string{c.name, c.code})
	}
	run := func(policy bool) map[string]string {
		in, err := json.Marshal(map[string]any{
			"policy": policy, "boot": Code() + audit, "cases": pairs,
			"outside_sock": filepath.Join(outside, map[bool]string{true: "p", false: "n"}[policy]),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-c", policyHarness)
		cmd.Stdin = bytes.NewReader(in)
		cmd.Dir = home
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TMPDIR=/tmp"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("harness (policy %v): %v\n%s\n%s", policy, err, out.String(), errb.String())
		}
		for l := range strings.Lines(out.String()) {
			if rest, ok := strings.CutPrefix(l, "KGRESULT "); ok {
				var res map[string]string
				if err := json.Unmarshal([]byte(rest), &res); err != nil {
					t.Fatal(err)
				}
				return res
			}
		}
		t.Fatalf("no result:\n%s\n%s", out.String(), errb.String())
		return nil
	}

	without := run(false)
	for _, c := range all {
		if c.name == "rebinding names does not unhook" {
			continue // meaningful only with the hook
		}
		if without[c.name] != "ok" {
			t.Errorf("without the policy %q: %s, want ok", c.name, without[c.name])
		}
	}
	with := run(true)
	if got := with["policy attribute"]; got != PolicyAudit {
		t.Errorf("_kernelgate.policy = %q, want audit", got)
	}
	for _, c := range cases {
		got := with[c.name]
		if !strings.Contains(got, c.refused) || (c.refused != "AssertionError" && !strings.HasPrefix(got, "PermissionError: kernelgate policy: ")) {
			t.Errorf("with the policy %q: %s\nwant a PermissionError containing %q", c.name, got, c.refused)
		}
	}
	for _, c := range allowedCases {
		if with[c.name] != "ok" {
			t.Errorf("with the policy %q: %s, want ok", c.name, with[c.name])
		}
	}
	if t.Failed() {
		t.Logf("with the policy: %s", cmp.Diff(without, with))
	}
}
