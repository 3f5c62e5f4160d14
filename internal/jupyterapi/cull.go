package jupyterapi

import (
	"context"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
)

// noteStarted records a kernel started through this API, for the culler.
// Kernels of the AdeloopFlow sessions are that API's to end (its sessions
// have their own TTL).
func (a *API) noteStarted(id string) {
	a.mu.Lock()
	a.startedHere[id] = struct{}{}
	a.mu.Unlock()
}

// cull shuts down kernels started here that are idle, have no channel
// connection and have not been active for CullIdleTimeout (Jupyter's
// cull_idle_timeout with cull_connected and cull_busy off). It runs until
// the API closes.
func (a *API) cull() {
	t := time.NewTicker(a.cfg.CullInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case now := <-t.C:
			for _, k := range a.cullable(now) {
				a.log.Info("culling idle kernel", "kernel_id", k.ID(), "owner", k.Info().Owner, "idle_for", now.Sub(k.Info().LastActivity).Round(time.Second))
				ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
				if err := a.kernels.Shutdown(ctx, k.ID()); err != nil {
					a.log.Warn("cull idle kernel", "kernel_id", k.ID(), "err", err)
				}
				cancel()
			}
		}
	}
}

// cullable returns the kernels to cull now and forgets kernels that are gone.
func (a *API) cullable(now time.Time) []*kernel.Kernel {
	a.mu.Lock()
	ids := make([]string, 0, len(a.startedHere))
	for id := range a.startedHere {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	var out []*kernel.Kernel
	for _, id := range ids {
		k, err := a.kernels.Get(id)
		if err != nil {
			a.mu.Lock()
			delete(a.startedHere, id)
			a.mu.Unlock()
			continue
		}
		info := k.Info()
		last := info.LastActivity
		if last.IsZero() {
			last = info.Started
		}
		if (info.State == kernel.Idle || info.State == kernel.Dead) && a.connections(id) == 0 && now.Sub(last) >= a.cfg.CullIdleTimeout {
			out = append(out, k)
		}
	}
	return out
}
