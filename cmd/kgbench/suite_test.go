package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/wsproto"
)

func TestParseStat(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     ProcStat
		bad      bool
	}{
		{"plain", "1234 (python3) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 50",
			ProcStat{PID: 1234, PPID: 1, UTime: 250, STime: 75}, false},
		// A command name may hold spaces and parentheses: count from the last ')'.
		{"odd name", "77 (a (b) c) R 12 77 77 0 -1 0 0 0 0 0 9 8 0 0 20 0 1 0 5 10 2",
			ProcStat{PID: 77, PPID: 12, UTime: 9, STime: 8}, false},
		{"short", "1 (x) S 0", ProcStat{}, true},
		{"no name", "garbage", ProcStat{}, true},
	} {
		got, err := ParseStat(c.in)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("%s: ParseStat = %+v, %v; want %+v (error %v)", c.name, got, err, c.want, c.bad)
		}
	}
}

func TestParseKB(t *testing.T) {
	status := "Name:\tkernelgate\nVmHWM:\t   51234 kB\nVmRSS:\t   20480 kB\nThreads:\t12\n"
	got := ParseKB(status, "VmRSS", "VmHWM", "Missing")
	if got["VmRSS"] != 20480 || got["VmHWM"] != 51234 || len(got) != 2 {
		t.Errorf("ParseKB(status) = %v", got)
	}
	rollup := "55d0c0de0000-7ffd00000000 ---p 00000000 00:00 0  [rollup]\nRss:  61000 kB\nPss:  40500 kB\nPss_Anon: 30000 kB\n"
	if got := ParseKB(rollup, "Pss"); got["Pss"] != 40500 || len(got) != 1 {
		t.Errorf("ParseKB(smaps_rollup) = %v", got)
	}
}

func TestDescendants(t *testing.T) {
	// 1 → 10 (gateway) → 20 (helper) → 30 (bwrap) → 40 (kernel); 10 → 21; 2 → 50 elsewhere.
	parents := map[int]int{10: 1, 20: 10, 30: 20, 40: 30, 21: 10, 50: 2}
	got := Descendants(parents, 10)
	slices.Sort(got)
	if want := []int{20, 21, 30, 40}; !slices.Equal(got, want) {
		t.Errorf("Descendants = %v, want %v", got, want)
	}
	if got := Descendants(parents, 40); len(got) != 0 {
		t.Errorf("a leaf has descendants %v", got)
	}
}

func TestPoolFullAndSandboxLine(t *testing.T) {
	for _, c := range []struct {
		readyz string
		want   bool
	}{
		{"ready\nsandbox on: namespaces\nwarm pool: python3 2/2 ready\n", true},
		{"ready\nsandbox on\nwarm pool: python3 1/2 ready\n", false},
		{"ready\nwarm pool: python3 2/2 ready, big 0/1 ready (refills failing: x)\n", false},
		{"ready\nwarm pool: off\n", true},
		{"ready\n", false},
	} {
		if got := PoolFull(c.readyz); got != c.want {
			t.Errorf("PoolFull(%q) = %v, want %v", c.readyz, got, c.want)
		}
	}
	if got := SandboxLine("ready\nsandbox on: user 61000\nwarm pool: off\n"); got != "sandbox on: user 61000" {
		t.Errorf("SandboxLine = %q", got)
	}
}

func TestFitKernels(t *testing.T) {
	for _, c := range []struct {
		want, avail, got int
		note             bool
	}{
		{100, 23000, 100, false},
		{100, 6048, 40, true},
		{100, 1000, 1, true},
		{100, 0, 100, false}, // unknown memory: try the full size
	} {
		got, note := FitKernels(c.want, uint64(c.avail), 100, 2048)
		if got != c.got || (note != "") != c.note {
			t.Errorf("FitKernels(%d, %d) = %d, %q", c.want, c.avail, got, note)
		}
	}
}

func TestStreamLatencies(t *testing.T) {
	chunks := []streamChunk{
		{At: 1_000_000_000 + 2_000_000, Text: "1000000000\n"},
		// A line split over two chunks counts when its newline arrives.
		{At: 1_100_000_000, Text: "1099000000"},
		{At: 1_100_500_000, Text: "\n1100000000\n"},
	}
	got, err := StreamLatencies(chunks)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, 1.5, 0.5}
	if len(got) != len(want) {
		t.Fatalf("StreamLatencies = %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Errorf("StreamLatencies = %v, want %v", got, want)
		}
	}
	if _, err := StreamLatencies([]streamChunk{{At: 1, Text: "12"}}); err == nil {
		t.Error("an unterminated line was accepted")
	}
	if _, err := StreamLatencies([]streamChunk{{At: 1, Text: "hello\n"}}); err == nil {
		t.Error("a line that is not a timestamp was accepted")
	}
}

func TestPooled(t *testing.T) {
	st := Pooled([][]float64{oneTo(50), scaled(50, 2), nil})
	// All 100 samples: 1..50 and 2..100 step 2.
	if st.N != 100 || st.Min != 1 || len(st.RoundP50s) != 2 || st.RoundP50s[0] != 25 || st.RoundP50s[1] != 50 {
		t.Errorf("Pooled = %+v", st)
	}
	if st.P50 != 34 || st.P90 != 80 || st.P99 != 98 {
		t.Errorf("Pooled percentiles = %v %v %v, want 34 80 98", st.P50, st.P90, st.P99)
	}
	if e := Pooled(nil); e.N != 0 || !math.IsNaN(e.P50) {
		t.Errorf("Pooled(nil) = %+v", e)
	}
}

func TestDecodeServerFrame(t *testing.T) {
	parent := jmsg.NewHeader(jmsg.ExecuteRequest, "s", "u")
	m, err := jmsg.New(jmsg.Stream, "k", "kernel", &parent, jmsg.StreamContent{Name: "stdout", Text: "hi\n"})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := wsproto.EncodeV1(jmsg.IOPub, m)
	if err != nil {
		t.Fatal(err)
	}
	legacy, bin, err := wsproto.EncodeLegacy(jmsg.IOPub, m)
	if err != nil || bin {
		t.Fatalf("EncodeLegacy: %v, binary %v", err, bin)
	}
	for _, c := range []struct {
		name      string
		data      []byte
		bin, isV1 bool
	}{{"v1", v1, true, true}, {"legacy", legacy, false, false}} {
		got, err := decodeServerFrame(c.data, c.bin, c.isV1)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.Channel != "iopub" || got.Type != jmsg.Stream || got.Parent != parent.MsgID || !strings.Contains(string(got.Content), `"hi\n"`) {
			t.Errorf("%s: decoded %+v", c.name, got)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 64)} {
		if _, err := decodeServerFrame(bad, true, true); err == nil {
			t.Errorf("v1 frame %v decoded", bad)
		}
	}
}

func TestParseWorkloadsAndRotate(t *testing.T) {
	wl, err := parseWorkloads("rtt, flood")
	if err != nil || !wl["rtt"] || !wl["flood"] || wl["engine"] || !serverWorkloads(wl) {
		t.Errorf("parseWorkloads(rtt, flood) = %v, %v", wl, err)
	}
	if wl, _ := parseWorkloads("all"); len(wl) != len(allWorkloads) {
		t.Errorf("all = %v", wl)
	}
	if wl, _ := parseWorkloads("engine"); serverWorkloads(wl) {
		t.Error("engine alone needs no server")
	}
	if _, err := parseWorkloads("rtt,bogus"); err == nil {
		t.Error("unknown workload accepted")
	}
	if got := rotate([]string{"a", "b", "c"}, 4); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Errorf("rotate = %v", got)
	}
}

// sampleSuite has fixed numbers for the rendering tests.
func sampleSuite() Suite {
	return Suite{
		Peers:   []string{peerFloor, peerKGWS, peerKGCh, peerJS},
		Sandbox: "sandbox on: test",
		Rounds: map[string][]PeerRound{
			peerFloor: {{ExecuteMS: scaled(100, 0.04), PlotMS: []float64{40}}, {ExecuteMS: scaled(100, 0.04)}},
			peerKGCh:  {{ExecuteMS: scaled(100, 0.044), PlotMS: []float64{70}, Flood: []FloodSample{{MS: 50, StreamBytes: 10_000_000, WireBytes: 10_100_000, GatewayKB: 20480, PeakKB: 40960}}}},
			peerJS:    {{ExecuteMS: scaled(100, 0.5)}},
		},
		ReadyMS: map[string][][]float64{peerKGCh + ", warm pool": {{5, 6, 7}}, peerJS + ", cold": {{900}}},
		Conc: map[string][]ConcRound{
			peerFloor: {{Count: 1000, ElapsedS: 10}},
			peerKGCh:  {{Count: 2000, ElapsedS: 10, GatewayCPU: 1}},
		},
		Scale: map[string]ScaleResult{
			peerKGCh:  {Kernels: 100, Sockets: 1000, StartS: 40, GatewayIdleKB: 10240, GatewayKernelsKB: 20480, GatewaySocketsKB: 30720, KernelsMem: Mem{RSS: 100 * 61440, PSS: 100 * 51200, Procs: 300}},
			peerFloor: {Kernels: 100, NA: "no gateway"},
		},
		Took: time.Minute,
	}
}

func TestRenderSuite(t *testing.T) {
	rep := sampleReport()
	su := sampleSuite()
	rep.Suite = &su
	rep.Analysis = []Note{{Title: "What the numbers say", Body: "analysis body"}}
	md := Render(rep)
	for _, want := range []string{
		"## Headline: every peer, every workload",
		// floor p50 2.0 (pooled 1..100 × 0.04 twice), kernelgate 2.2: ratio 1.10.
		"| `1+1` round trip | 2.000 ms / 3.960 ms | — | 2.200 ms / 4.356 ms (1.10×) | 25.00 ms / 49.50 ms (12.50×) |",
		"| `1+1` round trip: p50 ≤ floor + 0.5 ms | kernelgate channels | p50 2.200 ms | 2.500 ms | **met** |",
		"| Plot latency, `plt.show()` → PNG at the client: p50 ≤ 50 ms | kernelgate channels | p50 70.00 ms | 50.00 ms | missed by 20.00 ms |",
		"| Time to a ready kernel: p50 ≤ 50 ms | kernelgate channels, warm pool | p50 6.000 ms | 50.00 ms | **met** |",
		"| 20 clients × `1+1`: executions/s ≥ floor | kernelgate channels | 200/s | 100/s | **met** |",
		"| Jupyter Server 1.23, warm pool | — | — | — | — | — | n/a: Jupyter Server keeps no warm kernels",
		"| direct jupyter_client (floor) | 200 | 0.040 ms | 2.000 ms | 3.600 ms | 3.960 ms | 2.000, 2.000 | 1.00× | 1.00× |",
		"| kernelgate channels | 10.00 MB | 10.10 MB | 20.0 MB | 40.0 MB |",
		"| kernelgate channels | 200 | 200/s | 2.00× | 10% of a core |",
		"| kernelgate channels | 100 | 1000 | 40.0 s | 10.0 MB → 20.0 MB → 30.0 MB | 0.0% | 6000.0 MB (60.0 MB) | 5000.0 MB (50.0 MB) | 300 | 0.0% |",
		"| direct jupyter_client (floor) | 100 | n/a | 0.0 s | n/a (no gateway) |",
		"## What the numbers say\n\nanalysis body",
		"sandbox on: test",
		"# Engine in-process vs direct jupyter_client",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n--- report ---\n%s", want, md)
		}
	}
	if Render(rep) != md {
		t.Error("Render is not deterministic")
	}
	if s := Summary(rep); !strings.Contains(s, "## Headline") || !strings.Contains(s, "## Engine in-process vs direct") || strings.Contains(s, "## Many live kernels") {
		t.Errorf("Summary holds the wrong sections:\n%s", s)
	}
}
