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
}

// Sandbox confines kernel processes (the sandbox package implements it).
type Sandbox interface {
	// Wrap returns the argv that runs argv confined, with dir (the kernel's
	// private dir) writable, and a func to call once the process is gone.
	Wrap(id string, argv []string, dir string) ([]string, func(), error)
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

// StartOptions says which kernel to start.
type StartOptions struct {
	Spec  string // kernelspec name; empty means the default
	Owner string // the user the kernel belongs to (quotas count per owner)
}

// Manager starts, finds and stops kernels. Close stops them all.
type Manager struct {
	cfg         Config
	specs       map[string]kernelspec.Spec
	defaultSpec string
	log         *slog.Logger
	metrics     Metrics
	ports       *connfile.Ports // tcp ports handed out, so concurrent starts never share one

	mu      sync.Mutex // guards kernels and closed
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
	return &Manager{cfg: cfg, specs: specs, defaultSpec: defaultSpec, log: log, metrics: m,
		ports: connfile.NewPorts(time.Minute), kernels: make(map[string]*Kernel)}, nil
}

// Specs returns the known kernelspecs and the default's name.
func (m *Manager) Specs() (map[string]kernelspec.Spec, string) { return m.specs, m.defaultSpec }

// Start starts a kernel and returns once it is ready to execute.
func (m *Manager) Start(ctx context.Context, opts StartOptions) (*Kernel, error) {
	name := opts.Spec
	if name == "" {
		name = m.defaultSpec
	}
	spec, ok := m.specs[name]
	if !ok {
		return nil, fmt.Errorf("no such kernelspec %q: %w", name, ErrNotFound)
	}
	id := uuid.NewString()
	k, err := newKernel(id, spec, m.cfg, m.log, m.metrics, m.ports)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("kernel manager is closed")
	}
	if err := m.checkQuotaLocked(opts.Owner); err != nil {
		m.mu.Unlock()
		os.RemoveAll(k.dir)
		return nil, err
	}
	k.owner = opts.Owner
	m.kernels[id] = k
	m.metrics.KernelsRunning(len(m.kernels))
	m.wg.Add(1)
	m.mu.Unlock()
	began := time.Now()
	go func() {
		defer m.wg.Done()
		k.run()
		m.mu.Lock()
		delete(m.kernels, id)
		m.metrics.KernelsRunning(len(m.kernels))
		m.mu.Unlock()
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
		delete(m.kernels, id) // its owner goroutine has ended or is ending
		m.mu.Unlock()
		return nil, err
	}
	m.metrics.KernelStarted(name, time.Since(began))
	m.log.Info("kernel started", "kernel_id", id, "spec", name, "took", time.Since(began).Round(time.Millisecond))
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

// Close refuses new kernels, shuts every kernel down in parallel and waits
// for their owner goroutines. When ctx ends first the remaining kernels'
// stop ladders still finish (they are bounded), and Close returns ctx's
// error after they have.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
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
