package flowapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// post sends a JSON body as user in session and decodes the JSON answer.
func (s *TestServer) post(t *testing.T, path, user, session string, body any) (*http.Response, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-User", user)
	req.Header.Set("X-Session-ID", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("POST %s: %d %v: %s", path, resp.StatusCode, err, out)
		}
	}
	return resp, m
}

// Every HTTP route that runs code answers 429 with Retry-After and the
// error envelope when the user is over the executions limit; other users
// are not held back.
func TestRateLimitHTTP(t *testing.T) {
	t.Parallel()
	s := NewTestServerRates(t, nil, ratelimit.Rates{Messages: 50, Executions: 0.001, KernelStarts: 1}, nil) // a burst of 1, then one per 1000s
	if resp, body := s.post(t, "/api/execute", "tester", "a", map[string]any{"code": "1"}); resp.StatusCode != 200 || body["status"] != "ok" {
		t.Fatalf("first execution: %d %v", resp.StatusCode, body)
	}
	for _, path := range []string{"/api/execute", "/api/execute-jupyter", "/api/execute-pipeline", "/api/stream"} {
		resp, body := s.post(t, path, "tester", "a", map[string]any{"code": "1"})
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s: %d %v, want 429", path, resp.StatusCode, body)
			continue
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 990 || ra > 1000 {
			t.Errorf("%s: Retry-After %q, want about 1000 whole seconds", path, resp.Header.Get("Retry-After"))
		}
		want := `rate limit: too many executions for user "tester"; retry in `
		if msg, _ := body["error"].(string); body["status"] != "error" || !strings.HasPrefix(msg, want) ||
			fmt.Sprintf("%v|%v|%v", body["data"], body["output"], body["plots"]) != "[]||[]" {
			t.Errorf("%s: body %v, want the error envelope with %q", path, body, want)
		}
	}
	if resp, body := s.post(t, "/api/execute", "other", "a", map[string]any{"code": "2"}); resp.StatusCode != 200 || body["status"] != "ok" {
		t.Errorf("another user: %d %v", resp.StatusCode, body)
	}
}

// wsClient is a bare WebSocket client for these tests.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func (s *TestServer) dial(t *testing.T) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	w := &wsClient{t: t, c: c}
	if m := w.next(); m["type"] != "connection_established" {
		t.Fatalf("first message %v", m)
	}
	return w
}

func (w *wsClient) send(m map[string]any) {
	w.t.Helper()
	raw, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(w.t.Context(), 10*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, raw); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wsClient) next() map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 60*time.Second)
	defer cancel()
	_, raw, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		w.t.Fatalf("%v: %s", err, raw)
	}
	return m
}

// isRateLimit checks a rate-limit error message: exactly type, error and
// retry_after, with the error naming the limit and the wait.
func isRateLimit(t *testing.T, m map[string]any, what string) bool {
	t.Helper()
	msg, _ := m["error"].(string)
	if m["type"] != "error" || !strings.HasPrefix(msg, "rate limit: too many "+what) {
		return false
	}
	after, ok := m["retry_after"].(float64)
	if len(m) != 3 || !ok || after <= 0 || !strings.HasSuffix(msg, fmt.Sprintf("; retry in %ss", strconv.FormatFloat(after, 'f', -1, 64))) {
		t.Errorf("rate-limit message %v", m)
	}
	return true
}

// Executions over the limit are answered with an error and dropped; the
// socket stays open and the allowed cell still runs.
func TestRateLimitWebSocketExecutions(t *testing.T) {
	t.Parallel()
	s := NewTestServerRates(t, nil, ratelimit.Rates{Messages: 50, Executions: 0.001, KernelStarts: 1}, nil)
	c := s.dial(t)
	for i := range 5 {
		c.send(map[string]any{"type": "execute", "cell_id": fmt.Sprint("c", i), "code": fmt.Sprintf("print(%d)", i)})
	}
	c.send(map[string]any{"type": "ping"})
	limited, pong, done := 0, false, false
	for !pong || !done {
		m := c.next()
		switch {
		case isRateLimit(t, m, "executions"):
			if want := `rate limit: too many executions for user "tester"; retry in `; !strings.HasPrefix(m["error"].(string), want) {
				t.Errorf("error %q, want it to start %q", m["error"], want)
			}
			limited++
		case m["type"] == "pong":
			pong = true
		case m["type"] == "execution_result":
			if m["cell_id"] != "c0" || m["status"] != "ok" || m["output"] != "0\n" {
				t.Errorf("result %v, want c0's", m)
			}
			done = true
		case m["type"] == "execution_start" && m["cell_id"] != "c0":
			t.Errorf("a limited cell started: %v", m)
		}
	}
	if limited != 4 {
		t.Errorf("%d executions refused, want 4", limited)
	}
}

// Past the messages limit every message is refused, ping included, and the
// socket stays open.
func TestRateLimitWebSocketMessages(t *testing.T) {
	t.Parallel()
	s := NewTestServerRates(t, nil, ratelimit.Rates{Messages: 0.001, Executions: 10, KernelStarts: 1}, nil) // one message, then one per 1000s
	c := s.dial(t)
	c.send(map[string]any{"type": "ping"})
	if m := c.next(); m["type"] != "pong" {
		t.Fatalf("first ping: %v", m)
	}
	for range 3 {
		c.send(map[string]any{"type": "ping"})
		if m := c.next(); !isRateLimit(t, m, "messages") {
			t.Fatalf("ping over the limit: %v", m)
		}
	}
}
