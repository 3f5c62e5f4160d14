package flowapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limitKind names one of each user's token buckets.
type limitKind int

const (
	limitMessages     limitKind = iota // client messages on WebSockets
	limitExecutions                    // cells run: WebSocket execute, HTTP execute, pipeline and stream
	limitKernelStarts                  // kernels started for the user's sessions
	numLimitKinds
)

// limitNames are the kinds as the rate-limit errors name them.
var limitNames = [numLimitKinds]string{"messages", "executions", "kernel starts"}

// burstWindows turn a rate into a burst: a bucket holds this many seconds of
// its rate, rounded up. Messages and executions burst to twice their rate
// (100 and 20 by default); kernel starts to five times theirs (5 by
// default), so that opening a handful of notebooks at once works.
var burstWindows = [numLimitKinds]float64{2, 2, 5}

const (
	// limiterIdle is how long a user's buckets are kept unused before they
	// are dropped (longer when a bucket takes longer to refill, so that
	// dropping one never gives anybody tokens back early).
	limiterIdle = 10 * time.Minute
	// limiterSweepEvery is how often, at most, an allow looks for idle
	// users, unless the table has doubled since the last sweep.
	limiterSweepEvery = time.Minute
	// minSweepSize is the table size below which only time triggers sweeps.
	minSweepSize = 1024
	// maxBurst keeps absurd rates from overflowing the bucket size.
	maxBurst = 1 << 30
	// kernelStartMaxWait is how long a kernel start waits for its token
	// before it fails: a burst a little over the limit (a client opening
	// several notebooks at once) is slowed down rather than refused.
	kernelStartMaxWait = 5 * time.Second
)

// limiter holds per-user token buckets of golang.org/x/time/rate. It runs
// no goroutine: users unused for limiterIdle are dropped by a sweep that
// allow makes now and then, so the table only holds recently active users.
// A nil *limiter allows everything.
type limiter struct {
	limits [numLimitKinds]rate.Limit // 0: the kind is not limited
	bursts [numLimitKinds]int
	idle   time.Duration
	now    func() time.Time

	mu        sync.Mutex // guards the fields below and every bucket's use
	users     map[string]*userBuckets
	nextSweep time.Time
	sweepAt   int // sweep when the table reaches this size
}

type userBuckets struct {
	b    [numLimitKinds]*rate.Limiter // nil for kinds that are not limited
	used time.Time
}

// newLimiter returns the limiter for cfg's rates (per second; 0, a
// negative or a non-finite rate turns that kind off), or nil when every
// kind is off. now is the clock; nil means time.Now.
func newLimiter(cfg Config, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	l := &limiter{idle: limiterIdle, now: now, users: make(map[string]*userBuckets), sweepAt: minSweepSize}
	on := false
	for k, r := range [numLimitKinds]float64{cfg.MessagesPerSecond, cfg.ExecutionsPerSecond, cfg.KernelStartsPerSecond} {
		if !(r > 0) || math.IsInf(r, 0) {
			continue
		}
		on = true
		burst := min(math.Ceil(r*burstWindows[k]), maxBurst)
		l.limits[k], l.bursts[k] = rate.Limit(r), max(int(burst), 1)
		// A bucket left alone this long is full: dropping it loses nothing.
		if refill := time.Duration(float64(l.bursts[k]) / r * float64(time.Second)); refill > l.idle {
			l.idle = refill
		}
	}
	if !on {
		return nil
	}
	return l
}

// rateLimitError says which limit a user is over and when to try again.
type rateLimitError struct {
	kind  limitKind
	user  string
	retry time.Duration // until the bucket has a token again
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("rate limit: too many %s for user %q; retry in %ss",
		limitNames[e.kind], e.user, strconv.FormatFloat(e.retryAfter(), 'f', -1, 64))
}

// retryAfter is the wait in seconds, rounded up to a tenth (at least 0.1).
func (e *rateLimitError) retryAfter() float64 {
	tenths := max((e.retry+100*time.Millisecond-1)/(100*time.Millisecond), 1)
	return float64(tenths) / 10
}

// retryAfterHeader is the wait in whole seconds (at least 1), for HTTP's
// Retry-After.
func (e *rateLimitError) retryAfterHeader() string {
	return strconv.FormatInt(int64(max((e.retry+time.Second-1)/time.Second, 1)), 10)
}

// allow takes a token of kind from user's bucket, or returns a
// *rateLimitError saying when one will be there.
func (l *limiter) allow(user string, kind limitKind) error {
	_, err := l.reserve(user, kind, 0)
	return err
}

// wait takes a token of kind from user's bucket, waiting up to maxWait for
// it; it returns a *rateLimitError at once when the wait would be longer,
// or ctx's error if ctx ends first.
func (l *limiter) wait(ctx context.Context, user string, kind limitKind, maxWait time.Duration) error {
	r, err := l.reserve(user, kind, maxWait)
	if err != nil || r == nil {
		return err
	}
	t := time.NewTimer(r.DelayFrom(l.now()))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		r.CancelAt(l.now()) // give the token back to the user's later requests
		l.mu.Unlock()
		return ctx.Err()
	}
}

// reserve takes a token now (nil reservation), or reserves the next one
// when it comes within maxWait, or fails.
func (l *limiter) reserve(user string, kind limitKind, maxWait time.Duration) (*rate.Reservation, error) {
	if l == nil || l.limits[kind] == 0 {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.maybeSweep(now)
	u := l.users[user]
	if u == nil {
		u = &userBuckets{}
		for k := range numLimitKinds {
			if l.limits[k] != 0 {
				u.b[k] = rate.NewLimiter(l.limits[k], l.bursts[k])
			}
		}
		l.users[user] = u
	}
	u.used = now
	b := u.b[kind]
	if b.AllowN(now, 1) {
		return nil, nil
	}
	// Under mu nobody else touches b, so this is exactly when the
	// next token comes.
	delay := time.Duration((1 - b.TokensAt(now)) / float64(l.limits[kind]) * float64(time.Second))
	if delay > maxWait {
		return nil, &rateLimitError{kind: kind, user: user, retry: delay}
	}
	return b.ReserveN(now, 1), nil
}

// maybeSweep drops the users idle for l.idle, at most once per
// limiterSweepEvery unless the table doubled since the last sweep, so that
// the work is amortized O(1) per allow. l.mu must be held.
func (l *limiter) maybeSweep(now time.Time) {
	if now.Before(l.nextSweep) && len(l.users) < l.sweepAt {
		return
	}
	for user, u := range l.users {
		if now.Sub(u.used) >= l.idle {
			delete(l.users, user)
		}
	}
	l.nextSweep = now.Add(limiterSweepEvery)
	l.sweepAt = max(2*len(l.users), minSweepSize)
}

// size is how many users have buckets, for tests.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// overLimit answers 429 with Retry-After and the error envelope when the
// session's user is over the limit of kind, and reports whether it did.
func (h *HTTP) overLimit(w http.ResponseWriter, s *Session, kind limitKind) bool {
	err := h.sessions.limits.allow(s.user, kind)
	if err == nil {
		return false
	}
	rl := err.(*rateLimitError)
	w.Header().Set("Retry-After", rl.retryAfterHeader())
	errorEnvelope(w, http.StatusTooManyRequests, rl.Error())
	return true
}

// overLimit tells the client, without closing the socket, when its user is
// over the limit of kind, and reports whether it did: the message is then
// dropped.
func (c *wsConn) overLimit(kind limitKind) bool {
	err := c.h.sessions.limits.allow(c.user, kind)
	if err == nil {
		return false
	}
	rl := err.(*rateLimitError)
	c.send(Msg{"type": "error", "error": rl.Error(), "retry_after": rl.retryAfter()})
	return true
}

// RetryAfter is how long until the bucket has a token again.
func (e *rateLimitError) RetryAfter() time.Duration { return e.retry }

// KernelStart, Execution and Message let the other API edges (the Jupyter
// API) spend the same per-user budgets, so a user has one limit whatever
// API they use. The errors say which limit and when to retry (RetryAfter).
func (s *Sessions) KernelStart(ctx context.Context, user string) error {
	return s.limits.wait(ctx, user, limitKernelStarts, kernelStartMaxWait)
}

// Execution takes one execution token of user's.
func (s *Sessions) Execution(user string) error { return s.limits.allow(user, limitExecutions) }

// Message takes one client-message token of user's.
func (s *Sessions) Message(user string) error { return s.limits.allow(user, limitMessages) }
