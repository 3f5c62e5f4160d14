package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// PoolSamples are one run's kernel-ready times for a new session, in ms:
// handed out by the warm pool, and started cold, both sandboxed as the
// server runs them.
type PoolSamples struct {
	PooledMS []float64
	ColdMS   []float64
}

// engineSandbox returns the sandbox `kernelgate serve` would use with c, and
// a description for the report; nil (and why) where the machine cannot
// confine kernels or c says not to.
func engineSandbox(c config.Config) (kernel.Sandbox, string) {
	if c.SandboxMode() == "none" {
		return nil, "unsandboxed (--sandbox none)"
	}
	sb, err := sandbox.New(c.SandboxPolicy)
	if err != nil {
		return nil, "unsandboxed (this machine cannot confine kernels: " + err.Error() + ")"
	}
	return sb, "sandboxed: " + sb.Status()
}

// runPool times what a new session waits for a ready kernel: Manager.Start
// served by a full warm pool of one kernel (each hand-out is timed only
// once the pool has refilled, so refills never overlap a timed start), then
// Manager.Start with no pool, each the same number of times.
func runPool(ctx context.Context, c config.Config, specs map[string]kernelspec.Spec, log *slog.Logger, p Params) (s PoolSamples, err error) {
	kc := c.Kernel
	kc.Pool = kernel.PoolConfig{Sizes: map[string]int{"": 1}}
	s.PooledMS, err = timeStarts(ctx, kc, c.KernelSpec, specs, log, p.PoolStarts, true)
	if err != nil {
		return s, fmt.Errorf("pooled: %w", err)
	}
	kc.Pool = kernel.PoolConfig{}
	s.ColdMS, err = timeStarts(ctx, kc, c.KernelSpec, specs, log, p.PoolStarts, false)
	if err != nil {
		return s, fmt.Errorf("cold: %w", err)
	}
	return s, nil
}

func timeStarts(ctx context.Context, kc kernel.Config, def string, specs map[string]kernelspec.Spec, log *slog.Logger, n int, pooled bool) (out []float64, err error) {
	mgr, err := kernel.NewManager(kc, specs, def, log, nil)
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	defer func() {
		if cerr := mgr.Close(context.Background()); cerr != nil && err == nil {
			err = fmt.Errorf("close manager: %w", cerr)
		}
	}()
	for i := range n {
		if pooled {
			if err := waitPoolReady(ctx, mgr); err != nil {
				return nil, err
			}
		}
		began := time.Now()
		k, res, err := mgr.StartInfo(ctx, kernel.StartOptions{Owner: "kgbench"})
		took := time.Since(began)
		if err != nil {
			return nil, fmt.Errorf("start %d: %w", i+1, err)
		}
		if res.Pooled != pooled {
			return nil, fmt.Errorf("start %d: served from the pool: %v, want %v", i+1, res.Pooled, pooled)
		}
		out = append(out, ms(took))
		if err := mgr.Shutdown(ctx, k.ID()); err != nil {
			return nil, fmt.Errorf("shut down kernel %d: %w", i+1, err)
		}
	}
	return out, nil
}

// waitPoolReady waits until every pooled spec is full.
func waitPoolReady(ctx context.Context, mgr *kernel.Manager) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		full := true
		for _, st := range mgr.PoolStats() {
			full = full && st.Ready >= st.Target
		}
		if full {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the warm pool did not fill: " + mgr.PoolStatus())
		case <-t.C:
		}
	}
}

// poolMetric pairs the pooled and the cold samples: the pool is the
// "engine" column, a cold start of the same sandboxed kernel the peer.
func poolMetric(runs []PoolSamples) Metric {
	m := Metric{
		Title: "Kernel ready for a new session: warm pool vs cold (sandboxed)",
		What: "`Manager.Start` until it returns a kernel ready to execute. Engine: served by the warm pool " +
			"(a kernel already started, sandboxed and bootstrapped; the hand-out checks the quotas and registers it). " +
			"Cold: the same sandboxed kernelspec started on demand (sandbox helper, bwrap, process, ZMQ, handshake, bootstrap).",
		Unit: "ms", BaselineName: "cold",
		Target: &Target{Kind: TargetAbsolute, Limit: 50},
	}
	for _, r := range runs {
		m.Engine = append(m.Engine, r.PooledMS)
		m.Baseline = append(m.Baseline, r.ColdMS)
	}
	return m
}

func poolMethod(p Params, sandboxed string) string {
	return fmt.Sprintf("Warm pool: per run, %d starts served by a pool of one kernel (each timed only after the pool has refilled) "+
		"and %d cold starts on a manager without a pool; kernels %s. Each kernel is shut down after its timed start.",
		p.PoolStarts, p.PoolStarts, sandboxed)
}
