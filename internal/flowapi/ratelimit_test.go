package flowapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func rates(messages, executions, kernelStarts float64) Config {
	return Config{MessagesPerSecond: messages, ExecutionsPerSecond: executions, KernelStartsPerSecond: kernelStarts}
}

// allowN calls allow n times and returns how many were let through.
func allowN(l *limiter, user string, kind limitKind, n int) int {
	ok := 0
	for range n {
		if l.allow(user, kind) == nil {
			ok++
		}
	}
	return ok
}

func TestLimiterBurstsAndRefill(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(DefaultConfig(), clk.now)
	for _, tt := range []struct {
		kind  limitKind
		burst int
		every time.Duration // one token back per
	}{
		{limitMessages, 100, 20 * time.Millisecond},
		{limitExecutions, 20, 100 * time.Millisecond},
		{limitKernelStarts, 5, time.Second},
	} {
		if got := allowN(l, "u", tt.kind, tt.burst+10); got != tt.burst {
			t.Errorf("%s: %d allowed at once, want the burst %d", limitNames[tt.kind], got, tt.burst)
		}
		clk.advance(tt.every)
		if got := allowN(l, "u", tt.kind, 3); got != 1 {
			t.Errorf("%s: %d allowed one refill later, want 1", limitNames[tt.kind], got)
		}
	}
	// Each user and each kind has its own bucket.
	if got := allowN(l, "v", limitExecutions, 25); got != 20 {
		t.Errorf("another user: %d executions allowed, want 20", got)
	}
}

func TestLimiterBurstRule(t *testing.T) {
	for _, tt := range []struct {
		rate             float64
		twice, fiveTimes int
	}{
		{0.001, 1, 1},
		{0.3, 1, 2},
		{1, 2, 5},
		{2.5, 5, 13},
		{50, 100, 250},
	} {
		l := newLimiter(rates(tt.rate, tt.rate, tt.rate), newFakeClock().now)
		if l.bursts != [numLimitKinds]int{tt.twice, tt.twice, tt.fiveTimes} {
			t.Errorf("rate %g: bursts %v, want %d, %d, %d", tt.rate, l.bursts, tt.twice, tt.twice, tt.fiveTimes)
		}
	}
}

func TestLimiterDisabled(t *testing.T) {
	if l := newLimiter(rates(0, 0, 0), nil); l != nil {
		t.Fatalf("every rate 0: limiter %v, want nil", l)
	}
	var none *limiter
	if err := none.allow("u", limitExecutions); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
	if err := none.wait(t.Context(), "u", limitKernelStarts, 0); err != nil {
		t.Fatalf("nil limiter wait: %v", err)
	}
	l := newLimiter(rates(0, 1, 0), newFakeClock().now)
	if got := allowN(l, "u", limitMessages, 1000); got != 1000 {
		t.Errorf("messages off: %d of 1000 allowed", got)
	}
	if got := allowN(l, "u", limitExecutions, 10); got != 2 {
		t.Errorf("executions at 1/s: %d of 10 allowed, want 2", got)
	}
}

func TestLimiterError(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(rates(0, 4, 0), clk.now) // burst 8, a token every 250ms
	allowN(l, "u", limitExecutions, 8)
	err := l.allow("u", limitExecutions)
	rl, ok := errors.AsType[*rateLimitError](err)
	if !ok {
		t.Fatalf("over the limit: %v, want a *rateLimitError", err)
	}
	if got, want := err.Error(), `rate limit: too many executions for user "u"; retry in 0.3s`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if rl.retryAfter() != 0.3 || rl.retryAfterHeader() != "1" {
		t.Errorf("retry after %v s, header %q; want 0.3 and 1", rl.retryAfter(), rl.retryAfterHeader())
	}
	clk.advance(100 * time.Millisecond)
	rl, _ = errors.AsType[*rateLimitError](l.allow("u", limitExecutions))
	if rl == nil || rl.retryAfter() != 0.2 {
		t.Errorf("100ms later: %v, want retry in 0.2s", rl)
	}
	for _, tt := range []struct {
		retry  time.Duration
		after  float64
		header string
	}{
		{time.Nanosecond, 0.1, "1"},
		{100 * time.Millisecond, 0.1, "1"},
		{1001 * time.Millisecond, 1.1, "2"},
		{12 * time.Second, 12, "12"},
	} {
		e := &rateLimitError{retry: tt.retry}
		if e.retryAfter() != tt.after || e.retryAfterHeader() != tt.header {
			t.Errorf("retry %s: %v s, header %q; want %v, %q", tt.retry, e.retryAfter(), e.retryAfterHeader(), tt.after, tt.header)
		}
	}
}

// Users unused for ten minutes are dropped by a later allow's sweep, so the
// table holds only recently active users.
func TestLimiterEvictsIdleUsers(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(DefaultConfig(), clk.now)
	l.allow("old", limitMessages)
	clk.advance(5 * time.Minute)
	l.allow("recent", limitMessages)
	clk.advance(5*time.Minute + time.Second)
	l.allow("new", limitMessages)
	if _, ok := l.users["old"]; ok || l.size() != 2 {
		t.Errorf("after 10 minutes: users %v, want recent and new", keys(l.users))
	}

	// A stream of one-off users stays bounded by the users of the last ten
	// minutes or so.
	for round := range 60 {
		for i := range 500 {
			l.allow(fmt.Sprint("r", round, "u", i), limitExecutions)
		}
		clk.advance(time.Minute)
	}
	if n := l.size(); n > 12*500 {
		t.Errorf("after an hour of 500 new users a minute, %d users kept, want at most %d", n, 12*500)
	}
}

// A bucket that refills slower than the idle time is kept until it is
// full again: dropping it early would hand out tokens.
func TestLimiterKeepsSlowBucketsUntilFull(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(rates(0, 0.001, 0), clk.now) // burst 1, 1000s to refill
	if l.allow("u", limitExecutions) != nil {
		t.Fatal("first execution refused")
	}
	clk.advance(15 * time.Minute)
	l.allow("someone else", limitExecutions)
	if err := l.allow("u", limitExecutions); err == nil {
		t.Fatal("after 15 minutes of a 1000s refill, an execution was allowed")
	}
	clk.advance(17 * time.Minute)
	if err := l.allow("u", limitExecutions); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

// Kernel starts slightly over the limit wait for their token; those that
// would wait longer than kernelStartMaxWait fail at once.
func TestLimiterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(rates(0, 0, 1), nil) // burst 5, one a second; time is the bubble's
		start := time.Now()
		var waited []time.Duration
		var refused []error
		for range 11 {
			if err := l.wait(t.Context(), "u", limitKernelStarts, kernelStartMaxWait); err != nil {
				refused = append(refused, err)
				continue
			}
			waited = append(waited, time.Since(start).Round(time.Millisecond))
		}
		want := []time.Duration{0, 0, 0, 0, 0, 1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second}
		if fmt.Sprint(waited) != fmt.Sprint(want) {
			t.Errorf("starts at %v, want %v", waited, want)
		}
		if len(refused) != 0 {
			t.Errorf("refused %v", refused)
		}

		// Eleven at once: five now, five queued up to 5s, the last refused.
		time.Sleep(time.Minute)
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := 0
		for range 11 {
			wg.Go(func() {
				if err := l.wait(t.Context(), "u", limitKernelStarts, kernelStartMaxWait); err != nil {
					if _, ok := errors.AsType[*rateLimitError](err); !ok {
						t.Errorf("refused with %v", err)
					}
					mu.Lock()
					errs++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if errs != 1 {
			t.Errorf("%d of 11 concurrent starts refused, want 1", errs)
		}

		// A wait that is given up returns its token.
		time.Sleep(time.Minute)
		for range 5 {
			l.allow("w", limitKernelStarts)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.wait(ctx, "w", limitKernelStarts, kernelStartMaxWait) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: %v", err)
		}
		time.Sleep(time.Second)
		if err := l.allow("w", limitKernelStarts); err != nil {
			t.Errorf("a second after a cancelled wait: %v", err)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

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
	s := NewTestServer(t, nil, func(c *Config) { c.ExecutionsPerSecond = 0.001 }) // a burst of 1, then one per 1000s
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
	s := NewTestServer(t, nil, func(c *Config) { c.ExecutionsPerSecond = 0.001 })
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
	s := NewTestServer(t, nil, func(c *Config) { c.MessagesPerSecond = 0.001 }) // one message, then one per 1000s
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
