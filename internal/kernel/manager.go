// Package kernel is the core: it owns kernels, their state machine
// (starting, idle, busy, restarting, dead), the executions in flight and a
// per-kernel journal that numbers every event so clients can resume. Edge
// adapters (HTTP, WebSocket, CLI) call the Manager; they never touch ZMQ or
// processes.
package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kernelgate/kernelgate/internal/connfile"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/zmqwire"
)

// Config is the kernel section of the server configuration.
type Config struct {
	RuntimeDir string   // parent of every kernel's private dir
	Env        []string // the environment kernels start with
	// Transport is "ipc" (the default) or "tcp". ipc needs no ports: with
	// tcp, a port is free between its reservation's release and the
	// kernel's bind, and any process binding a random port in that gap
	// (ipykernel itself does, for its output pipe) can take it.
	Transport string
	IP        string // for tcp
	Username  string // header username on the gateway's requests
	Bootstrap bool   // run the Python bootstrap in Python kernels

	StartTimeout      time.Duration
	HeartbeatInterval time.Duration // 0 disables heartbeats
	HeartbeatTimeout  time.Duration
	HeartbeatMisses   int

	AutoRestart   bool
	MaxRestarts   int // automatic restarts allowed per RestartWindow
	RestartWindow time.Duration

	PoliteGrace, TermGrace, KillGrace time.Duration

	JournalEvents int
	JournalBytes  int
	Limits        zmqwire.Limits

	// MaxKernels and MaxKernelsPerUser are quotas, counted from the moment a
	// start is asked for (a kernel still starting counts). 0 means no limit.
	MaxKernels        int
	MaxKernelsPerUser int

	// Sandbox confines every kernel process; nil runs them as plain children.
	Sandbox Sandbox
	// ExtraBootstrap is Python code to run right after the bootstrap in
	// kernels of a kernelspec (by spec name; a Python-level policy).
	ExtraBootstrap map[string]string
	// Pool keeps kernels started ahead of demand (pool.go); the zero value
	// keeps none.
	Pool PoolConfig
}

// Sandbox confines kernel processes (the sandbox package implements it).
type Sandbox interface {
	// Wrap returns the argv that runs argv, a kernel of kernelspec spec,
	// confined, with dir (the kernel's private dir) writable, and a func to
	// call once the process is gone.
	Wrap(id, spec string, argv []string, dir string) ([]string, func(), error)
}

// DefaultConfig returns the defaults documented in docs/architecture.md.
func DefaultConfig() Config {
	return Config{
		Transport:         "ipc",
		IP:                "127.0.0.1",
		Username:          "kernelgate",
		Bootstrap:         true,
		StartTimeout:      30 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		HeartbeatTimeout:  3 * time.Second,
		HeartbeatMisses:   3,
		AutoRestart:       true,
		MaxRestarts:       5,
		RestartWindow:     time.Minute,
		PoliteGrace:       3 * time.Second,
		TermGrace:         2 * time.Second,
		KillGrace:         2 * time.Second,
		JournalEvents:     10000,
		JournalBytes:      64 << 20,
		Limits:            zmqwire.DefaultLimits(),
		MaxKernels:        100,
		MaxKernelsPerUser: 10,
	}
}

// Metrics is what the core reports; the metrics package implements it.
type Metrics interface {
	KernelStarted(spec string, took time.Duration)
	KernelsRunning(n int)
	KernelDied()
	KernelRestarted()
}

type nopMetrics struct{}

func (nopMetrics) KernelStarted(string, time.Duration) {}
func (nopMetrics) KernelsRunning(int)                  {}
func (nopMetrics) KernelDied()                         {}
func (nopMetrics) KernelRestarted()                    {}

// PoolMetrics is what the warm pool reports; a Metrics that also
// implements it receives it (pool.go).
type PoolMetrics interface {
	PoolReady(spec string, n int)
	PoolHit(spec string)
	PoolMiss(spec string)
	PoolRefillFailed(spec string)
}

type nopPoolMetrics struct{}

func (nopPoolMetrics) PoolReady(string, int)   {}
func (nopPoolMetrics) PoolHit(string)          {}
func (nopPoolMetrics) PoolMiss(string)         {}
func (nopPoolMetrics) PoolRefillFailed(string) {}

// StartOptions says which kernel to start.
type StartOptions struct {
	Spec  string // kernelspec name; empty means the default
	Owner string // the user the kernel belongs to (quotas count per owner)
	// Env is added to the kernel's environment (the API edges filter what
	// a client may set). A warm Python kernel gets it in os.environ, as it
	// is already running.
	Env map[string]string
}

// Manager starts, finds and stops kernels. Close stops them all.
type Manager struct {
	cfg         Config
	specs       map[string]kernelspec.Spec
	defaultSpec string
	log         *slog.Logger
	metrics     Metrics
	ports       *connfile.Ports // tcp ports handed out, so concurrent starts never share one

	pool *pool // nil without a configured pool

	mu      sync.Mutex // guards kernels and closed; taken before pool.mu
	kernels map[string]*Kernel
	closed  bool
	wg      sync.WaitGroup // one per kernel owner goroutine
}

// NewManager returns a manager for the given kernelspecs; defaultSpec must
// be one of them.
func NewManager(cfg Config, specs map[string]kernelspec.Spec, defaultSpec string, log *slog.Logger, m Metrics) (*Manager, error) {
	if _, ok := specs[defaultSpec]; !ok {
		return nil, fmt.Errorf("default kernelspec %q is not among the %d found", defaultSpec, len(specs))
	}
	if m == nil {
		m = nopMetrics{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mgr := &Manager{cfg: cfg, specs: specs, defaultSpec: defaultSpec, log: log, metrics: m,
		ports: connfile.NewPorts(time.Minute), kernels: make(map[string]*Kernel)}
	p, err := newPool(mgr, cfg.Pool)
	if err != nil {
		return nil, err
	}
	if p != nil {
		mgr.pool = p
		p.begin()
	}
	return mgr, nil
}

// Specs returns the known kernelspecs and the default's name.
func (m *Manager) Specs() (map[string]kernelspec.Spec, string) { return m.specs, m.defaultSpec }

// Start returns a kernel ready to execute: a warm one from the pool when
// one is ready for the spec, else a freshly started one.
func (m *Manager) Start(ctx context.Context, opts StartOptions) (*Kernel, error) {
	k, _, err := m.StartInfo(ctx, opts)
	return k, err
}

// StartResult says how a start was served.
type StartResult struct {
	Pooled bool          // handed out ready from the warm pool
	Took   time.Duration // from the call to a ready kernel
}

// StartInfo is Start, also saying whether the warm pool served it (for
// metrics and benchmarks).
func (m *Manager) StartInfo(ctx context.Context, opts StartOptions) (*Kernel, StartResult, error) {
	began := time.Now()
	name := opts.Spec
	if name == "" {
		name = m.defaultSpec
	}
	spec, ok := m.specs[name]
	if !ok {
		return nil, StartResult{}, fmt.Errorf("no such kernelspec %q: %w", name, ErrNotFound)
	}
	_, isPython := spec.Python()
	if m.pool != nil && m.pool.serves(name) && (len(opts.Env) == 0 || isPython && m.cfg.Bootstrap) {
		k, err := m.handOut(name, opts.Owner)
		if err != nil {
			return nil, StartResult{}, err
		}
		if k != nil && len(opts.Env) > 0 {
			if err := k.setEnv(ctx, opts.Env); err != nil {
				m.Shutdown(context.WithoutCancel(ctx), k.id)
				return nil, StartResult{}, err
			}
		}
		if k != nil {
			m.log.Info("kernel handed out from the warm pool", "kernel_id", k.id, "spec", name)
			return k, StartResult{Pooled: true, Took: time.Since(began)}, nil
		}
	}
	k, err := m.launch(ctx, name, spec, opts.Owner, false, opts.Env)
	if err != nil {
		return nil, StartResult{}, err
	}
	return k, StartResult{Took: time.Since(began)}, nil
}

// handOut takes a ready pool kernel for owner, checking the quotas and
// registering it in one critical section, exactly as a fresh start
// reserves its place. It returns nil, nil when the pool has none ready.
func (m *Manager) handOut(name, owner string) (*Kernel, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("kernel manager is closed")
	}
	// Over quota, a pool kernel is refused like a fresh start would be.
	if err := m.checkQuotaLocked(owner); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	k := m.pool.take(name)
	if k == nil {
		m.mu.Unlock()
		return nil, nil
	}
	k.mu.Lock()
	k.owner = owner
	k.mu.Unlock()
	m.kernels[k.id] = k
	m.metrics.KernelsRunning(len(m.kernels))
	m.mu.Unlock()
	return k, nil
}

// launch starts a kernel process and waits until it is ready. A kernel for
// a user (pooled false) is counted against the quotas and listed from the
// moment it is asked for; a pool kernel is neither until handed out.
func (m *Manager) launch(ctx context.Context, name string, spec kernelspec.Spec, owner string, pooled bool, env map[string]string) (*Kernel, error) {
	id := uuid.NewString()
	k, err := newKernel(id, spec, m.cfg, m.log, m.metrics, m.ports)
	if err != nil {
		return nil, err
	}
	k.extraEnv = env
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		os.RemoveAll(k.dir)
		return nil, errors.New("kernel manager is closed")
	}
	if !pooled {
		if err := m.checkQuotaLocked(owner); err != nil {
			m.mu.Unlock()
			os.RemoveAll(k.dir)
			return nil, err
		}
		k.owner = owner
		m.kernels[id] = k
		m.metrics.KernelsRunning(len(m.kernels))
	}
	m.wg.Add(1)
	m.mu.Unlock()
	began := time.Now()
	go func() {
		defer m.wg.Done()
		k.run()
		m.mu.Lock()
		if m.kernels[id] == k {
			delete(m.kernels, id)
			m.metrics.KernelsRunning(len(m.kernels))
		}
		m.mu.Unlock()
		if m.pool != nil {
			m.pool.kick() // a pool kernel may be the one that ended
		}
	}()
	select {
	case <-k.started:
	case <-ctx.Done():
		// The caller gave up: do not leave a kernel nobody knows about.
		m.wg.Go(func() { _ = k.Shutdown(context.Background()) })
		return nil, ctx.Err()
	}
	k.mu.Lock()
	err = k.startErr
	k.mu.Unlock()
	if err != nil {
		m.mu.Lock()
		if m.kernels[id] == k { // its owner goroutine has ended or is ending
			delete(m.kernels, id)
			m.metrics.KernelsRunning(len(m.kernels))
		}
		m.mu.Unlock()
		return nil, err
	}
	m.metrics.KernelStarted(name, time.Since(began))
	m.log.Info("kernel started", "kernel_id", id, "spec", name, "pool", pooled, "took", time.Since(began).Round(time.Millisecond))
	return k, nil
}

// ErrQuota is returned when starting a kernel would exceed a quota.
var ErrQuota = errors.New("kernel quota exceeded")

// checkQuotaLocked reserves room for one more kernel of owner.
func (m *Manager) checkQuotaLocked(owner string) error {
	if m.cfg.MaxKernels > 0 && len(m.kernels) >= m.cfg.MaxKernels {
		return fmt.Errorf("%w: the server already runs %d kernels, its limit; try again when some are shut down", ErrQuota, len(m.kernels))
	}
	if m.cfg.MaxKernelsPerUser > 0 {
		n := 0
		for _, k := range m.kernels {
			if k.owner == owner {
				n++
			}
		}
		if n >= m.cfg.MaxKernelsPerUser {
			return fmt.Errorf("%w: user %q already has %d kernels, the per-user limit; shut one down or reuse a session", ErrQuota, owner, n)
		}
	}
	return nil
}

// Get returns a kernel by id.
func (m *Manager) Get(id string) (*Kernel, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.kernels[id]
	if !ok {
		return nil, fmt.Errorf("kernel %s: %w", id, ErrNotFound)
	}
	return k, nil
}

// List returns the kernels, oldest first.
func (m *Manager) List() []*Kernel {
	m.mu.Lock()
	out := make([]*Kernel, 0, len(m.kernels))
	for _, k := range m.kernels {
		out = append(out, k)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Info().Started.Before(out[j].Info().Started) })
	return out
}

// Shutdown stops one kernel for good.
func (m *Manager) Shutdown(ctx context.Context, id string) error {
	k, err := m.Get(id)
	if err != nil {
		return err
	}
	if err := k.Shutdown(ctx); err != nil {
		return err
	}
	// Gone from the listing when Shutdown returns, not a moment later.
	m.mu.Lock()
	delete(m.kernels, id)
	m.metrics.KernelsRunning(len(m.kernels))
	m.mu.Unlock()
	return nil
}

// Close refuses new kernels, stops the warm pool (its kernels too), shuts
// every kernel down in parallel and waits for their owner goroutines. When
// ctx ends first the remaining kernels' stop ladders still finish (they are
// bounded), and Close returns ctx's error after they have.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	if m.pool != nil {
		m.pool.close() // joins its owner, which stops the idle kernels
	}
	m.mu.Lock()
	ks := make([]*Kernel, 0, len(m.kernels))
	for _, k := range m.kernels {
		ks = append(ks, k)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range ks {
		wg.Go(func() { _ = k.Shutdown(context.Background()) })
	}
	wg.Wait()
	m.wg.Wait()
	return ctx.Err()
}

// lineLogger turns a kernel's stderr into debug log lines.
type lineLogger struct {
	log    *slog.Logger
	stream string
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.log.Debug(l.stream, "line", string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a line without end: log it in pieces
		l.log.Debug(l.stream, "line", string(l.buf))
		l.buf = l.buf[:0]
	}
	return len(p), nil
}
