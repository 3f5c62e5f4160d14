// Package ratelimit holds per-user token buckets (golang.org/x/time/rate)
// for client messages, executions and kernel starts. One Limiter serves
// every API edge, so a user has one budget whatever API they use.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rates are the per-user limits, per second; 0 (or a negative or
// non-finite rate) turns that kind off.
type Rates struct {
	Messages     float64 // client messages on WebSockets
	Executions   float64 // cells and execute requests
	KernelStarts float64 // kernels started
}

// DefaultRates are the documented defaults: 50 messages, 10 executions and
// 1 kernel start per second per user.
func DefaultRates() Rates { return Rates{Messages: 50, Executions: 10, KernelStarts: 1} }

// Kind names one of each user's token buckets.
type Kind int

const (
	Messages     Kind = iota // client messages on WebSockets
	Executions               // cells run: WebSocket execute, HTTP execute, pipeline and stream
	KernelStarts             // kernels started for the user's sessions
	numKinds
)

// kindNames are the kinds as the rate-limit errors name them.
var kindNames = [numKinds]string{"messages", "executions", "kernel starts"}

// burstWindows turn a rate into a burst: a bucket holds this many seconds of
// its rate, rounded up. Messages and executions burst to twice their rate
// (100 and 20 by default); kernel starts to five times theirs (5 by
// default), so that opening a handful of notebooks at once works.
var burstWindows = [numKinds]float64{2, 2, 5}

const (
	// limiterIdle is how long a user's buckets are kept unused before they
	// are dropped (longer when a bucket takes longer to refill, so that
	// dropping one never gives anybody tokens back early).
	limiterIdle = 10 * time.Minute
	// limiterSweepEvery is how often, at most, an Allow looks for idle
	// users, unless the table has doubled since the last sweep.
	limiterSweepEvery = time.Minute
	// minSweepSize is the table size below which only time triggers sweeps.
	minSweepSize = 1024
	// maxBurst keeps absurd rates from overflowing the bucket size.
	maxBurst = 1 << 30
	// KernelStartMaxWait is how long a kernel start waits for its token
	// before it fails: a burst a little over the limit (a client opening
	// several notebooks at once) is slowed down rather than refused.
	KernelStartMaxWait = 5 * time.Second
)

// Limiter holds per-user token buckets of golang.org/x/time/rate. It runs
// no goroutine: users unused for limiterIdle are dropped by a sweep that
// Allow makes now and then, so the table only holds recently active users.
// A nil *Limiter allows everything. It is safe for concurrent use.
type Limiter struct {
	limits [numKinds]rate.Limit // 0: the kind is not limited
	bursts [numKinds]int
	idle   time.Duration
	now    func() time.Time

	mu        sync.Mutex // guards the fields below and every bucket's use
	users     map[string]*userBuckets
	nextSweep time.Time
	sweepAt   int // sweep when the table reaches this size
}

type userBuckets struct {
	b    [numKinds]*rate.Limiter // nil for kinds that are not limited
	used time.Time
}

// New returns the limiter for the rates, or nil when every kind is off.
// now is the clock; nil means time.Now.
func New(r Rates, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	l := &Limiter{idle: limiterIdle, now: now, users: make(map[string]*userBuckets), sweepAt: minSweepSize}
	on := false
	for k, perSec := range [numKinds]float64{r.Messages, r.Executions, r.KernelStarts} {
		if !(perSec > 0) || math.IsInf(perSec, 0) {
			continue
		}
		on = true
		burst := min(math.Ceil(perSec*burstWindows[k]), maxBurst)
		l.limits[k], l.bursts[k] = rate.Limit(perSec), max(int(burst), 1)
		// A bucket left alone this long is full: dropping it loses nothing.
		if refill := time.Duration(float64(l.bursts[k]) / perSec * float64(time.Second)); refill > l.idle {
			l.idle = refill
		}
	}
	if !on {
		return nil
	}
	return l
}

// Error says which limit a user is over and when to try again.
type Error struct {
	kind  Kind
	user  string
	retry time.Duration // until the bucket has a token again
}

func (e *Error) Error() string {
	return fmt.Sprintf("rate limit: too many %s for user %q; retry in %ss",
		kindNames[e.kind], e.user, strconv.FormatFloat(e.RetryAfterSeconds(), 'f', -1, 64))
}

// RetryAfterSeconds is the wait in seconds, rounded up to a tenth (at least 0.1).
func (e *Error) RetryAfterSeconds() float64 {
	tenths := max((e.retry+100*time.Millisecond-1)/(100*time.Millisecond), 1)
	return float64(tenths) / 10
}

// RetryAfterHeader is the wait in whole seconds (at least 1), for HTTP's
// Retry-After.
func (e *Error) RetryAfterHeader() string {
	return strconv.FormatInt(int64(max((e.retry+time.Second-1)/time.Second, 1)), 10)
}

// Allow takes a token of kind from user's bucket, or returns a
// *Error saying when one will be there.
func (l *Limiter) Allow(user string, kind Kind) error {
	_, err := l.reserve(user, kind, 0)
	return err
}

// Wait takes a token of kind from user's bucket, waiting up to maxWait for
// it; it returns a *Error at once when the wait would be longer,
// or ctx's error if ctx ends first.
func (l *Limiter) Wait(ctx context.Context, user string, kind Kind, maxWait time.Duration) error {
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
func (l *Limiter) reserve(user string, kind Kind, maxWait time.Duration) (*rate.Reservation, error) {
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
		for k := range numKinds {
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
		return nil, &Error{kind: kind, user: user, retry: delay}
	}
	return b.ReserveN(now, 1), nil
}

// maybeSweep drops the users idle for l.idle, at most once per
// limiterSweepEvery unless the table doubled since the last sweep, so that
// the work is amortized O(1) per Allow. l.mu must be held.
func (l *Limiter) maybeSweep(now time.Time) {
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
func (l *Limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// RetryAfter is how long until the bucket has a token again.
func (e *Error) RetryAfter() time.Duration { return e.retry }

// Kind is the limit the error is about.
func (e *Error) Kind() Kind { return e.kind }

// String names the kind as errors say it ("messages", ...).
func (k Kind) String() string { return kindNames[k] }

// KernelStart takes a kernel-start token of user's, waiting up to
// KernelStartMaxWait for it.
func (l *Limiter) KernelStart(ctx context.Context, user string) error {
	return l.Wait(ctx, user, KernelStarts, KernelStartMaxWait)
}

// Execution takes one execution token of user's.
func (l *Limiter) Execution(user string) error { return l.Allow(user, Executions) }

// Message takes one client-message token of user's.
func (l *Limiter) Message(user string) error { return l.Allow(user, Messages) }
