package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// requestTimeout bounds every single request: a hung kernel must fail the
// benchmark, not stall it.
const requestTimeout = 30 * time.Second

// Samples are one run's raw measurements on one side, in milliseconds. The
// JSON names are those bench/baseline.py prints.
type Samples struct {
	Versions      map[string]string    `json:"versions"`
	Argv          []string             `json:"argv"`
	StartMS       []float64            `json:"start_ms"`
	KernelInfoMS  []float64            `json:"kernel_info_ms"`
	ExecuteMS     []float64            `json:"execute_ms"`
	KernelInfoBKC []float64            `json:"kernel_info_bkc_ms"`
	ExecuteBKC    []float64            `json:"execute_bkc_ms"`
	StreamMS      map[string][]float64 `json:"stream_ms"` // "noflush", "flush"
}

// Params are the workload sizes, shared by the engine and the baseline.
type Params struct {
	N, Warmup, Starts       int
	PoolStarts              int
	StreamLines, StreamReps int
	StreamSleep             time.Duration
}

// streamCode prints the kernel's wall clock once per line; the reader
// subtracts it from its own wall clock (same machine, same clock).
func streamCode(lines int, sleep time.Duration, flush bool) string {
	f := "False"
	if flush {
		f = "True"
	}
	return fmt.Sprintf("import time\nfor _i in range(%d):\n    print(time.time_ns(), flush=%s)\n    time.sleep(%g)\n",
		lines, f, sleep.Seconds())
}

// runEngine takes one run's measurements through kernelgate's core: a fresh
// Manager built as internal/app builds it, Starts kernel starts, then every
// round-trip metric on the last kernel started.
func runEngine(ctx context.Context, c config.Config, specs map[string]kernelspec.Spec, log *slog.Logger, p Params) (s Samples, err error) {
	mgr, err := kernel.NewManager(c.Kernel, specs, c.KernelSpec, log, nil)
	if err != nil {
		return s, fmt.Errorf("new manager: %w", err)
	}
	defer func() {
		if cerr := mgr.Close(context.Background()); cerr != nil && err == nil {
			err = fmt.Errorf("close manager: %w", cerr)
		}
	}()

	var k *kernel.Kernel
	for i := range p.Starts {
		began := time.Now()
		k, err = mgr.Start(ctx, kernel.StartOptions{})
		if err != nil {
			return s, fmt.Errorf("start kernel %d: %w", i+1, err)
		}
		s.StartMS = append(s.StartMS, ms(time.Since(began)))
		if i < p.Starts-1 {
			if err := k.Shutdown(ctx); err != nil {
				return s, fmt.Errorf("shut down kernel %d: %w", i+1, err)
			}
		}
	}

	s.KernelInfoMS, err = timed(p, func() error {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		r, err := k.Call(rctx, jmsg.Shell, jmsg.KernelInfoRequest, struct{}{})
		if err != nil {
			return fmt.Errorf("kernel_info: %w", err)
		}
		if r.Type() != jmsg.KernelInfoReply {
			return fmt.Errorf("kernel_info: got %s", r.Type())
		}
		return nil
	})
	if err != nil {
		return s, err
	}

	s.ExecuteMS, err = timed(p, func() error {
		_, err := execute(ctx, k, "1+1")
		return err
	})
	if err != nil {
		return s, err
	}

	s.StreamMS = map[string][]float64{}
	for _, flush := range []bool{false, true} {
		key := "noflush"
		if flush {
			key = "flush"
		}
		for range p.StreamReps {
			lat, err := streamLatency(ctx, k, streamCode(p.StreamLines, p.StreamSleep, flush))
			if err != nil {
				return s, fmt.Errorf("stream (%s): %w", key, err)
			}
			s.StreamMS[key] = append(s.StreamMS[key], lat...)
		}
	}
	return s, nil
}

// timed runs fn p.Warmup times untimed, then p.N times timed.
func timed(p Params, fn func() error) ([]float64, error) {
	for range p.Warmup {
		if err := fn(); err != nil {
			return nil, fmt.Errorf("warmup: %w", err)
		}
	}
	out := make([]float64, 0, p.N)
	for range p.N {
		began := time.Now()
		if err := fn(); err != nil {
			return nil, err
		}
		out = append(out, ms(time.Since(began)))
	}
	return out, nil
}

// execute runs code and waits until the engine has seen both its
// execute_reply and its iopub idle, which is when Done closes.
func execute(ctx context.Context, k *kernel.Kernel, code string) (*kernel.Execution, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ex, err := k.Execute(rctx, kernel.ExecuteRequest{Code: code, StoreHistory: true})
	if err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	if err := ex.Wait(rctx); err != nil {
		return nil, fmt.Errorf("execute %q: %w", code, err)
	}
	if _, reply, xerr := ex.Result(); xerr != nil {
		return nil, fmt.Errorf("execute %q: %w", code, xerr)
	} else if reply.Status != "ok" {
		return nil, fmt.Errorf("execute %q: %s: %s %s", code, reply.Status, reply.Ename, reply.Evalue)
	}
	return ex, nil
}

// streamLatency executes code that prints time.time_ns() per line and reads
// the journal as a gateway client does, returning receive minus print time
// per line in ms. The receive time is taken when Read hands over a batch:
// that is when a WebSocket or HTTP client of the engine could first see it.
func streamLatency(ctx context.Context, k *kernel.Kernel, code string) ([]float64, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ex, err := k.Execute(rctx, kernel.ExecuteRequest{Code: code, StoreHistory: true})
	if err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	var chunks []streamChunk
	after := ex.After
	for {
		evs, err := k.Journal().Read(rctx, after, 256)
		recv := time.Now().UnixNano()
		if err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		for _, e := range evs {
			after = e.Seq
			if e.Life != nil {
				return nil, fmt.Errorf("kernel %s during the stream: %s", e.Life.Kind, e.Life.Reason)
			}
			if e.Msg.ParentID() != ex.ID {
				continue
			}
			switch e.Msg.Type() {
			case jmsg.Stream:
				var sc jmsg.StreamContent
				if err := e.Msg.Decode(&sc); err != nil {
					return nil, fmt.Errorf("decode stream: %w", err)
				}
				chunks = append(chunks, streamChunk{At: recv, Text: sc.Text})
			case jmsg.Status:
				var st jmsg.StatusContent
				// iopub is ordered: once idle is journaled, every output of
				// the execution is too.
				if e.Msg.Decode(&st) == nil && st.ExecutionState == "idle" {
					if err := ex.Wait(rctx); err != nil {
						return nil, fmt.Errorf("wait for execute_reply: %w", err)
					}
					if _, _, xerr := ex.Result(); xerr != nil {
						return nil, xerr
					}
					return StreamLatencies(chunks)
				}
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
