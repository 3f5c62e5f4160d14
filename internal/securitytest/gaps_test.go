package securitytest

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Known gaps: attacks that succeed today, each listed in docs/security.md
// under "What is not covered". A test here skips, saying KNOWN GAP, while
// the attack succeeds, and passes once it is refused: then move it among
// the attacks and update the document.

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
