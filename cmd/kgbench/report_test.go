package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func oneTo(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	s := oneTo(100)
	// Shuffle-ish order: Percentile must sort a copy, not trust the input.
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	for _, c := range []struct {
		p    float64
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}, {99.5, 100}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if s[0] != 100 {
		t.Errorf("Percentile modified its input: s[0] = %v", s[0])
	}
	// p99 of 200 samples is the 198th smallest.
	if got := Percentile(oneTo(200), 99); got != 198 {
		t.Errorf("Percentile(1..200, 99) = %v, want 198", got)
	}
	if got := Percentile([]float64{7}, 99); got != 7 {
		t.Errorf("Percentile of one sample = %v, want 7", got)
	}
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
}

func TestSummarizeAndMedian(t *testing.T) {
	st := Summarize(oneTo(100))
	if st.N != 100 || st.P50 != 50 || st.P99 != 99 || st.Mean != 50.5 {
		t.Errorf("Summarize(1..100) = %+v", st)
	}
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("Median odd = %v, want 2", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median even = %v, want 2.5", got)
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestTargetMet(t *testing.T) {
	over := Target{Kind: TargetOverBaseline, Limit: 0.5}
	if !over.Met(3.5, 3.0) || over.Met(3.51, 3.0) {
		t.Error("over-baseline target: 3.5 vs 3.0+0.5 should be met, 3.51 not")
	}
	abs := Target{Kind: TargetAbsolute, Limit: 5}
	if !abs.Met(5, 1000) || abs.Met(5.1, 0) {
		t.Error("absolute target: 5 <= 5 should be met, 5.1 not, whatever the baseline")
	}
}

// scaled returns 1..n times f, as one run's samples.
func scaled(n int, f float64) []float64 {
	s := oneTo(n)
	for i := range s {
		s[i] *= f
	}
	return s
}

func sampleReport() Report {
	return Report{
		Date:    time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600)),
		Command: "go run ./cmd/kgbench -n 100",
		Facts: Facts{
			CPU: "Test CPU | 2 GHz", NumCPU: "2", Memory: "24.0 GiB", Kernel: "Linux 6.1.0 x86_64",
			OS: "Debian GNU/Linux 12 (bookworm)", Go: "go1.26.8 linux/amd64", Python: "3.11.2",
			IPyKernel: "6.17.0", JupyterClient: "7.4.9", PyZMQ: "24.0.1", LibZMQ: "4.3.4",
			KernelArgv: "/usr/bin/python3 -m ipykernel_launcher -f {connection_file}",
		},
		Method: []string{"one bullet"},
		Metrics: []Metric{
			{
				Title: "Execute", What: "exec what", Unit: "ms",
				Target: &Target{Kind: TargetOverBaseline, Limit: 0.5},
				// Engine p50s per run 0.050, 0.100, 0.150 (1..100 scaled): median 0.100.
				Engine:   [][]float64{scaled(100, 0.001), scaled(100, 0.002), scaled(100, 0.003)},
				Baseline: [][]float64{scaled(100, 0.004), scaled(100, 0.004), scaled(100, 0.004)},
			},
			{
				Title: "Stream", What: "stream what", Unit: "ms",
				Target: &Target{Kind: TargetAbsolute, Limit: 5},
				// Engine p50 100 ms: misses the 5 ms target.
				Engine:   [][]float64{scaled(100, 2)},
				Baseline: [][]float64{scaled(100, 1)},
			},
			{
				Title: "Start", What: "start what", Unit: "ms", BaselineName: "BlockingKernelClient",
				Engine:   [][]float64{{400, 500}},
				Baseline: [][]float64{{700, 800}, {900}},
			},
		},
	}
}

func TestRender(t *testing.T) {
	md := Render(sampleReport())
	for _, want := range []string{
		"# kernelgate benchmarks\n",
		"on 2025-03-04 04:06 UTC", // the date is printed in UTC
		"```sh\ngo run ./cmd/kgbench -n 100\n```",
		`| CPU | Test CPU \| 2 GHz |`, // a pipe in a fact must not break the table
		"| ipykernel | 6.17.0 |",
		"| pyzmq / libzmq | 24.0.1 / 4.3.4 |",
		// Summary rows: medians of the runs' p50 and p99, and the ratios.
		"| Execute | 0.100 ms | 0.200 ms | 0.50× | 0.198 ms | 0.396 ms | 0.50× | p50 ≤ direct + 0.5 ms | **yes** |",
		"| Stream | 100.0 ms | 50.00 ms | 2.00× | 198.0 ms | 99.00 ms | 2.00× | p50 ≤ 5 ms | no |",
		"| Start | 400.0 ms | 800.0 ms | 0.50× | 500.0 ms | 850.0 ms | 0.59× | — | — |",
		// Per-run detail.
		"| 2 | 100 | 0.100 ms | 0.198 ms | 0.101 ms | 100 | 0.200 ms | 0.396 ms | 0.202 ms |",
		"| **median** | 300 | **0.100 ms** | **0.198 ms** | 0.101 ms | 300 | **0.200 ms** | **0.396 ms** | 0.202 ms |",
		"Design target p50 ≤ direct + 0.5 ms: **met** (engine p50 0.100 ms, limit 0.700 ms).",
		"Design target p50 ≤ 5 ms: **not met** (engine p50 100.0 ms).",
		// A side with fewer runs gets dashes, and a named baseline its name.
		"| run | engine n | engine p50 | engine p99 | engine mean | BlockingKernelClient n |",
		"| 2 | — | — | — | — | 1 | 900.0 ms | 900.0 ms | 900.0 ms |",
		"Engine / BlockingKernelClient: p50 0.50×",
		"- one bullet\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n--- report ---\n%s", want, md)
		}
	}
	if Render(sampleReport()) != md {
		t.Error("Render is not deterministic")
	}
}

func TestRenderNoSamples(t *testing.T) {
	md := Render(Report{Metrics: []Metric{{Title: "Empty", Unit: "ms", Target: &Target{Kind: TargetAbsolute, Limit: 5}}}})
	if !strings.Contains(md, "| Empty | n/a | n/a | n/a | n/a | n/a | n/a | p50 ≤ 5 ms | no |") {
		t.Errorf("empty metric not rendered as n/a:\n%s", md)
	}
	if !strings.Contains(md, "| CPU | unknown |") {
		t.Error("missing fact not rendered as unknown")
	}
}

func TestStreamCode(t *testing.T) {
	got := streamCode(3, 20*time.Millisecond, true)
	want := "import time\nfor _i in range(3):\n    print(time.time_ns(), flush=True)\n    time.sleep(0.02)\n"
	if got != want {
		t.Errorf("streamCode = %q, want %q", got, want)
	}
}

func TestCommandQuotes(t *testing.T) {
	got := command([]string{"-n", "200", "-out", "my file.md"})
	if want := `go run ./cmd/kgbench -n 200 -out "my file.md"`; got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
}
