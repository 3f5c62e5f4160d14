// Command kgbench benchmarks kernelgate against its peers on this machine,
// all in one invocation, and writes a markdown report (docs/benchmarks.md
// by default); it prints the headline table and the raw results as JSON.
//
//	go run ./cmd/kgbench [-quick] [-workloads rtt,stream,...] [-runs 3] [-out docs/benchmarks.md]
//
// Peers: a direct jupyter_client client with no server (bench/baseline.py,
// the floor), Jupyter Server 1.23 from Debian with its own local kernels,
// and kernelgate (the real bin/kernelgate binary as a subprocess) through
// /ws and through /api/kernels/{id}/channels. Workloads: the `1+1` round
// trip, stream latency, plot latency, a 10 MB output flood, a 10,000-row
// DataFrame result, time to a ready kernel (cold and warm pool), 20
// concurrent clients, and many live kernels with idle WebSockets (memory
// and CPU read from /proc). Peers run alternately, round by round, so
// machine noise lands on all of them.
//
// The "engine" workload keeps the earlier comparison: kernelgate's core
// (internal/kernel) driven in-process against the floor, and the warm pool
// against cold sandboxed starts.
//
// kgbench must run from the module root (it finds bench/baseline.py and
// bin/kernelgate by relative paths, as `make bench` does).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/internal/app"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

func main() {
	sandbox.MaybeRunHelper() // sandboxed kernels re-execute this binary as their helper
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kgbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		p         Params
		sp        SuiteParams
		runs      int
		out       string
		jsonOut   string
		python    string
		baseline  string
		workloads string
		framing   string
		quick     bool
		render    string
	)
	fs.IntVar(&p.N, "n", 200, "timed iterations per round-trip metric, per run")
	fs.IntVar(&p.Warmup, "warmup", 20, "untimed iterations before the timed ones")
	fs.IntVar(&runs, "runs", 3, "runs (rounds) per peer, interleaved peer by peer")
	fs.IntVar(&p.Starts, "starts", 5, "kernel starts timed per engine run")
	fs.IntVar(&p.PoolStarts, "pool-starts", 5, "sandboxed starts timed per run from the warm pool, and as many cold (engine)")
	fs.IntVar(&p.StreamLines, "stream-lines", 50, "lines printed per stream execution")
	fs.DurationVar(&p.StreamSleep, "stream-sleep", 20*time.Millisecond, "pause between printed lines")
	fs.IntVar(&p.StreamReps, "stream-reps", 2, "stream executions per flush mode, per run")
	fs.IntVar(&sp.PlotReps, "plot-reps", 20, "timed plots per peer per round")
	fs.IntVar(&sp.DFRows, "df-rows", 10000, "rows of the DataFrame result")
	fs.IntVar(&sp.DFReps, "df-reps", 10, "DataFrame results per peer per round")
	fs.IntVar(&sp.FloodBytes, "flood-bytes", 10_000_000, "bytes printed by the output flood")
	fs.IntVar(&sp.FloodReps, "flood-reps", 2, "floods per peer per round")
	fs.IntVar(&sp.ReadyStarts, "ready-starts", 4, "kernel starts timed per variant per round (time to a ready kernel)")
	fs.IntVar(&sp.ConcClients, "clients", 20, "concurrent clients, each with its own kernel")
	fs.DurationVar(&sp.ConcDuration, "duration", 10*time.Second, "how long the concurrent clients run")
	fs.IntVar(&sp.ConcRounds, "conc-rounds", 2, "concurrency rounds per peer")
	fs.IntVar(&sp.ScaleKernels, "kernels", 100, "live kernels per gateway in the scale workload (scaled down to what free memory holds)")
	fs.IntVar(&sp.ScaleSockets, "sockets", 1000, "idle WebSockets per gateway in the scale workload")
	fs.DurationVar(&sp.ScaleIdle, "idle", 10*time.Second, "idle window over which the scale workload reads CPU")
	fs.StringVar(&workloads, "workloads", "all", "comma-separated: engine,rtt,stream,plot,dataframe,flood,ready,concurrency,scale, or all")
	fs.StringVar(&framing, "framing", "v1", "channels WebSocket framing for the channels peers: v1 (binary, what JupyterLab uses) or legacy (JSON)")
	fs.BoolVar(&quick, "quick", false, "small sizes and one round (a minute or two): a smoke run, not numbers to publish; writes no report unless -out is given")
	fs.StringVar(&out, "out", "docs/benchmarks.md", "where to write the markdown report (empty: none)")
	fs.StringVar(&jsonOut, "json", "", "write the raw results as JSON to this file instead of stdout")
	fs.StringVar(&python, "python", "/usr/bin/python3", "interpreter with ipykernel, jupyter_client and jupyter_server")
	fs.StringVar(&baseline, "baseline", "bench/baseline.py", "the baseline script")
	fs.StringVar(&sp.Binary, "binary", "bin/kernelgate", "the kernelgate binary to serve (make bench builds it)")
	fs.StringVar(&render, "render", "", "render the report from a JSON file an earlier run wrote (with this build's notes and analysis) and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if render != "" {
		return rerender(render, out, stderr)
	}
	if quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range quickSizes {
			if !set[name] {
				fs.Set(name, v)
			}
		}
		if !set["out"] {
			out = ""
		}
	}
	wl, err := parseWorkloads(workloads)
	if err != nil {
		fmt.Fprintln(stderr, "kgbench:", err)
		return 2
	}
	if p.N < 1 || p.Warmup < 0 || runs < 1 || p.Starts < 1 || p.PoolStarts < 1 || p.StreamLines < 1 || p.StreamReps < 1 || p.StreamSleep < 0 ||
		sp.PlotReps < 1 || sp.DFRows < 1 || sp.DFReps < 1 || sp.FloodBytes < 1000 || sp.FloodReps < 1 || sp.ReadyStarts < 1 ||
		sp.ConcClients < 1 || sp.ConcDuration <= 0 || sp.ConcRounds < 1 || sp.ScaleKernels < 1 || sp.ScaleSockets < 0 || sp.ScaleIdle <= 0 ||
		(framing != "v1" && framing != "legacy") {
		fmt.Fprintln(stderr, "kgbench: counts and durations must be positive (-warmup, -stream-sleep and -sockets not negative, -flood-bytes at least 1000); -framing is v1 or legacy")
		return 2
	}
	sp.Rounds, sp.N, sp.Warmup = runs, p.N, p.Warmup
	sp.StreamLines, sp.StreamReps, sp.StreamSleep = p.StreamLines, p.StreamReps, p.StreamSleep
	sp.V1, sp.Workloads, sp.Python, sp.Script = framing == "v1", wl, python, baseline
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if _, err := os.Stat(baseline); err != nil {
		fmt.Fprintf(stderr, "kgbench: baseline script (run kgbench from the module root): %v\n", err)
		return 1
	}
	loadBefore := loadAvg()
	var rep Report
	if wl["engine"] {
		if rep, err = bench(ctx, p, runs, python, baseline, stderr); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
	}
	var scaleNote string
	if wl["scale"] {
		sp.ScaleKernels, scaleNote = FitKernels(sp.ScaleKernels, memAvailableMB(), kernelBudgetMB, reserveMB)
		if scaleNote != "" {
			fmt.Fprintln(stderr, "kgbench:", scaleNote)
		}
	}
	if serverWorkloads(wl) {
		if _, err := os.Stat(sp.Binary); err != nil {
			fmt.Fprintf(stderr, "kgbench: kernelgate binary (make build): %v\n", err)
			return 1
		}
		su, err := runSuite(ctx, sp, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
		su.ScaleNote = scaleNote
		su.Framing = map[bool]string{true: "v1 binary", false: "legacy JSON"}[sp.V1]
		rep.Suite = &su
		if rep.Facts.Python == "" { // the engine part did not run: take the versions from the suite
			rep.Facts = facts(Samples{Versions: su.Versions}, "")
		}
	}
	rep.Date = time.Now()
	rep.Command = command(args)
	rep.Facts.Load = fmt.Sprintf("%s at the start, %s at the end (1/5/15-minute load averages)", loadBefore, loadAvg())
	rep.Facts.Extra = extraFacts(rep.Suite, python)
	rep.Analysis = analysisNotes
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
		if err := os.WriteFile(out, []byte(Render(rep)), 0o644); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "kgbench: wrote %s\n", out)
	}
	js, err := json.MarshalIndent(jsonReport(rep), "", " ")
	if err != nil {
		fmt.Fprintln(stderr, "kgbench: json:", err)
		return 1
	}
	io.WriteString(stdout, Summary(rep))
	if jsonOut != "" {
		if err := os.WriteFile(jsonOut, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
	} else {
		stdout.Write(append(js, '\n'))
	}
	return 0
}

// rerender writes the report of an earlier run's JSON, so hand-written
// analysis can be added without measuring again.
func rerender(in, out string, stderr io.Writer) int {
	b, err := os.ReadFile(in)
	if err == nil {
		var rep Report
		if err = json.Unmarshal(b, &rep); err == nil {
			rep.Notes, rep.Analysis = []Note{executeOverheadNote}, analysisNotes
			if len(rep.Metrics) == 0 {
				rep.Notes = nil
			}
			err = os.WriteFile(out, []byte(Render(rep)), 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "kgbench:", err)
		return 1
	}
	fmt.Fprintf(stderr, "kgbench: wrote %s\n", out)
	return 0
}

// quickSizes are the -quick defaults: every workload runs, briefly.
var quickSizes = map[string]string{
	"runs": "1", "n": "30", "warmup": "5", "starts": "2", "pool-starts": "2", "stream-lines": "20", "stream-reps": "1",
	"plot-reps": "3", "df-reps": "2", "flood-bytes": "2000000", "flood-reps": "1", "ready-starts": "2",
	"clients": "4", "duration": "2s", "conc-rounds": "1", "kernels": "6", "sockets": "60", "idle": "2s",
}

// allWorkloads in the order they run.
var allWorkloads = []string{"engine", "rtt", "stream", "plot", "dataframe", "flood", "ready", "concurrency", "scale"}

func parseWorkloads(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		switch {
		case w == "all":
			for _, a := range allWorkloads {
				out[a] = true
			}
		case slices.Contains(allWorkloads, w):
			out[w] = true
		default:
			return nil, fmt.Errorf("unknown workload %q; known: all, %s", w, strings.Join(allWorkloads, ", "))
		}
	}
	return out, nil
}

func serverWorkloads(wl map[string]bool) bool {
	for _, w := range allWorkloads[1:] {
		if wl[w] {
			return true
		}
	}
	return false
}

// Memory the scale workload plans per kernel (an ipykernel is 50-60 MB
// RSS; the sandbox's helper and bwrap processes and headroom on top) and
// keeps free for everything else.
const (
	kernelBudgetMB = 100
	reserveMB      = 2048
)

// FitKernels scales the kernel count down to what available memory holds
// (the gateways run one after another, so one set at a time), and says so.
func FitKernels(want int, availMB, perMB, reserve uint64) (int, string) {
	if availMB == 0 {
		return want, "" // unknown: try the full size
	}
	fit := 0
	if availMB > reserve {
		fit = int((availMB - reserve) / perMB)
	}
	if fit >= want {
		return want, ""
	}
	fit = max(1, fit)
	return fit, fmt.Sprintf("%d kernels asked for, but %d MB of memory was available: ran %d (budget %d MB per kernel, %d MB kept free). Run with -kernels %d on a machine with %d MB free for the full size.",
		want, availMB, fit, perMB, reserve, want, uint64(want)*perMB+reserve)
}

func memAvailableMB() uint64 {
	f := strings.Fields(procField("/proc/meminfo", "MemAvailable"))
	if len(f) != 2 {
		return 0
	}
	kb, _ := strconv.ParseUint(f[0], 10, 64)
	return kb / 1024
}

// extraFacts are the machine-table rows of the server peers.
func extraFacts(su *Suite, python string) [][2]string {
	var out [][2]string
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		out = append(out, [2]string{"kernelgate", "git " + strings.TrimSpace(string(rev))})
	}
	if su == nil {
		return out
	}
	out = append(out, [2]string{"kernelgate sandbox", su.Sandbox})
	for _, k := range []string{"jupyter_server", "pandas", "numpy", "matplotlib"} {
		if v := su.Versions[k]; v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

// bench runs the interleaved runs and assembles the report (without its
// command line, which only run knows).
func bench(ctx context.Context, p Params, runs int, python, baseline string, progress io.Writer) (Report, error) {
	// A full server config, as `kernelgate serve` would load it, so the
	// engine runs with its shipped defaults (bootstrap, heartbeats, tcp).
	c, _, err := config.Load("kgbench", nil, os.Getenv, os.Environ(), io.Discard)
	if err != nil {
		return Report{}, fmt.Errorf("load config: %w", err)
	}
	c.LogLevel = "warn" // engine warnings (a failed bootstrap, say) are findings
	// The engine-vs-direct metrics start kernels themselves: no pool, so
	// they time real starts; the pool workload configures its own.
	c.Kernel.Pool = kernel.PoolConfig{}
	log := app.NewLogger(c, progress)
	specs, err := app.Specs(ctx, c, log)
	if err != nil {
		return Report{}, fmt.Errorf("kernelspecs: %w", err)
	}
	if err := os.MkdirAll(c.Kernel.RuntimeDir, 0o700); err != nil {
		return Report{}, fmt.Errorf("create runtime dir: %w", err)
	}
	defer os.RemoveAll(c.Kernel.RuntimeDir)
	// The pool workload runs kernels as the server does: sandboxed.
	pc := c
	var sandboxed string
	pc.Kernel.Sandbox, sandboxed = engineSandbox(c)

	began := time.Now()
	var eng, base []Samples
	var pools []PoolSamples
	for i := range runs {
		t := time.Now()
		e, err := runEngine(ctx, c, specs, log, p)
		if err != nil {
			return Report{}, fmt.Errorf("engine run %d: %w", i+1, err)
		}
		eng = append(eng, e)
		fmt.Fprintf(progress, "kgbench: run %d/%d engine done in %s\n", i+1, runs, time.Since(t).Round(time.Millisecond))
		t = time.Now()
		ps, err := runPool(ctx, pc, specs, log, p)
		if err != nil {
			return Report{}, fmt.Errorf("pool run %d: %w", i+1, err)
		}
		pools = append(pools, ps)
		fmt.Fprintf(progress, "kgbench: run %d/%d pool done in %s\n", i+1, runs, time.Since(t).Round(time.Millisecond))
		t = time.Now()
		b, err := runBaseline(ctx, python, baseline, p)
		if err != nil {
			return Report{}, fmt.Errorf("baseline run %d: %w", i+1, err)
		}
		base = append(base, b)
		fmt.Fprintf(progress, "kgbench: run %d/%d baseline done in %s\n", i+1, runs, time.Since(t).Round(time.Millisecond))
	}
	fmt.Fprintf(progress, "kgbench: %d runs took %s\n", runs, time.Since(began).Round(time.Second))

	argv := strings.Join(specs[c.KernelSpec].Argv, " ")
	// The comparison is only fair if both sides start the same kernel
	// command; say so in the report when they do not.
	if da := base[0].Argv; len(da) > 0 {
		da = append([]string(nil), da...)
		da[len(da)-1] = "{connection_file}"
		if direct := strings.Join(da, " "); direct != argv {
			fmt.Fprintf(progress, "kgbench: warning: the sides start different kernels: engine %q, direct %q\n", argv, direct)
			argv = "engine: " + argv + "; direct: " + direct
		}
	}
	return Report{
		Facts:   facts(base[0], argv),
		Method:  append(method(p, runs, c.Kernel.Transport, c.Kernel.HeartbeatInterval), poolMethod(p, sandboxed)),
		Metrics: append(metrics(eng, base, p), poolMetric(pools)),
		Notes:   []Note{executeOverheadNote},
	}, nil
}

// runBaseline runs bench/baseline.py once and parses the JSON it prints.
func runBaseline(ctx context.Context, python, script string, p Params) (Samples, error) {
	var s Samples
	cmd := exec.CommandContext(ctx, python, script,
		"-n", strconv.Itoa(p.N), "-warmup", strconv.Itoa(p.Warmup), "-starts", strconv.Itoa(p.Starts),
		"-stream-lines", strconv.Itoa(p.StreamLines), "-stream-sleep", strconv.FormatFloat(p.StreamSleep.Seconds(), 'g', -1, 64),
		"-stream-reps", strconv.Itoa(p.StreamReps))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return s, fmt.Errorf("%s %s: %w; stderr: %s", python, script, err, tail(stderr.String(), 2000))
	}
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		return s, fmt.Errorf("parse baseline output: %w; stdout: %s", err, tail(stdout.String(), 500))
	}
	if len(s.ExecuteMS) != p.N || len(s.KernelInfoMS) != p.N || len(s.StartMS) != p.Starts ||
		len(s.ExecuteBKC) != p.N || len(s.KernelInfoBKC) != p.N ||
		len(s.StreamMS["noflush"]) == 0 || len(s.StreamMS["flush"]) == 0 {
		return s, errors.New("baseline output is missing samples")
	}
	return s, nil
}

// metrics pairs the engine's and the baseline's samples per metric, one
// slice per run.
func metrics(eng, base []Samples, p Params) []Metric {
	col := func(ss []Samples, f func(Samples) []float64) [][]float64 {
		out := make([][]float64, len(ss))
		for i, s := range ss {
			out[i] = f(s)
		}
		return out
	}
	stream := func(key string) func(Samples) []float64 {
		return func(s Samples) []float64 { return s.StreamMS[key] }
	}
	execTarget := &Target{Kind: TargetOverBaseline, Limit: 0.5}
	streamTarget := &Target{Kind: TargetAbsolute, Limit: 5}
	lines := fmt.Sprintf("`import time; for i in range(%d): print(time.time_ns(), flush=F); time.sleep(%g)`",
		p.StreamLines, p.StreamSleep.Seconds())
	return []Metric{
		{
			Title: "Execute `1+1` round trip",
			What: "From sending execute_request to having both its execute_reply (shell) and its `idle` status (iopub). " +
				"Engine: `Kernel.Execute` until `Execution.Done` closes. Direct: the raw jupyter_client loop.",
			Unit: "ms", Target: execTarget,
			Engine:   col(eng, func(s Samples) []float64 { return s.ExecuteMS }),
			Baseline: col(base, func(s Samples) []float64 { return s.ExecuteMS }),
		},
		{
			Title: "Stream latency, `print(..., flush=False)`",
			What: "Receive wall clock minus the `time.time_ns()` the kernel printed, for every line of " + lines +
				" with F=False. The engine's kernels run kernelgate's bootstrap (`flush_interval` = 1 ms); " +
				"the direct kernel is stock ipykernel (`flush_interval` = 200 ms).",
			Unit: "ms", Target: streamTarget,
			Engine: col(eng, stream("noflush")), Baseline: col(base, stream("noflush")),
		},
		{
			Title: "Stream latency, `print(..., flush=True)`",
			What:  "As above with F=True: each print is flushed at once, so this is the transport's share.",
			Unit:  "ms", Target: streamTarget,
			Engine: col(eng, stream("flush")), Baseline: col(base, stream("flush")),
		},
		{
			Title: "Kernel start to ready",
			What: "Engine: `Manager.Start` (connection file, process, ZMQ dial, kernel_info handshake until iopub delivers, bootstrap execute). " +
				"Direct: `KernelManager.start_kernel` + `client().start_channels()` + `wait_for_ready()`.",
			Unit:     "ms",
			Engine:   col(eng, func(s Samples) []float64 { return s.StartMS }),
			Baseline: col(base, func(s Samples) []float64 { return s.StartMS }),
		},
		{
			Title: "kernel_info round trip",
			What: "kernel_info_request on shell to its reply: little kernel work, so mostly transport. " +
				"Engine: `Kernel.Call(ctx, jmsg.Shell, jmsg.KernelInfoRequest, ...)`. Direct: the raw loop, reading shell only.",
			Unit:     "ms",
			Engine:   col(eng, func(s Samples) []float64 { return s.KernelInfoMS }),
			Baseline: col(base, func(s Samples) []float64 { return s.KernelInfoMS }),
		},
		{
			Title: "Execute `1+1` round trip, vs BlockingKernelClient",
			What: "The engine's execute numbers again, next to jupyter_client's `BlockingKernelClient.execute(reply=True)` " +
				"followed by `get_iopub_msg` until idle: the client most scripts use, for context.",
			Unit: "ms", BaselineName: "BlockingKernelClient",
			Engine:   col(eng, func(s Samples) []float64 { return s.ExecuteMS }),
			Baseline: col(base, func(s Samples) []float64 { return s.ExecuteBKC }),
		},
		{
			Title:        "kernel_info round trip, vs BlockingKernelClient",
			What:         "The engine's kernel_info numbers again, next to `BlockingKernelClient.kernel_info(reply=True)`.",
			Unit:         "ms",
			BaselineName: "BlockingKernelClient",
			Engine:       col(eng, func(s Samples) []float64 { return s.KernelInfoMS }),
			Baseline:     col(base, func(s Samples) []float64 { return s.KernelInfoBKC }),
		},
	}
}

func method(p Params, runs int, transport string, hb time.Duration) []string {
	return []string{
		fmt.Sprintf("%d runs per side, alternating engine then direct. Each run starts its own kernels: %d timed starts, "+
			"then the last kernel started serves the round-trip and stream metrics.", runs, p.Starts),
		fmt.Sprintf("Round trips: %d untimed warmup iterations, then %d timed ones, one at a time (no pipelining). "+
			"Stream: %d executions per flush mode per run, %d lines each, %s apart.", p.Warmup, p.N, p.StreamReps, p.StreamLines, p.StreamSleep),
		"Percentiles are nearest-rank over one run's samples (p50 of 1..100 is 50, p99 is 99); the summary takes the median of the runs' values.",
		fmt.Sprintf("Engine: `internal/kernel` built as `internal/app` builds it from `config.Load` defaults "+
			"(transport %s, heartbeat every %s, Python bootstrap on), timed in-process with Go's monotonic clock.", transport, hb),
		"Direct (`bench/baseline.py`): the KernelManager's own Session over plain synchronous pyzmq sockets and one zmq.Poller " +
			"— the floor a Python client reaches — timed with `time.perf_counter`. " +
			"BlockingKernelClient numbers are listed separately for context.",
		"Stream receive time: the engine stamps each batch when `Journal.Read` returns it (where an edge adapter first sees it); " +
			"the direct loop stamps each message as `poll` reports it, before deserialising.",
		"The direct floor is a Python client, so its own message decoding is part of it: \"engine ≤ direct + 0.5 ms\" " +
			"compares a Go client inside the gateway with a Python client talking straight to the kernel, not with zero overhead.",
		"The engine's bootstrap also sets ipykernel's `_execute_sleep` (0.5 ms before every execute_reply) to 0; the direct kernel keeps it. " +
			"See \"Per-execute overhead inside ipykernel\" below.",
		"The flush=False stream comparison is deliberately unequal: it shows what the bootstrap's 1 ms `flush_interval` buys " +
			"over stock ipykernel's 200 ms. flush=True removes that difference and leaves the transport.",
		"Kernel start: one-time setup is outside the timed starts on both sides (the engine's kernelspec discovery and " +
			"ipykernel preflight; jupyter_client's first kernelspec lookup, which imports modules for about 0.3 s). " +
			"`wait_for_ready` waits up to 0.2 s for an iopub message after each kernel_info reply and resends when none comes; " +
			"the engine resends every 0.2 s until both have arrived and dials iopub first, so it usually confirms iopub on the first try.",
		"Both sides run on the same 2-CPU machine, the benchmark client included, so they compete for the same cores; " +
			"numbers from another machine are not comparable.",
	}
}

// facts collects what the machine and the baseline's interpreter are.
func facts(base Samples, argv string) Facts {
	f := Facts{
		CPU:        procField("/proc/cpuinfo", "model name"),
		NumCPU:     strconv.Itoa(runtime.NumCPU()),
		Memory:     memTotal(),
		OS:         osRelease(),
		Go:         runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		KernelArgv: argv,
	}
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		f.Kernel = strings.TrimSpace(string(out))
	}
	v := base.Versions
	f.Python, f.IPyKernel, f.JupyterClient, f.PyZMQ, f.LibZMQ = v["python"], v["ipykernel"], v["jupyter_client"], v["pyzmq"], v["libzmq"]
	return f
}

// procField returns the value of the first "key: value" line named key.
func procField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func memTotal() string {
	f := strings.Fields(procField("/proc/meminfo", "MemTotal")) // "24576000 kB"
	if len(f) != 2 || f[1] != "kB" {
		return ""
	}
	kb, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// command is the invocation to put in the report, as it is run from the
// module root.
func command(args []string) string {
	parts := []string{"go", "run", "./cmd/kgbench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$`\\|&;<>()*?") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
