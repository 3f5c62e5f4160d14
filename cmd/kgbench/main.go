// Command kgbench measures kernelgate's kernel engine against a direct
// jupyter_client baseline on the same machine, in the same invocation, and
// writes a markdown report (docs/benchmarks.md by default).
//
//	go run ./cmd/kgbench [-n 200] [-runs 3] [-out docs/benchmarks.md]
//
// Four metrics are taken on both sides: the `1+1` execute round trip
// (execute_reply and iopub idle), stream latency from print() to receipt
// (with and without flush=True), kernel start to ready, and the
// kernel_info round trip. The engine is driven in-process through
// internal/kernel exactly as internal/app builds it; the baseline is
// bench/baseline.py run with the Debian interpreter, which has ipykernel
// and jupyter_client. Runs alternate engine, baseline, engine, baseline, ...
// so that a burst of machine noise lands on both sides rather than one.
//
// kgbench must run from the module root (it finds bench/baseline.py by a
// relative path, as the report's regeneration command does).
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
		p        Params
		runs     int
		out      string
		python   string
		baseline string
	)
	fs.IntVar(&p.N, "n", 200, "timed iterations per round-trip metric, per run")
	fs.IntVar(&p.Warmup, "warmup", 20, "untimed iterations before the timed ones")
	fs.IntVar(&runs, "runs", 3, "runs per side, interleaved engine, baseline, engine, ...")
	fs.IntVar(&p.Starts, "starts", 5, "kernel starts timed per run")
	fs.IntVar(&p.PoolStarts, "pool-starts", 5, "sandboxed starts timed per run from the warm pool, and as many cold")
	fs.IntVar(&p.StreamLines, "stream-lines", 50, "lines printed per stream execution")
	fs.DurationVar(&p.StreamSleep, "stream-sleep", 20*time.Millisecond, "pause between printed lines")
	fs.IntVar(&p.StreamReps, "stream-reps", 2, "stream executions per flush mode, per run")
	fs.StringVar(&out, "out", "docs/benchmarks.md", "where to write the markdown report (empty: stdout only)")
	fs.StringVar(&python, "python", "/usr/bin/python3", "interpreter with ipykernel and jupyter_client for the baseline")
	fs.StringVar(&baseline, "baseline", "bench/baseline.py", "the baseline script")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if p.N < 1 || p.Warmup < 0 || runs < 1 || p.Starts < 1 || p.PoolStarts < 1 || p.StreamLines < 1 || p.StreamReps < 1 || p.StreamSleep < 0 {
		fmt.Fprintln(stderr, "kgbench: -n, -runs, -starts, -stream-lines and -stream-reps must be positive; -warmup and -stream-sleep not negative")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	rep, err := bench(ctx, p, runs, python, baseline, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kgbench:", err)
		return 1
	}
	rep.Command = command(args)
	md := Render(rep)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(stderr, "kgbench:", err)
			return 1
		}
		fmt.Fprintf(stderr, "kgbench: wrote %s\n", out)
	}
	io.WriteString(stdout, md)
	return 0
}

// bench runs the interleaved runs and assembles the report (without its
// command line, which only run knows).
func bench(ctx context.Context, p Params, runs int, python, baseline string, progress io.Writer) (Report, error) {
	if _, err := os.Stat(baseline); err != nil {
		return Report{}, fmt.Errorf("baseline script (run kgbench from the module root): %w", err)
	}
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

	// Other work on the machine skews both sides; the load average says
	// how much there was.
	loadBefore := loadAvg()
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
	f := facts(base[0], argv)
	f.Load = fmt.Sprintf("%s before, %s after (1/5/15-minute load averages)", loadBefore, loadAvg())
	return Report{
		Date:    time.Now(),
		Facts:   f,
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
