package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func rates(messages, executions, kernelStarts float64) Rates {
	return Rates{Messages: messages, Executions: executions, KernelStarts: kernelStarts}
}

// allowN calls Allow n times and returns how many were let through.
func allowN(l *Limiter, user string, kind Kind, n int) int {
	ok := 0
	for range n {
		if l.Allow(user, kind) == nil {
			ok++
		}
	}
	return ok
}

func TestLimiterBurstsAndRefill(t *testing.T) {
	clk := newFakeClock()
	l := New(rates(50, 10, 1), clk.now) // the server's defaults
	for _, tt := range []struct {
		kind  Kind
		burst int
		every time.Duration // one token back per
	}{
		{Messages, 100, 20 * time.Millisecond},
		{Executions, 20, 100 * time.Millisecond},
		{KernelStarts, 5, time.Second},
	} {
		if got := allowN(l, "u", tt.kind, tt.burst+10); got != tt.burst {
			t.Errorf("%s: %d allowed at once, want the burst %d", kindNames[tt.kind], got, tt.burst)
		}
		clk.advance(tt.every)
		if got := allowN(l, "u", tt.kind, 3); got != 1 {
			t.Errorf("%s: %d allowed one refill later, want 1", kindNames[tt.kind], got)
		}
	}
	// Each user and each kind has its own bucket.
	if got := allowN(l, "v", Executions, 25); got != 20 {
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
		l := New(rates(tt.rate, tt.rate, tt.rate), newFakeClock().now)
		if l.bursts != [numKinds]int{tt.twice, tt.twice, tt.fiveTimes} {
			t.Errorf("rate %g: bursts %v, want %d, %d, %d", tt.rate, l.bursts, tt.twice, tt.twice, tt.fiveTimes)
		}
	}
}

func TestLimiterDisabled(t *testing.T) {
	if l := New(rates(0, 0, 0), nil); l != nil {
		t.Fatalf("every rate 0: limiter %v, want nil", l)
	}
	var none *Limiter
	if err := none.Allow("u", Executions); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
	if err := none.Wait(t.Context(), "u", KernelStarts, 0); err != nil {
		t.Fatalf("nil limiter wait: %v", err)
	}
	l := New(rates(0, 1, 0), newFakeClock().now)
	if got := allowN(l, "u", Messages, 1000); got != 1000 {
		t.Errorf("messages off: %d of 1000 allowed", got)
	}
	if got := allowN(l, "u", Executions, 10); got != 2 {
		t.Errorf("executions at 1/s: %d of 10 allowed, want 2", got)
	}
}

func TestLimiterError(t *testing.T) {
	clk := newFakeClock()
	l := New(rates(0, 4, 0), clk.now) // burst 8, a token every 250ms
	allowN(l, "u", Executions, 8)
	err := l.Allow("u", Executions)
	rl, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("over the limit: %v, want a *Error", err)
	}
	if got, want := err.Error(), `rate limit: too many executions for user "u"; retry in 0.3s`; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if rl.RetryAfterSeconds() != 0.3 || rl.RetryAfterHeader() != "1" {
		t.Errorf("retry after %v s, header %q; want 0.3 and 1", rl.RetryAfterSeconds(), rl.RetryAfterHeader())
	}
	clk.advance(100 * time.Millisecond)
	rl, _ = errors.AsType[*Error](l.Allow("u", Executions))
	if rl == nil || rl.RetryAfterSeconds() != 0.2 {
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
		e := &Error{retry: tt.retry}
		if e.RetryAfterSeconds() != tt.after || e.RetryAfterHeader() != tt.header {
			t.Errorf("retry %s: %v s, header %q; want %v, %q", tt.retry, e.RetryAfterSeconds(), e.RetryAfterHeader(), tt.after, tt.header)
		}
	}
}

// Users unused for ten minutes are dropped by a later allow's sweep, so the
// table holds only recently active users.
func TestLimiterEvictsIdleUsers(t *testing.T) {
	clk := newFakeClock()
	l := New(rates(50, 10, 1), clk.now) // the server's defaults
	l.Allow("old", Messages)
	clk.advance(5 * time.Minute)
	l.Allow("recent", Messages)
	clk.advance(5*time.Minute + time.Second)
	l.Allow("new", Messages)
	if _, ok := l.users["old"]; ok || l.size() != 2 {
		t.Errorf("after 10 minutes: users %v, want recent and new", keys(l.users))
	}

	// A stream of one-off users stays bounded by the users of the last ten
	// minutes or so.
	for round := range 60 {
		for i := range 500 {
			l.Allow(fmt.Sprint("r", round, "u", i), Executions)
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
	l := New(rates(0, 0.001, 0), clk.now) // burst 1, 1000s to refill
	if l.Allow("u", Executions) != nil {
		t.Fatal("first execution refused")
	}
	clk.advance(15 * time.Minute)
	l.Allow("someone else", Executions)
	if err := l.Allow("u", Executions); err == nil {
		t.Fatal("after 15 minutes of a 1000s refill, an execution was allowed")
	}
	clk.advance(17 * time.Minute)
	if err := l.Allow("u", Executions); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

// Kernel starts slightly over the limit wait for their token; those that
// would wait longer than KernelStartMaxWait fail at once.
func TestLimiterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(rates(0, 0, 1), nil) // burst 5, one a second; time is the bubble's
		start := time.Now()
		var waited []time.Duration
		var refused []error
		for range 11 {
			if err := l.Wait(t.Context(), "u", KernelStarts, KernelStartMaxWait); err != nil {
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
				if err := l.Wait(t.Context(), "u", KernelStarts, KernelStartMaxWait); err != nil {
					if _, ok := errors.AsType[*Error](err); !ok {
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
			l.Allow("w", KernelStarts)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.Wait(ctx, "w", KernelStarts, KernelStartMaxWait) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled wait: %v", err)
		}
		time.Sleep(time.Second)
		if err := l.Allow("w", KernelStarts); err != nil {
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
