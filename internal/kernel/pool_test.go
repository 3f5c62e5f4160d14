package kernel

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// These tests drive real ipykernels on /usr/bin/python3, like
// kernel_test.go, with a warm pool in the manager.

func newPoolManager(t *testing.T, mutate func(*Config)) *Manager {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	cfg.Pool = PoolConfig{Sizes: map[string]int{"": 2}}
	if mutate != nil {
		mutate(&cfg)
	}
	specs := map[string]kernelspec.Spec{"python3": kernelspec.Default("/usr/bin/python3")}
	m, err := NewManager(cfg, specs, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close manager: %v", err)
		}
	})
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyKernels is a snapshot of the pool's ready kernels of the default spec.
func readyKernels(m *Manager) []*Kernel {
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	return append([]*Kernel(nil), m.pool.ready[m.defaultSpec]...)
}

func waitPoolFull(t *testing.T, m *Manager) []*Kernel {
	t.Helper()
	want := m.pool.sizes[m.defaultSpec]
	waitFor(t, "a full pool", func() bool { return len(readyKernels(m)) == want })
	return readyKernels(m)
}

func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runCode executes code as a user cell and returns its stdout.
func runCode(t *testing.T, k *Kernel, code string) (string, *Execution) {
	t.Helper()
	ctx := startCtx(t)
	ex, err := k.Execute(ctx, ExecuteRequest{Code: code, StoreHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err = k.Follow(ctx, ex, func(e Event) error {
		if e.Msg != nil && e.Msg.Type() == jmsg.Stream {
			var sc jmsg.StreamContent
			if err := e.Msg.Decode(&sc); err != nil {
				return err
			}
			out.WriteString(sc.Text)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), ex
}

func TestPool_HandsOutAReadyPreloadedKernel(t *testing.T) {
	m := newPoolManager(t, func(c *Config) { c.Pool.Preload = []string{"fractions", "no_such_module_kg"} })
	pooled := waitPoolFull(t, m)

	k, res, err := m.StartInfo(startCtx(t), StartOptions{Owner: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pooled {
		t.Fatal("a start with a full pool was not served from it")
	}
	if k != pooled[0] {
		t.Fatal("the pool did not hand out its oldest ready kernel")
	}
	if st := k.State(); st != Idle {
		t.Fatalf("handed-out kernel is %s, want idle at once", st)
	}
	if k.Info().Owner != "ada" {
		t.Fatalf("owner %q, want ada", k.Info().Owner)
	}
	// The preload ran, silently: the module is imported, no name is bound,
	// nothing is in the journal and the user's first cell is number 1.
	out, ex := runCode(t, k, "import sys; print('fractions' in sys.modules, 'fractions' in globals())")
	if out != "True False\n" {
		t.Fatalf("preload: got %q, want %q", out, "True False\n")
	}
	if _, reply, err := ex.Result(); err != nil || reply.ExecutionCount != 1 {
		t.Fatalf("first user cell: count %d, err %v; want 1", reply.ExecutionCount, err)
	}
	evs, err := k.Journal().Read(t.Context(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Life != nil {
			t.Fatalf("journal has lifecycle event %s", e.Life.Kind)
		}
		if e.Seq <= ex.After && e.Msg.Type() != jmsg.Status {
			t.Fatalf("journal has %s from before the user's first cell", e.Msg.Type())
		}
	}
}

func TestPool_RefillsAfterHandOutAndNeverReuses(t *testing.T) {
	m := newPoolManager(t, nil)
	first := waitPoolFull(t, m)
	k, err := m.Start(startCtx(t), StartOptions{Owner: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	// Refilled with a fresh kernel, not the one handed out.
	waitFor(t, "a refill", func() bool {
		rk := readyKernels(m)
		return len(rk) == 2 && rk[0] != k && rk[1] != k && rk[1] != first[1]
	})
	// A used kernel that is shut down does not come back.
	if err := m.Shutdown(startCtx(t), k.ID()); err != nil {
		t.Fatal(err)
	}
	for _, r := range readyKernels(m) {
		if r == k {
			t.Fatal("a shut-down kernel is back in the pool")
		}
	}
	if _, err := m.Get(k.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after shutdown: %v", err)
	}
}

func TestPool_QuotasCountOnlyHandedOutKernels(t *testing.T) {
	m := newPoolManager(t, func(c *Config) { c.MaxKernels = 1 })
	waitPoolFull(t, m)
	if n := len(m.List()); n != 0 {
		t.Fatalf("List shows %d kernels with only pool kernels running", n)
	}
	k, res, err := m.StartInfo(startCtx(t), StartOptions{Owner: "ada"})
	if err != nil {
		t.Fatalf("with 2 idle pool kernels and a limit of 1, the first start failed: %v", err)
	}
	if !res.Pooled {
		t.Fatal("not served from the pool")
	}
	waitPoolFull(t, m)
	before := readyKernels(m)
	if _, err := m.Start(startCtx(t), StartOptions{Owner: "bob"}); !errors.Is(err, ErrQuota) {
		t.Fatalf("second start over the limit: %v, want ErrQuota", err)
	}
	after := readyKernels(m)
	if len(after) != len(before) || after[0] != before[0] {
		t.Fatal("a refused start took a kernel from the pool")
	}
	if got := m.List(); len(got) != 1 || got[0] != k {
		t.Fatalf("List = %d kernels, want only the handed-out one", len(got))
	}
}

func TestPool_ConcurrentStartsNeverExceedQuotaOrShareAKernel(t *testing.T) {
	m := newPoolManager(t, func(c *Config) {
		c.MaxKernels = 3
		c.MaxKernelsPerUser = 2
		c.Pool.Sizes = map[string]int{"python3": 3}
	})
	waitPoolFull(t, m)
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  = map[*Kernel]string{}
		errs []error
	)
	for i := range n {
		owner := []string{"ada", "bob"}[i%2]
		wg.Go(func() {
			k, err := m.Start(startCtx(t), StartOptions{Owner: owner})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if prev, dup := got[k]; dup {
				t.Errorf("kernel %s handed out twice (to %s and %s)", k.ID(), prev, owner)
			}
			got[k] = owner
		})
	}
	wg.Wait()
	if len(got) != 3 {
		t.Fatalf("%d starts succeeded, want exactly 3 (the server limit)", len(got))
	}
	perUser := map[string]int{}
	for k, owner := range got {
		perUser[owner]++
		if k.Info().Owner != owner {
			t.Errorf("kernel %s owner %q, handed to %q", k.ID(), k.Info().Owner, owner)
		}
		for _, r := range readyKernels(m) {
			if r == k {
				t.Errorf("handed-out kernel %s is still in the pool", k.ID())
			}
		}
	}
	for owner, c := range perUser {
		if c > 2 {
			t.Errorf("%s got %d kernels, over the per-user limit of 2", owner, c)
		}
	}
	for _, err := range errs {
		if !errors.Is(err, ErrQuota) {
			t.Errorf("a refused start: %v, want ErrQuota", err)
		}
	}
	if l := len(m.List()); l != 3 {
		t.Fatalf("List shows %d kernels, want 3", l)
	}
}

func TestPool_KilledKernelIsReplaced(t *testing.T) {
	m := newPoolManager(t, nil)
	ready := waitPoolFull(t, m)
	victim := ready[0]
	pid := victim.Info().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed kernel's replacement", func() bool {
		rk := readyKernels(m)
		return len(rk) == 2 && rk[0] != victim && rk[1] != victim
	})
	<-victim.Done() // discarded, not restarted in the pool
	k, res, err := m.StartInfo(startCtx(t), StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pooled || k == victim || k.Info().Restarts != 0 {
		t.Fatalf("hand-out after a kill: pooled %v, victim %v, restarts %d", res.Pooled, k == victim, k.Info().Restarts)
	}
}

func TestPool_RefillBacksOffOnFailures(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.StartTimeout = 5 * time.Second
	// A spec whose kernel exits at once: every refill fails.
	cfg.Pool = PoolConfig{Sizes: map[string]int{"broken": 1}, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	specs := map[string]kernelspec.Spec{
		"python3": kernelspec.Default("/usr/bin/python3"),
		"broken":  {Name: "broken", Argv: []string{"/bin/false"}, Language: "python"},
	}
	m, err := NewManager(cfg, specs, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	waitFor(t, "a failed refill", func() bool {
		s := m.PoolStats()
		return len(s) == 1 && s[0].LastError != "" && s[0].Ready == 0
	})
	if st := m.PoolStatus(); !strings.Contains(st, "broken 0/1 ready (refills failing: ") {
		t.Fatalf("status %q", st)
	}
	// A start of the broken spec misses the pool and fails like any start.
	if _, res, err := m.StartInfo(startCtx(t), StartOptions{Spec: "broken"}); err == nil || res.Pooled {
		t.Fatalf("start of a broken spec: pooled %v, err %v", res.Pooled, err)
	}
	if got := backoff(1, time.Second, time.Minute); got != time.Second {
		t.Errorf("backoff(1) = %s", got)
	}
	if got := backoff(4, time.Second, time.Minute); got != 8*time.Second {
		t.Errorf("backoff(4) = %s", got)
	}
	if got := backoff(30, time.Second, time.Minute); got != time.Minute {
		t.Errorf("backoff(30) = %s", got)
	}
}

func TestPool_CloseStopsEverything(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	cfg.Pool = PoolConfig{Sizes: map[string]int{"": 2}}
	m, err := NewManager(cfg, map[string]kernelspec.Spec{"python3": kernelspec.Default("/usr/bin/python3")}, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := waitPoolFull(t, m)
	used, err := m.Start(startCtx(t), StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Close while the pool is refilling the kernel just handed out.
	pids := []int{used.Info().Pid}
	for _, k := range ready {
		if k != used {
			pids = append(pids, k.Info().Pid)
		}
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.pool.done:
	default:
		t.Fatal("Close returned before the pool's owner goroutine")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("kernel process %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	if st := m.PoolStatus(); st != "warm pool: python3 0/2 ready" {
		t.Errorf("status after Close %q", st)
	}
	ents, err := os.ReadDir(cfg.RuntimeDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("runtime dir keeps %d kernel dirs after Close", len(ents))
	}
	if _, err := m.Start(startCtx(t), StartOptions{}); err == nil {
		t.Fatal("a start after Close succeeded")
	}
}

func TestPool_Config(t *testing.T) {
	specs := map[string]kernelspec.Spec{"python3": kernelspec.Default("/usr/bin/python3")}
	cfg := DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	m, err := NewManager(cfg, specs, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.pool != nil || m.PoolStatus() != "warm pool: off" {
		t.Fatalf("default kernel config has a pool: %q", m.PoolStatus())
	}
	m.Close(context.Background())
	for _, bad := range []PoolConfig{
		{Sizes: map[string]int{"nope": 1}},
		{Sizes: map[string]int{"": 1}, Preload: []string{"os; import evil"}},
	} {
		cfg.Pool = bad
		if m, err := NewManager(cfg, specs, "python3", nil, nil); err == nil {
			m.Close(context.Background())
			t.Errorf("NewManager accepted pool %+v", bad)
		}
	}
	for name, ok := range map[string]bool{"numpy": true, "matplotlib.pyplot": true, "_x.y_2": true,
		"": false, "1x": false, "a..b": false, "a.": false, "os;x": false, "a b": false, "'a'": false} {
		if ValidModuleName(name) != ok {
			t.Errorf("ValidModuleName(%q) = %v", name, !ok)
		}
	}
}
