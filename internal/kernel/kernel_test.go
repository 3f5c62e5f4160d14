package kernel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/connfile"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/kerneltest"
	"github.com/kernelgate/kernelgate/internal/proctest"
)

// These tests drive a real ipykernel on /usr/bin/python3 (Debian's
// python3-ipykernel, installed by `make test`).

const python = "/usr/bin/python3"

func newManager(t *testing.T, mutate func(*kernel.Config)) *kernel.Manager {
	return kerneltest.NewManager(t, mutate)
}

func startKernel(t *testing.T, m *kernel.Manager) *kernel.Kernel {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	k, err := m.Start(ctx, kernel.StartOptions{})
	if err != nil {
		t.Fatalf("start kernel: %v", err)
	}
	return k
}

// run executes code and returns every event of the execution, calling
// onEvent (if set) as each arrives.
func run(t *testing.T, k *kernel.Kernel, req kernel.ExecuteRequest, onEvent func(kernel.Event)) (*kernel.Execution, []kernel.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if req.UserExpressions == nil {
		req.StoreHistory = true
	}
	ex, err := k.Execute(ctx, req)
	if err != nil {
		t.Fatalf("execute %q: %v", req.Code, err)
	}
	var evs []kernel.Event
	err = k.Follow(ctx, ex, func(e kernel.Event) error {
		evs = append(evs, e)
		if onEvent != nil {
			onEvent(e)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("follow %q: %v", req.Code, err)
	}
	return ex, evs
}

func exec(t *testing.T, k *kernel.Kernel, code string) (*kernel.Execution, []kernel.Event) {
	t.Helper()
	return run(t, k, kernel.ExecuteRequest{Code: code, StoreHistory: true}, nil)
}

// outline renders the iopub events as short strings for comparison.
func outline(t *testing.T, evs []kernel.Event) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		if e.Life != nil {
			out = append(out, "life:"+e.Life.Kind)
			continue
		}
		if e.Channel != jmsg.IOPub {
			continue
		}
		m := e.Msg
		switch m.Type() {
		case jmsg.Status:
			var c jmsg.StatusContent
			mustDecode(t, m, &c)
			out = append(out, "status:"+c.ExecutionState)
		case jmsg.Stream:
			var c jmsg.StreamContent
			mustDecode(t, m, &c)
			out = append(out, "stream:"+c.Name+":"+c.Text)
		case jmsg.ExecuteResult:
			var c jmsg.DisplayContent
			mustDecode(t, m, &c)
			out = append(out, "result:"+string(c.Data["text/plain"]))
		default:
			out = append(out, m.Type())
		}
	}
	return out
}

func mustDecode(t *testing.T, m *jmsg.Message, v any) {
	t.Helper()
	if err := m.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", m.Type(), err)
	}
}

func streamText(t *testing.T, evs []kernel.Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Msg != nil && e.Msg.Type() == jmsg.Stream {
			var c jmsg.StreamContent
			mustDecode(t, e.Msg, &c)
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func reply(t *testing.T, ex *kernel.Execution) jmsg.ExecuteReplyContent {
	t.Helper()
	_, c, err := ex.Result()
	if err != nil {
		t.Fatalf("execution ended without a reply: %v", err)
	}
	return c
}

func TestKernel_ExecuteOrder(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	ex, evs := exec(t, k, "print('hi'); 1+1")
	got := outline(t, evs)
	want := []string{"status:busy", "execute_input", "stream:stdout:hi\n", `result:"2"`, "status:idle"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("iopub sequence:\n got %q\nwant %q", got, want)
	}
	if r := reply(t, ex); r.Status != "ok" || r.ExecutionCount != 1 {
		t.Fatalf("reply = %+v, want ok with execution_count 1 (the bootstrap must not count)", r)
	}
	if st := ex.State(); st != kernel.ExecOK {
		t.Fatalf("execution state = %s, want ok", st)
	}
	if st := k.State(); st != kernel.Idle {
		t.Fatalf("kernel state = %s, want idle", st)
	}
}

func TestKernel_StreamsAsPrinted(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	ex, evs := exec(t, k, "import time\nfor i in range(20):\n    print(i)\n    time.sleep(0.05)")
	var chunks int
	for _, e := range evs {
		if e.Msg != nil && e.Msg.Type() == jmsg.Stream {
			chunks++
		}
	}
	// With ipykernel's default 0.2 s flush interval these 20 lines arrive in
	// about 5 batches; the bootstrap's 1 ms interval sends each on its own.
	if chunks < 15 {
		t.Fatalf("got %d stream messages for 20 prints 50 ms apart, want about 20", chunks)
	}
	var want strings.Builder
	for i := range 20 {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if got := streamText(t, evs); got != want.String() {
		t.Fatalf("stream text = %q", got)
	}
	if reply(t, ex).Status != "ok" {
		t.Fatal("execution failed")
	}
}

func TestKernel_PlotArrivesBeforeExecutionEnds(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	code := "import matplotlib.pyplot as plt\nplt.plot([1,2])\nplt.show()\nimport time\ntime.sleep(1)"
	var ex *kernel.Execution
	var sawPNG, beforeEnd bool
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ex, err := k.Execute(ctx, kernel.ExecuteRequest{Code: code, StoreHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	err = k.Follow(ctx, ex, func(e kernel.Event) error {
		if e.Msg == nil || e.Msg.Type() != jmsg.DisplayData {
			return nil
		}
		var c jmsg.DisplayContent
		mustDecode(t, e.Msg, &c)
		if _, ok := c.Data["image/png"]; ok && !sawPNG {
			sawPNG = true
			select {
			case <-ex.Done():
			default:
				beforeEnd = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawPNG {
		t.Fatal("no image/png display_data")
	}
	if !beforeEnd {
		t.Fatal("the plot arrived only after the execution ended; plt.show() must send it at once")
	}
	if reply(t, ex).Status != "ok" {
		t.Fatal("execution failed")
	}
}

func TestKernel_InputTwice(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	answers := []string{"Ada", "Lovelace"}
	var prompts []string
	code := "a = input('first? ')\nb = input('second? ')\nprint(a, b)"
	ex, evs := run(t, k, kernel.ExecuteRequest{Code: code, StoreHistory: true, AllowStdin: true}, func(e kernel.Event) {
		if e.Msg == nil || e.Msg.Type() != jmsg.InputRequest {
			return
		}
		var c jmsg.InputRequestContent
		mustDecode(t, e.Msg, &c)
		prompts = append(prompts, c.Prompt)
		if req, ok := k.PendingInput(); !ok || req.Header.MsgID != e.Msg.Header.MsgID {
			t.Errorf("pending input = %v, %v; want the prompt just received", req, ok)
		}
		if err := k.Input(answers[len(prompts)-1]); err != nil {
			t.Errorf("input: %v", err)
		}
	})
	if strings.Join(prompts, "|") != "first? |second? " {
		t.Fatalf("prompts = %q", prompts)
	}
	if got := streamText(t, evs); !strings.Contains(got, "Ada Lovelace\n") {
		t.Fatalf("stream = %q, want the answers printed by the same execution", got)
	}
	if reply(t, ex).Status != "ok" {
		t.Fatal("execution failed")
	}
	if err := k.Input("late"); !errors.Is(err, kernel.ErrNoInputPending) {
		t.Fatalf("input with no prompt pending: err = %v, want ErrNoInputPending", err)
	}
}

func TestKernel_Interrupt(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ex, err := k.Execute(ctx, kernel.ExecuteRequest{Code: "import time\nprint('sleeping', flush=True)\ntime.sleep(100)", StoreHistory: true})
	if err != nil {
		t.Fatal(err)
	}
	var sent time.Time
	err = k.Follow(ctx, ex, func(e kernel.Event) error {
		if e.Msg != nil && e.Msg.Type() == jmsg.Stream && sent.IsZero() {
			sent = time.Now()
			return k.Interrupt(ctx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(sent)
	r := reply(t, ex)
	if r.Status != "error" || r.Ename != "KeyboardInterrupt" {
		t.Fatalf("reply = %s %s, want error KeyboardInterrupt", r.Status, r.Ename)
	}
	t.Logf("interrupt answered in %s", took)
	// The kernel survives an interrupt with its state.
	_, evs := exec(t, k, "print('still here')")
	if got := streamText(t, evs); got != "still here\n" {
		t.Fatalf("after interrupt: %q", got)
	}
}

func TestKernel_DeathIsDetectedAndRestarted(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	exec(t, k, "x = 41")
	pid := k.Info().Pid
	ex, evs := exec(t, k, "import os; os._exit(3)")
	if _, _, err := ex.Result(); !errors.Is(err, kernel.ErrDead) {
		t.Fatalf("execution error = %v, want one saying the kernel died", err)
	}
	var died *kernel.Lifecycle
	for _, e := range evs {
		if e.Life != nil && e.Life.Kind == kernel.LifeDied {
			died = e.Life
		}
	}
	if died == nil || !strings.Contains(died.Reason, "exited with status 3") || !died.StateLost {
		t.Fatalf("died event = %+v, want the exit status and state lost", died)
	}
	waitFor(t, "kernel to restart", func() bool { return k.State() == kernel.Idle })
	if k.Info().Pid == pid || k.Info().Restarts != 1 {
		t.Fatalf("info after restart = %+v, want a new pid and 1 restart", k.Info())
	}
	restarted := lifeEvents(t, k, kernel.LifeRestarted)
	if len(restarted) != 1 || !strings.Contains(restarted[0].Reason, "exited with status 3") || !restarted[0].StateLost {
		t.Fatalf("restarted events = %+v, want one that names the death and says state was lost", restarted)
	}
	ex, _ = exec(t, k, "x")
	if r := reply(t, ex); r.Ename != "NameError" {
		t.Fatalf("x after restart: %+v, want NameError (state is gone)", r)
	}
}

func lifeEvents(t *testing.T, k *kernel.Kernel, kind string) []*kernel.Lifecycle {
	t.Helper()
	evs, err := k.Journal().Read(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []*kernel.Lifecycle
	for _, e := range evs {
		if e.Life != nil && e.Life.Kind == kind {
			out = append(out, e.Life)
		}
	}
	return out
}

func TestKernel_SIGKILLIsReportedAsLikelyOOM(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	if err := syscall.Kill(k.Info().Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "died event", func() bool { return len(lifeEvents(t, k, kernel.LifeDied)) > 0 })
	d := lifeEvents(t, k, kernel.LifeDied)[0]
	if !strings.Contains(d.Reason, "killed by SIGKILL, likely out of memory") {
		t.Fatalf("died reason = %q", d.Reason)
	}
	waitFor(t, "kernel to restart", func() bool { return k.State() == kernel.Idle })
}

func TestKernel_HeartbeatLossKillsAndRestarts(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, func(c *kernel.Config) {
		c.HeartbeatInterval = 100 * time.Millisecond
		c.HeartbeatTimeout = 200 * time.Millisecond
		c.HeartbeatMisses = 3
	}))
	pid := k.Info().Pid
	// A stopped process cannot answer heartbeats: the gateway must notice
	// although the process has not exited.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "died event", func() bool { return len(lifeEvents(t, k, kernel.LifeDied)) > 0 })
	if d := lifeEvents(t, k, kernel.LifeDied)[0]; !strings.Contains(d.Reason, "stopped answering heartbeats") {
		t.Fatalf("died reason = %q", d.Reason)
	}
	waitFor(t, "kernel to restart", func() bool { return k.State() == kernel.Idle })
	if proctest.Alive(pid) {
		t.Fatalf("the frozen kernel %d is still alive", pid)
	}
}

func TestKernel_RestartLosesState(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	exec(t, k, "y = 1")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if st := k.State(); st != kernel.Idle {
		t.Fatalf("state after restart = %s", st)
	}
	ex, _ := exec(t, k, "y")
	if r := reply(t, ex); r.Ename != "NameError" {
		t.Fatalf("y after restart: %+v", r)
	}
	if got := len(lifeEvents(t, k, kernel.LifeRestarting)); got != 1 {
		t.Fatalf("restarting events = %d", got)
	}
}

func TestKernel_ShutdownEscalatesPastIgnoredRequests(t *testing.T) {
	t.Parallel()
	m := newManager(t, func(c *kernel.Config) {
		c.PoliteGrace = 500 * time.Millisecond
		c.TermGrace = 500 * time.Millisecond
	})
	k := startKernel(t, m)
	// Ignore SIGTERM and the polite shutdown_request, and leave a child
	// behind in the process group.
	exec(t, k, `import signal, subprocess
signal.signal(signal.SIGTERM, signal.SIG_IGN)
async def _ignore(*a, **kw): pass
get_ipython().kernel.control_handlers['shutdown_request'] = _ignore
child = subprocess.Popen(['sleep', '1000'])
print(child.pid)`)
	pid := k.Info().Pid
	_, evs := exec(t, k, "print(child.pid)")
	child, err := strconv.Atoi(strings.TrimSpace(streamText(t, evs)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx, k.ID()); err != nil {
		t.Fatal(err)
	}
	if proctest.Alive(pid) || proctest.Alive(child) {
		t.Fatalf("after shutdown: kernel %d alive=%v, child %d alive=%v", pid, proctest.Alive(pid), child, proctest.Alive(child))
	}
	if _, err := m.Get(k.ID()); !errors.Is(err, kernel.ErrNotFound) {
		t.Fatalf("get after shutdown: %v", err)
	}
	if _, err := k.Execute(ctx, kernel.ExecuteRequest{Code: "1"}); !errors.Is(err, kernel.ErrShutdown) {
		t.Fatalf("execute after shutdown: %v", err)
	}
}

func TestManager_CloseStopsEveryProcess(t *testing.T) {
	t.Parallel()
	cfg := kernel.DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	m, err := kernel.NewManager(cfg, map[string]kernelspec.Spec{"python3": kernelspec.Default(python)}, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range 2 {
		k := startKernel(t, m)
		_, evs := exec(t, k, "import subprocess; print(subprocess.Popen(['sleep', '1000']).pid)")
		child, err := strconv.Atoi(strings.TrimSpace(streamText(t, evs)))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, k.Info().Pid, child)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if proctest.Alive(p) {
			t.Errorf("process %d survived Close", p)
		}
	}
	if entries, _ := os.ReadDir(cfg.RuntimeDir); len(entries) != 0 {
		t.Errorf("runtime dir not cleaned: %d entries", len(entries))
	}
	if _, err := m.Start(ctx, kernel.StartOptions{}); err == nil {
		t.Fatal("start after close succeeded")
	}
}

func TestManager_StartFailsClearly(t *testing.T) {
	t.Parallel()
	cfg := kernel.DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.StartTimeout = 20 * time.Second
	// A spec whose interpreter cannot import ipykernel.
	spec := kernelspec.Spec{Name: "broken", Language: "python",
		Argv: []string{python, "-c", "import sys; sys.stderr.write('No module named ipykernel_launcher\\n'); sys.exit(1)"}}
	m, err := kernel.NewManager(cfg, map[string]kernelspec.Spec{"broken": spec}, "broken", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	_, err = m.Start(t.Context(), kernel.StartOptions{})
	if !errors.Is(err, kernel.ErrStartFailed) || !strings.Contains(err.Error(), "exited with status 1") ||
		!strings.Contains(err.Error(), "No module named ipykernel_launcher") {
		t.Fatalf("start error = %v, want ErrStartFailed with the exit status and stderr", err)
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d kernels listed after a failed start", n)
	}
	if _, err := m.Start(t.Context(), kernel.StartOptions{Spec: "nope"}); !errors.Is(err, kernel.ErrNotFound) {
		t.Fatalf("unknown spec: %v", err)
	}
}

func TestKernel_BootstrapIsInvisible(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	_, evs := exec(t, k, "%who")
	got := streamText(t, evs)
	_, evs = exec(t, k, "import sys\nprint(sys.stdout.flush_interval, '_kernelgate' in sys.modules)")
	got += streamText(t, evs)
	if got != "Interactive namespace is empty.\n0.001 True\n" {
		t.Fatalf("output = %q, want the 1 ms flush interval, the helper module, and an empty namespace", got)
	}
}

func TestKernel_VariablesAndDatasetsHelpers(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	ds, _ := json.Marshal([]map[string]any{
		{"name": "Sales Data-2024", "data": []map[string]any{{"region": "N", "amount": 10, "note": nil}, {"region": "S", "amount": nil, "note": "x"}}},
		{"name": "2nd", "data": []map[string]any{{"v": 1}}},
		{"name": "bad", "data": "not rows"},
	})
	before := k.Journal().Last()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	res, err := k.Evaluate(ctx, map[string]string{"load": bootstrap.LoadDatasetsExpr(ds)})
	if err != nil {
		t.Fatal(err)
	}
	var load struct {
		Loaded []struct {
			Name, Variable string
			Shape          []int
		}
		Errors []string
	}
	userExpr(t, res["load"], &load)
	if len(load.Loaded) != 2 || load.Loaded[0].Variable != "sales_data_2024" || load.Loaded[1].Variable != "dataset_2nd" ||
		load.Loaded[0].Shape[0] != 2 || len(load.Errors) != 1 || !strings.Contains(load.Errors[0], "'bad'") {
		t.Fatalf("load = %+v", load)
	}
	if after := k.Journal().Last(); after != before {
		t.Fatalf("a helper call produced %d journal events", after-before)
	}
	_, evs := exec(t, k, "import os, pandas as pd, numpy as np\nbig = pd.DataFrame({'a': range(10000), 'b': np.nan})\n"+
		"print(df is sales_data_2024, df2 is dataset_2nd, sorted(f for f in os.listdir() if f.endswith('.csv')))")
	if got := streamText(t, evs); got != "True True ['2nd.csv', 'Sales Data-2024.csv', 'dataset1.csv', 'dataset2.csv', 'dataset_2nd.csv', 'sales_data_2024.csv']\n" {
		t.Fatalf("datasets in the namespace and cwd: %q", got)
	}
	res, err = k.Evaluate(ctx, map[string]string{"vars": bootstrap.VariablesExpr(5, 100)})
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]struct {
		Type      string
		Shape     []int
		Data      []map[string]any
		Truncated bool
	}
	userExpr(t, res["vars"], &vars)
	big := vars["big"]
	if big.Type != "DataFrame" || len(big.Shape) != 2 || big.Shape[0] != 10000 || len(big.Data) != 5 || !big.Truncated {
		t.Fatalf("big = %+v, want a 5-row preview of a 10000-row frame", big)
	}
	if big.Data[0]["b"] != nil {
		t.Fatalf("NaN must become null, got %v", big.Data[0]["b"])
	}
	if _, ok := vars["os"]; ok {
		t.Fatal("modules must not be listed as variables")
	}
}

func userExpr(t *testing.T, res kernel.ExprResult, v any) {
	t.Helper()
	if res.Status != "ok" {
		t.Fatalf("user expression failed: %s: %s", res.Ename, res.Evalue)
	}
	if err := json.Unmarshal(res.Data["application/json"], v); err != nil {
		t.Fatalf("user expression json: %v (%s)", err, res.Data["application/json"])
	}
}

func TestKernel_Transports(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"ipc", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			var dir string
			m := newManager(t, func(c *kernel.Config) { c.Transport = transport; dir = c.RuntimeDir })
			k := startKernel(t, m)
			_, evs := exec(t, k, "print('over "+transport+"')")
			if got := streamText(t, evs); got != "over "+transport+"\n" {
				t.Fatalf("got %q", got)
			}
			info, err := connfile.Read(filepath.Join(dir, k.ID()[:13], "connection-1.json"))
			if err != nil || info.Transport != transport {
				t.Fatalf("connection file: %+v, %v; want transport %s", info, err, transport)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// What a cell prints before input() reaches clients before the prompt, every
// time, although the two travel on different sockets.
func TestKernel_OutputBeforePromptStaysBeforeIt(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	for i := range 15 {
		code := fmt.Sprintf("print('before %d')\nx = input('q%d? ')", i, i)
		var order []string
		run(t, k, kernel.ExecuteRequest{Code: code, AllowStdin: true}, func(e kernel.Event) {
			if e.Msg == nil {
				return
			}
			switch e.Msg.Type() {
			case jmsg.Stream:
				order = append(order, "stream")
			case jmsg.InputRequest:
				order = append(order, "prompt")
				if err := k.Input("x"); err != nil {
					t.Error(err)
				}
			case bootstrap.InputMarker:
				t.Error("the marker must not reach the journal")
			}
		})
		if len(order) < 2 || order[0] != "stream" || order[len(order)-1] != "prompt" {
			t.Fatalf("cell %d: order %v, want the printed text before the prompt", i, order)
		}
	}
}

func TestManager_Quotas(t *testing.T) {
	t.Parallel()
	m := newManager(t, func(c *kernel.Config) { c.MaxKernels = 2; c.MaxKernelsPerUser = 1 })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	a, err := m.Start(ctx, kernel.StartOptions{Owner: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, kernel.StartOptions{Owner: "ann"}); !errors.Is(err, kernel.ErrQuota) || !strings.Contains(err.Error(), `user "ann" already has 1 kernels`) {
		t.Fatalf("second kernel for ann: %v", err)
	}
	if _, err := m.Start(ctx, kernel.StartOptions{Owner: "bo"}); err != nil {
		t.Fatalf("bo's first kernel: %v", err)
	}
	if _, err := m.Start(ctx, kernel.StartOptions{Owner: "cy"}); !errors.Is(err, kernel.ErrQuota) || !strings.Contains(err.Error(), "already runs 2 kernels") {
		t.Fatalf("third kernel on the server: %v", err)
	}
	if err := m.Shutdown(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, kernel.StartOptions{Owner: "ann"}); err != nil {
		t.Fatalf("ann after shutting one down: %v", err)
	}
}

// ipykernel aborts requests that arrive right after an error of a
// stop_on_error execution ("aborted", no ename); the gateway's own
// Evaluate must not fail on that window.
func TestEvaluateRightAfterAnError(t *testing.T) {
	m := newManager(t, nil)
	k := startKernel(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 6 {
		interrupt := i%2 == 1
		code := "x = 1\n1/0"
		if interrupt {
			code = "x = 1\nimport time\nprint('sleeping', flush=True)\ntime.sleep(60)"
		}
		ex, err := k.Execute(ctx, kernel.ExecuteRequest{Code: code, StopOnError: true})
		if err != nil {
			t.Fatal(err)
		}
		if interrupt {
			waitOutput(t, k, ex, "sleeping")
			if err := k.Interrupt(ctx); err != nil {
				t.Fatal(err)
			}
		}
		<-ex.Done()
		res, err := k.Evaluate(ctx, map[string]string{"x": "x + 1"})
		if err != nil {
			t.Fatalf("round %d: Evaluate right after an error: %v", i, err)
		}
		if got := string(res["x"].Data["text/plain"]); got != `"2"` {
			t.Fatalf("round %d: x + 1 = %s", i, got)
		}
	}
}

// waitOutput waits until ex has printed text.
func waitOutput(t *testing.T, k *kernel.Kernel, ex *kernel.Execution, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pos := ex.After
	for {
		evs, err := k.Journal().Read(ctx, pos, 0)
		if err != nil {
			t.Fatalf("waiting for %q: %v", text, err)
		}
		for _, e := range evs {
			pos = e.Seq
			if e.Msg != nil && e.Msg.ParentID() == ex.ID && e.Msg.Type() == jmsg.Stream && strings.Contains(string(e.Msg.Content), text) {
				return
			}
		}
	}
}

// A cell sent once the previous one has failed (reply and idle seen) runs:
// ipykernel's abort after a stop_on_error failure covers only requests that
// were already waiting (the bootstrap closes the window it left open).
func TestKernel_CellAfterAnErrorIsNotAborted(t *testing.T) {
	t.Parallel()
	k := startKernel(t, newManager(t, nil))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for i := range 20 {
		bad, err := k.Execute(ctx, kernel.ExecuteRequest{Code: "1/0", StopOnError: true})
		if err != nil {
			t.Fatal(err)
		}
		<-bad.Done()
		good, err := k.Execute(ctx, kernel.ExecuteRequest{Code: "print('ran')", StopOnError: true})
		if err != nil {
			t.Fatal(err)
		}
		<-good.Done()
		if _, r, err := good.Result(); err != nil || r.Status != "ok" {
			t.Fatalf("round %d: the cell after an error: %v %+v; want ok", i, err, r)
		}
	}
	// Requests already waiting behind a failing one are still aborted
	// (run-all stops at an error).
	bad, _ := k.Execute(ctx, kernel.ExecuteRequest{Code: "import time; time.sleep(0.2); 1/0", StopOnError: true})
	queued, _ := k.Execute(ctx, kernel.ExecuteRequest{Code: "print('queued')", StopOnError: true})
	<-bad.Done()
	<-queued.Done()
	if _, r, _ := queued.Result(); r.Status != "aborted" {
		t.Errorf("a request queued behind a failure: %+v; want aborted", r)
	}
}
