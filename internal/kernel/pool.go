package kernel

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// PoolConfig configures the warm pool: kernels started ahead of demand, so
// that a new session gets a ready kernel at once. Pool kernels go through
// the same start path as any other (sandbox, bootstrap), are counted against
// the quotas only once handed out, and are never reused: a kernel handed out
// leaves the pool for good and a fresh one replaces it.
type PoolConfig struct {
	// Sizes is how many ready kernels to keep per kernelspec name; the key
	// "" means the manager's default spec. Absent or 0 keeps none.
	Sizes map[string]int
	// Preload lists Python modules (dotted names) every pool kernel of a
	// Python spec imports before it counts as ready, through a silent
	// request of the gateway's own: the user's journal and execution count
	// never see it, and no name is bound in the user's namespace.
	Preload []string
	// PreloadTimeout bounds the preload of one kernel (default 2 min).
	PreloadTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between failed refills of a
	// spec (defaults 1 s and 1 min): a spec that cannot start is retried,
	// never spun on.
	RetryMin, RetryMax time.Duration
}

// Enabled reports whether the pool keeps any kernel.
func (c PoolConfig) Enabled() bool {
	for _, n := range c.Sizes {
		if n > 0 {
			return true
		}
	}
	return false
}

var moduleNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// ValidModuleName reports whether s is a dotted Python module name (and
// so safe to put in a preload expression).
func ValidModuleName(s string) bool { return len(s) <= 200 && moduleNameRE.MatchString(s) }

// poolCheckInterval is how often the pool looks for kernels that died (or
// were restarted) while waiting; other changes wake it at once.
const poolCheckInterval = 500 * time.Millisecond

// pool owns the ready kernels. One owner goroutine (run) starts and
// discards them; hand-outs (take) only remove a kernel and wake it.
type pool struct {
	m       *Manager
	cfg     PoolConfig
	sizes   map[string]int // spec name → kernels to keep ready
	names   []string       // the pooled specs, sorted
	metrics PoolMetrics

	wake   chan struct{} // cap 1: a hand-out, or a kernel ended
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}  // closed when run returns
	wg     sync.WaitGroup // discarded kernels being shut down

	mu      sync.Mutex // guards the fields below; taken after Manager.mu
	ready   map[string][]*Kernel
	lastErr map[string]string // the last refill failure per spec, "" after a success
	closed  bool
}

// newPool returns nil when cfg keeps no kernel.
func newPool(m *Manager, cfg PoolConfig) (*pool, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	sizes := map[string]int{}
	for name, n := range cfg.Sizes {
		if n <= 0 {
			continue
		}
		if name == "" {
			name = m.defaultSpec
		}
		if _, ok := m.specs[name]; !ok {
			return nil, fmt.Errorf("warm pool: no such kernelspec %q: %w", name, ErrNotFound)
		}
		sizes[name] += n
	}
	for _, mod := range cfg.Preload {
		if !ValidModuleName(mod) {
			return nil, fmt.Errorf("warm pool: %q is not a Python module name", mod)
		}
	}
	if cfg.PreloadTimeout <= 0 {
		cfg.PreloadTimeout = 2 * time.Minute
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(time.Minute, cfg.RetryMin)
	}
	pm, ok := m.metrics.(PoolMetrics)
	if !ok {
		pm = nopPoolMetrics{}
	}
	p := &pool{m: m, cfg: cfg, sizes: sizes, metrics: pm, wake: make(chan struct{}, 1), done: make(chan struct{}),
		ready: map[string][]*Kernel{}, lastErr: map[string]string{}}
	for name := range sizes {
		p.names = append(p.names, name)
	}
	sort.Strings(p.names)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// begin starts the owner goroutine; close joins it.
func (p *pool) begin() {
	for _, name := range p.names {
		p.metrics.PoolReady(name, 0)
	}
	go p.run()
}

func (p *pool) serves(spec string) bool { return p.sizes[spec] > 0 }

func (p *pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// usable reports whether a waiting kernel is still as it was started: up,
// idle, never restarted (a restart would have lost the preload and left
// lifecycle events in its journal).
func usable(k *Kernel) bool {
	select {
	case <-k.done:
		return false
	default:
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state == Idle && k.restarts == 0 && !k.stopped
}

// take removes a usable ready kernel of spec from the pool, oldest first,
// or returns nil. The Manager calls it under its mutex, so that the quota
// check and the hand-out are one step.
func (p *pool) take(spec string) *Kernel {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	list := p.ready[spec]
	for i, k := range list {
		if !usable(k) {
			continue // the owner discards it
		}
		p.ready[spec] = append(list[:i:i], list[i+1:]...)
		p.metrics.PoolReady(spec, len(p.ready[spec]))
		p.metrics.PoolHit(spec)
		p.kick()
		return k
	}
	p.metrics.PoolMiss(spec)
	return nil
}

// run is the pool's owner goroutine: it discards kernels that died while
// waiting and refills each spec one start at a time, backing off after
// failures, until close.
func (p *pool) run() {
	defer close(p.done)
	defer p.drain()
	failures := map[string]int{}
	notBefore := map[string]time.Time{}
	tick := time.NewTicker(poolCheckInterval)
	defer tick.Stop()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for p.ctx.Err() == nil {
		p.prune()
		wait := time.Duration(-1) // until the next allowed retry; -1: none pending
		filled := false
		for _, name := range p.names {
			if p.count(name) >= p.sizes[name] {
				continue
			}
			if d := time.Until(notBefore[name]); d > 0 {
				if wait < 0 || d < wait {
					wait = d
				}
				continue
			}
			err := p.fill(name)
			if p.ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			if err != nil {
				failures[name]++
				notBefore[name] = time.Now().Add(backoff(failures[name], p.cfg.RetryMin, p.cfg.RetryMax))
				p.lastErr[name] = err.Error()
			} else {
				failures[name] = 0
				p.lastErr[name] = ""
			}
			p.mu.Unlock()
			if err != nil {
				p.metrics.PoolRefillFailed(name)
				p.m.log.Warn("warm pool: starting a kernel failed; retrying later", "spec", name,
					"failures", failures[name], "retry_in", time.Until(notBefore[name]).Round(time.Millisecond), "err", err)
			}
			filled = true
			break // one start per round: re-check health and every spec first
		}
		if filled {
			continue
		}
		var retryC <-chan time.Time
		if wait >= 0 {
			if retry == nil {
				retry = time.NewTimer(wait)
			} else {
				retry.Reset(wait)
			}
			retryC = retry.C
		}
		select {
		case <-p.ctx.Done():
		case <-p.wake:
		case <-tick.C:
		case <-retryC:
		}
	}
}

// backoff is the pause after n failures in a row: min doubled per
// failure, at most max.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

func (p *pool) count(spec string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready[spec])
}

// prune discards the waiting kernels that are no longer usable (a kernel
// that died is replaced, never handed out).
func (p *pool) prune() {
	var gone []*Kernel
	p.mu.Lock()
	for name, list := range p.ready {
		kept := list[:0]
		for _, k := range list {
			if usable(k) {
				kept = append(kept, k)
			} else {
				gone = append(gone, k)
			}
		}
		clear(list[len(kept):])
		p.ready[name] = kept
		if len(gone) > 0 {
			p.metrics.PoolReady(name, len(kept))
		}
	}
	p.mu.Unlock()
	for _, k := range gone {
		p.m.log.Warn("warm pool: a waiting kernel died or restarted; replacing it", "kernel_id", k.id)
		p.discard(k)
	}
}

// discard shuts a kernel down in the background; drain joins it.
func (p *pool) discard(k *Kernel) {
	p.wg.Go(func() { _ = k.Shutdown(context.Background()) })
}

// fill starts one kernel of spec, preloads it and adds it to the pool.
func (p *pool) fill(name string) error {
	spec := p.m.specs[name]
	k, err := p.m.launch(p.ctx, name, spec, "", true, nil)
	if err != nil {
		return err
	}
	if len(p.cfg.Preload) > 0 && spec.Language == "python" {
		if err := p.preload(k); err != nil {
			p.discard(k)
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.discard(k)
		return p.ctx.Err()
	}
	p.ready[name] = append(p.ready[name], k)
	p.metrics.PoolReady(name, len(p.ready[name]))
	return nil
}

// preload imports the configured modules in k through user_expressions of
// a silent execute of the gateway's own (Kernel.Evaluate): nothing reaches
// the journal, the execution count does not move, and importlib binds no
// name in the user's namespace. A module that fails to import is logged and
// the kernel still pooled (the user's own import will report it); only a
// kernel that fails the request itself is refused.
func (p *pool) preload(k *Kernel) error {
	exprs := make(map[string]string, len(p.cfg.Preload))
	for i, mod := range p.cfg.Preload {
		lit, _ := json.Marshal(mod) // a valid Python string literal for a module name
		exprs[fmt.Sprintf("m%d", i)] = "__import__('importlib').import_module(" + string(lit) + ").__name__"
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.PreloadTimeout)
	defer cancel()
	res, err := k.Evaluate(ctx, exprs)
	if err != nil {
		return fmt.Errorf("preload %s: %w", strings.Join(p.cfg.Preload, ","), err)
	}
	for i, mod := range p.cfg.Preload {
		if r := res[fmt.Sprintf("m%d", i)]; r.Status != "ok" {
			p.m.log.Warn("warm pool: a preload module failed to import", "module", mod, "ename", r.Ename, "evalue", r.Evalue)
		}
	}
	return nil
}

// drain ends the pool: no more hand-outs, every waiting kernel shut down,
// every discard joined.
func (p *pool) drain() {
	p.mu.Lock()
	p.closed = true
	var all []*Kernel
	for name, list := range p.ready {
		all = append(all, list...)
		delete(p.ready, name)
		p.metrics.PoolReady(name, 0)
	}
	p.mu.Unlock()
	for _, k := range all {
		p.discard(k)
	}
	p.wg.Wait()
}

// close stops the owner goroutine and waits for it and its kernels.
func (p *pool) close() {
	p.cancel()
	<-p.done
}

// PoolStat is the warm pool's state for one kernelspec.
type PoolStat struct {
	Spec      string
	Ready     int
	Target    int
	LastError string // the last refill failure, "" once a refill succeeds
}

// PoolStats returns the pool's state per spec, sorted by spec name; nil
// without a pool.
func (m *Manager) PoolStats() []PoolStat {
	p := m.pool
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PoolStat, 0, len(p.names))
	for _, name := range p.names {
		out = append(out, PoolStat{Spec: name, Ready: len(p.ready[name]), Target: p.sizes[name], LastError: p.lastErr[name]})
	}
	return out
}

// PoolStatus is one line for /readyz, e.g. "warm pool: python3 2/2 ready".
func (m *Manager) PoolStatus() string {
	stats := m.PoolStats()
	if len(stats) == 0 {
		return "warm pool: off"
	}
	parts := make([]string, 0, len(stats))
	for _, s := range stats {
		part := fmt.Sprintf("%s %d/%d ready", s.Spec, s.Ready, s.Target)
		if s.LastError != "" {
			part += " (refills failing: " + s.LastError + ")"
		}
		parts = append(parts, part)
	}
	return "warm pool: " + strings.Join(parts, ", ")
}
