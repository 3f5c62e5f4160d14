package securitytest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Known gaps: attacks that succeed today, each listed in docs/security.md
// under "What is not covered". A test here skips, saying KNOWN GAP, while
// the attack succeeds, and passes once it is refused: then move it among
// the attacks and update the document.

// TestKnownGap_HostUnixSockets: a host service's unix socket that anyone may
// connect to, on the part of the host tree the sandbox shows read-only
// (here /var/tmp; /tmp and /run are the sandbox's own), is reachable from
// a kernel. The network namespace does not cover unix sockets in the file
// system.
func TestKnownGap_HostUnixSockets(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(filepath.Dir(srv.tokenFile), "service.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host service"))
			c.Close()
		}
	}()
	res := probe(t, "gap", "unix", fmt.Sprintf(`
import socket
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(path)
    return s.recv(100)
report({"connect": attempt(connect, %q)})
`, sock))
	serverFine(t)
	if v := fmt.Sprint(res["connect"]); strings.HasPrefix(v, "ok") {
		t.Skipf("KNOWN GAP: a kernel connected to the host's 0777 unix socket %s: %s", sock, v)
	}
}

// TestKnownGap_SysReadable: /sys is the host's, read-only: a kernel lists
// the cgroups of every kernel of the server (their kernel dir names) and
// can read their counters, though not their files.
func TestKnownGap_SysReadable(t *testing.T) {
	t.Parallel()
	res := probe(t, "gap", "sys", `
import glob
res = {"own": os.path.basename(os.path.dirname(os.getcwd()))}
res["cgroups"] = sorted(set(os.path.basename(p) for p in glob.glob("/sys/fs/cgroup/*/**/kernelgate-*/*-[0-9]*", recursive=True)))
res["memory_usage"] = attempt(lambda: [int(open(p).read()) for p in glob.glob("/sys/fs/cgroup/memory/**/kernelgate-*/*-[0-9]*/memory.usage_in_bytes", recursive=True)][:3])
report(res)
`)
	serverFine(t)
	own := res["own"].(string)
	var others []string
	for _, c := range res["cgroups"].([]any) {
		if !strings.HasPrefix(c.(string), own+"-") {
			others = append(others, c.(string))
		}
	}
	if len(others) > 0 {
		t.Skipf("KNOWN GAP: a kernel sees %d other kernels' cgroups in /sys/fs/cgroup (%v) and reads their memory use (%v)", len(others), others, res["memory_usage"])
	}
}

// TestKnownGap_NoAuthCrossSite: without tokens (the default, loopback only)
// any web page the user visits may drive the server. A "simple" cross-site
// POST (text/plain, no preflight) runs code in a kernel, in a session the
// page names in the body; and a page on a DNS-rebound name (evil.example
// resolving to 127.0.0.1) opens /ws, since its Origin matches its Host.
// The HTTP routes check neither Origin nor Content-Type, and the server
// does not check Host.
func TestKnownGap_NoAuthCrossSite(t *testing.T) {
	t.Parallel()
	s, cleanup, err := launch(false)
	t.Cleanup(cleanup)
	if err != nil {
		t.Fatal(err)
	}
	var gaps []string
	req, err := http.NewRequest("POST", s.url+"/api/execute", strings.NewReader(`{"code": "6*7", "session_id": "victim"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && strings.Contains(string(body), `"result":"42"`) {
		gaps = append(gaps, "a cross-site text/plain POST from http://evil.example ran code in session \"victim\"")
	}

	_, port, _ := net.SplitHostPort(s.addr)
	host := "rebind.evil.example:" + port
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/ws", &websocket.DialOptions{
		Host:       host,
		HTTPHeader: http.Header{"Origin": {"http://" + host}},
	})
	if err == nil {
		c.CloseNow()
		gaps = append(gaps, "a WebSocket from a DNS-rebound origin (Host and Origin "+host+") was accepted")
	}
	if code, _, err := s.request("GET", "/healthz", "", nil, nil); err != nil || code != 200 {
		t.Errorf("GET /healthz = %d, %v", code, err)
	}
	if len(gaps) > 0 {
		t.Skipf("KNOWN GAP (no authentication): %s", strings.Join(gaps, "; "))
	}
}
