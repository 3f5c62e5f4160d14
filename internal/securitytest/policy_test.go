package securitytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminKernel is an entry of GET /api/admin/kernels.
type adminKernel struct {
	ID, Owner, Spec, State string
	Started                time.Time `json:"started"`
	LastActivity           time.Time `json:"last_activity"`
	Restarts               *int      `json:"restarts"`
}

// TestAttack_AdminRoute: only administrators learn of other users'
// kernels; everyone else gets the 404 of a path that does not exist.
func TestAttack_AdminRoute(t *testing.T) {
	t.Parallel()
	code, body, err := srv.request(http.MethodGet, "/api/admin/kernels", "admin", nil, nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /api/admin/kernels as the administrator: %d %s, %v", code, body, err)
	}
	var list []adminKernel
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	canary := false
	for _, k := range list {
		if k.Owner == "canary" {
			canary = k.ID != "" && k.Spec == "python3" && k.State != "" && !k.Started.IsZero() && !k.LastActivity.IsZero() && k.Restarts != nil
		}
	}
	if !canary {
		t.Errorf("the administrator's list lacks the canary's kernel with id, spec, state, started and restarts: %s", body)
	}

	_, notFound, err := srv.request(http.MethodGet, "/api/admin/no-such-route", "bob", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"bob", "canary", envUser} {
		code, body, err := srv.request(http.MethodGet, "/api/admin/kernels", user, nil, nil)
		if err != nil || code != 404 || string(body) != string(notFound) {
			t.Errorf("ATTACK SUCCEEDED? GET /api/admin/kernels as %s: %d %q, %v; want the 404 of an unknown path (%q)", user, code, body, err, notFound)
		}
	}
	if code, _, err := srv.request(http.MethodGet, "/api/admin/kernels", "", nil, nil); err != nil || code != 401 {
		t.Errorf("GET /api/admin/kernels without a token: %d, %v; want 401", code, err)
	}
	serverFine(t)
}

// TestAttack_AuditPolicy runs a server whose config file turns the Python
// audit policy on (and gives the python3 kernelspec its own memory limit):
// programs and sockets beyond loopback are refused with PermissionError
// before the sandbox is even asked, and ctypes still gets around the hook,
// which is why the sandbox stays the boundary.
func TestAttack_AuditPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "kernelgate.toml")
	if err := os.WriteFile(file, []byte(`
python-policy = "audit"
[kernelspecs.python3]
memory = "192MiB"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, cleanup, err := launch(false, "--config", file, "--admin-users", "anonymous")
	t.Cleanup(cleanup)
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := s.request(http.MethodGet, "/readyz", "", nil, nil)
	if err != nil || code != 200 || !strings.Contains(string(body), `kernelspec "python3": memory 192 MiB`) {
		t.Errorf("GET /readyz = %d %q, %v; want the python3 kernelspec's memory limit", code, body, err)
	}

	// A host service on a 0777 unix socket (see TestKnownGap_HostUnixSockets).
	sockDir, err := os.MkdirTemp("/var/tmp", "kgpolicy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "service.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}

	r, err := s.execute("", "policy", prelude+fmt.Sprintf(`
import ctypes, socket, subprocess
def unix(path):
    c = socket.socket(socket.AF_UNIX); c.settimeout(3); c.connect(path)
def tcp(addr):
    socket.create_connection(addr, timeout=3).close()
def child_exec():
    pid = os.fork()
    if pid == 0:
        try:
            os.execv("/bin/true", ["true"])
        finally:
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
report({
    "subprocess": attempt(subprocess.run, ["/bin/true"]),
    "os.system": attempt(os.system, "true"),
    "os.popen": attempt(lambda: os.popen("id").read()),
    "child exec status": attempt(child_exec),
    "tcp 1.1.1.1:53": attempt(tcp, ("1.1.1.1", 53)),
    "host unix socket": attempt(unix, %q),
    "ctypes system": attempt(lambda: ctypes.CDLL(None).system(b"exit 3") >> 8),
    "uid": os.getuid(),
})
`, sock))
	if err != nil || r["status"] != "ok" {
		t.Fatalf("probe: %v, %v", r, err)
	}
	res := result(t, fmt.Sprint(r["output"]))
	t.Logf("%v", res)
	for _, key := range []string{"subprocess", "os.system", "os.popen", "tcp 1.1.1.1:53", "host unix socket"} {
		if v := fmt.Sprint(res[key]); !strings.Contains(v, "kernelgate policy:") {
			t.Errorf("%s: %s; want a PermissionError from the policy", key, v)
		}
	}
	if v := fmt.Sprint(res["child exec status"]); v != "ok: 99" {
		t.Errorf("exec in a forked child: %s; want it refused (the child exits 99)", v)
	}
	// The documented bypass: ctypes calls libc directly. What it runs is
	// still in the sandbox, as the unprivileged user.
	if v, uid := fmt.Sprint(res["ctypes system"]), res["uid"].(float64); v != "ok: 3" || uid < 61000 || uid > 61999 {
		t.Errorf("ctypes: %s as uid %v; the known bypass should run, confined, as a kernel uid (61000-61999)", v, uid)
	}
	// The kernel's own machinery still works: another cell, input is
	// covered by internal/bootstrap's tests.
	if r, err := s.execute("", "policy", "6*7"); err != nil || r["result"] != "42" {
		t.Errorf("after the probe: %v, %v", r, err)
	}
	// Without authentication, --admin-users anonymous makes the local user
	// an administrator.
	code, body, err = s.request(http.MethodGet, "/api/admin/kernels", "", nil, nil)
	if err != nil || code != 200 || !strings.Contains(string(body), `"owner":"anonymous"`) {
		t.Errorf("GET /api/admin/kernels as the local administrator: %d %s, %v", code, body, err)
	}
}
