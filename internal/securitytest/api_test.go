package securitytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Attacks through the API: a network client without credentials, a web
// page on another origin, and one user going after another's sessions.

// dialStatus opens a WebSocket to path with the headers and returns the
// handshake's HTTP status and body (101 when it was accepted).
func dialStatus(t *testing.T, path string, hdr http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.url, "http")+path, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil {
		c.CloseNow()
		return resp.StatusCode, ""
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func bearer(user string) http.Header {
	return http.Header{"Authorization": {"Bearer " + srv.tokens[user]}}
}

// TestAttack_WrongToken: requests with no token, a wrong one, or one in the
// wrong form get 401 on every route but the probes, WebSockets included;
// no token reaches the server's log.
func TestAttack_WrongToken(t *testing.T) {
	t.Parallel()
	wrong := "tok-" + randomHex(16)
	for _, tt := range []struct {
		name string
		hdr  map[string]string
		q    string
		want string
	}{
		{"no token", nil, "", "no token"},
		{"wrong bearer", map[string]string{"Authorization": "Bearer " + wrong}, "", "invalid token"},
		{"wrong query token", nil, "?token=" + wrong, "invalid token"},
		{"basic auth with a valid token", map[string]string{"Authorization": "Basic " + srv.tokens["alice"]}, "", "no token"},
		{"valid token as a prefix", map[string]string{"Authorization": "Bearer " + srv.tokens["alice"][:20]}, "", "invalid token"},
	} {
		for _, route := range []struct{ method, path string }{
			{"POST", "/api/execute"}, {"POST", "/api/stream"}, {"GET", "/api/python/variables"},
			{"POST", "/api/python/reset"}, {"GET", "/metrics"}, {"GET", "/"},
		} {
			code, body, err := srv.request(route.method, route.path+tt.q, "", map[string]any{"code": "open('/tmp/pwned','w')"}, tt.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusUnauthorized || !strings.Contains(string(body), tt.want) {
				t.Errorf("%s: %s %s = %d %q, want 401 saying %q", tt.name, route.method, route.path, code, body, tt.want)
			}
		}
		hdr := http.Header{}
		for k, v := range tt.hdr {
			hdr.Set(k, v)
		}
		for _, path := range []string{"/ws", "/ws/execute/x", "/ws/monitoring/x"} {
			if code, body := dialStatus(t, path+tt.q, hdr); code != http.StatusUnauthorized || !strings.Contains(body, tt.want) {
				t.Errorf("%s: WebSocket %s = %d %q, want 401 saying %q", tt.name, path, code, body, tt.want)
			}
		}
	}
	// The probes stay open and say nothing.
	for _, p := range []string{"/healthz", "/readyz", "/health", "/ping"} {
		if code, _, err := srv.request("GET", p, "", nil, nil); err != nil || code != 200 {
			t.Errorf("GET %s without a token = %d, %v", p, code, err)
		}
	}
	// A good token in the query works on WebSockets (browsers cannot set
	// headers), so the 401s above are about the token.
	if code, _ := dialStatus(t, "/ws?token="+url.QueryEscape(srv.tokens["alice"]), nil); code != http.StatusSwitchingProtocols {
		t.Errorf("a valid ?token= was refused: %d", code)
	}
	for user, tok := range srv.tokens {
		if strings.Contains(srv.logs.String(), tok) {
			t.Errorf("%s's token is in the server's log", user)
		}
	}
	if strings.Contains(srv.logs.String(), wrong) {
		t.Errorf("a presented (wrong) token is in the server's log")
	}
	serverFine(t)
}

// TestAttack_CrossOriginWebSocket: a page on another origin opens the
// notebook sockets with a valid token (as a browser would send a
// ?token= it got hold of, or cookies): 403.
func TestAttack_CrossOriginWebSocket(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{"http://evil.example", "https://evil.example:8443", "http://localhost.evil.example", "null"} {
		for _, path := range []string{"/ws", "/ws/execute/x", "/ws/monitoring/x"} {
			hdr := bearer("alice")
			hdr.Set("Origin", origin)
			code, body := dialStatus(t, path, hdr)
			if code != http.StatusForbidden || !strings.Contains(body, "Origin") {
				t.Errorf("Origin %s on %s: %d %q, want 403 naming the Origin", origin, path, code, body)
			}
		}
	}
	// The same request from an allowed origin, and without one, succeeds.
	for _, origin := range []string{"", "http://localhost:3000", srv.url} {
		hdr := bearer("alice")
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		if code, body := dialStatus(t, "/ws", hdr); code != http.StatusSwitchingProtocols {
			t.Errorf("Origin %q: %d %q, want the socket", origin, code, body)
		}
	}
	serverFine(t)
}

// TestAttack_OtherUsersSession: dave knows the name of carol's session and
// tries to resume it, attach to it, run code in it over HTTP and read its
// variables. He only ever reaches sessions of his own.
func TestAttack_OtherUsersSession(t *testing.T) {
	t.Parallel()
	secret := "carol-secret-" + randomHex(8)
	if r := runCell(t, "carol", "notebook", fmt.Sprintf("secret_var = %q\nprint(secret_var)", secret)); r["status"] != "ok" {
		t.Fatalf("carol's cell: %v", r)
	}
	// carol follows her session on a socket: dave must not show up there.
	carol := dialWS(t, "carol")
	carol.send(map[string]any{"type": "resume", "kernel_id": "notebook", "last_seq": 0})

	w := dialWS(t, "dave")
	w.send(map[string]any{"type": "resume", "kernel_id": "notebook", "last_seq": 0})
	m := w.next(10 * time.Second)
	if m["type"] != "error" || !strings.Contains(fmt.Sprint(m["error"]), "no session") {
		t.Errorf("dave resuming carol's session: %v, want an error saying there is no such session", m)
	}
	code, body, err := srv.request("GET", "/api/python/variables", "dave", nil, map[string]string{"X-Session-ID": "notebook"})
	if err != nil || strings.Contains(string(body), secret) {
		t.Errorf("ATTACK SUCCEEDED: dave read carol's variables: %d %s %v", code, body, err)
	}
	r := runCell(t, "dave", "notebook", "print(secret_var)")
	if r["status"] == "ok" || !strings.Contains(fmt.Sprint(r["error"]), "not defined") {
		t.Errorf("dave's cell in a session named like carol's: %v, want a NameError (his own kernel)", r)
	}
	wc := w.run("notebook", "print(secret_var)", 60*time.Second)
	for _, m := range wc.msgs {
		if strings.Contains(fmt.Sprint(m), secret) {
			t.Errorf("ATTACK SUCCEEDED: dave's socket got %v", m)
		}
	}
	// carol's kernel kept its state and saw none of dave's cells.
	if r := runCell(t, "carol", "notebook", "secret_var[:13]"); r["result"] != "'carol-secret-'" {
		t.Errorf("carol's session after dave's attempts: %v", r)
	}
	ms := carol.until(30*time.Second, func(m map[string]any) bool {
		return m["type"] == "execution_result" && m["result"] == "'carol-secret-'"
	})
	for _, m := range ms {
		if strings.Contains(fmt.Sprint(m), "print(secret_var)") || m["type"] == "execution_result" && strings.Contains(fmt.Sprint(m["error"]), "not defined") {
			t.Errorf("carol's session saw dave's cell: %v", m)
		}
	}
	serverFine(t)
}

// TestAttack_KernelQuota: one user starts kernels until the per-user quota
// stops him, with a sentence saying so; others are not affected.
func TestAttack_KernelQuota(t *testing.T) {
	t.Parallel()
	for i := range kernelsPerUser {
		if r := runCell(t, "greedy", fmt.Sprint("q", i), "1+1"); r["result"] != "2" {
			t.Fatalf("kernel %d within the quota: %v", i, r)
		}
	}
	r := runCell(t, "greedy", "one-too-many", "1+1")
	t.Logf("over the quota: %v", r["error"])
	if r["status"] == "ok" || !strings.Contains(fmt.Sprint(r["error"]), "kernel quota exceeded") {
		t.Errorf("ATTACK SUCCEEDED: kernel %d of a user with a quota of %d: %v", kernelsPerUser+1, kernelsPerUser, r)
	}
	serverFine(t)
}

// TestAttack_ExecutionFlood: one user sends cells as fast as it can; the
// per-user rate limit refuses the excess with 429 and a sentence, and
// other users are not slowed down.
func TestAttack_ExecutionFlood(t *testing.T) {
	t.Parallel()
	runCell(t, "rate", "flood", "1+1") // the kernel is up before the flood
	const n = 60
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			code, body, err := srv.request("POST", "/api/execute", "rate", map[string]any{"code": "1+1"}, map[string]string{"X-Session-ID": "flood"})
			if err != nil {
				codes <- err.Error()
				return
			}
			codes <- fmt.Sprintf("%d %s", code, body)
		})
	}
	wg.Wait()
	close(codes)
	var ok, limited int
	for c := range codes {
		switch {
		case strings.HasPrefix(c, "200 "):
			ok++
		case strings.HasPrefix(c, "429 ") && strings.Contains(c, "rate limit: too many executions"):
			limited++
		default:
			t.Errorf("unexpected answer %.300s", c)
		}
	}
	t.Logf("%d cells at once: %d ran, %d refused", n, ok, limited)
	if limited == 0 || ok == 0 {
		t.Errorf("%d cells at once: %d ran, %d refused by the rate limit; want both", n, ok, limited)
	}
	serverFine(t)
}
