package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// PStats are percentiles over every sample of every round (pooled), and
// each round's own p50, so the spread between rounds (machine noise) shows.
type PStats struct {
	N                  int
	Min, P50, P90, P99 float64
	RoundP50s          []float64
}

// Pooled computes PStats over rounds of samples.
func Pooled(rounds [][]float64) PStats {
	var all []float64
	s := PStats{}
	for _, r := range rounds {
		all = append(all, r...)
		if len(r) > 0 {
			s.RoundP50s = append(s.RoundP50s, Percentile(r, 50))
		}
	}
	s.N = len(all)
	s.Min, s.P50, s.P90, s.P99 = Percentile(all, 0), Percentile(all, 50), Percentile(all, 90), Percentile(all, 99)
	return s
}

// peerSeries is one row of a percentile table.
type peerSeries struct {
	Peer  string
	Runs  [][]float64
	NA    string // why there are no numbers
	Check bool   // the workload's target applies to this row
}

// peerWorkload is one workload measured on every peer.
type peerWorkload struct {
	Title, What, Unit string
	Rows              []peerSeries
	Target            *Target // TargetOverBaseline is over the floor row
}

// floorRow is the row ratios are taken against.
func (w peerWorkload) floorRow() (PStats, bool) {
	for _, r := range w.Rows {
		if strings.HasPrefix(r.Peer, peerFloor) && r.NA == "" {
			return Pooled(r.Runs), true
		}
	}
	return PStats{}, false
}

func isKG(peer string) bool { return strings.HasPrefix(peer, "kernelgate") }

// suiteWorkloads arranges a Suite's samples into percentile tables.
func suiteWorkloads(su Suite) []peerWorkload {
	per := func(f func(PeerRound) []float64) []peerSeries {
		var rows []peerSeries
		for _, peer := range su.Peers {
			var runs [][]float64
			for _, r := range su.Rounds[peer] {
				if s := f(r); len(s) > 0 {
					runs = append(runs, s)
				}
			}
			if len(runs) > 0 {
				rows = append(rows, peerSeries{Peer: peer, Runs: runs, Check: isKG(peer)})
			}
		}
		return rows
	}
	var out []peerWorkload
	add := func(w peerWorkload) {
		if len(w.Rows) > 0 {
			out = append(out, w)
		}
	}
	add(peerWorkload{
		Title: "`1+1` round trip", Unit: "ms", Target: &Target{Kind: TargetOverBaseline, Limit: 0.5},
		What: "Send the execute request to the cell's end as each API defines it: the channels APIs and the floor wait for " +
			"`execute_reply` and iopub `idle`; `/ws` waits for `execution_result`, which also carries the cell's variables " +
			"summary (evaluated with the cell as a user expression of its execute request, as the AdeloopFlow protocol requires).",
		Rows: per(func(r PeerRound) []float64 { return r.ExecuteMS }),
	})
	for _, key := range []string{"noflush", "flush"} {
		add(peerWorkload{
			Title: fmt.Sprintf("Stream latency, `print(..., flush=%s)`", map[string]string{"noflush": "False", "flush": "True"}[key]),
			Unit:  "ms", Target: &Target{Kind: TargetAbsolute, Limit: 5},
			What: "The kernel prints `time.time_ns()` once per line; the client subtracts it from its wall clock when the " +
				"message completing the line arrives (same machine, same clock). kernelgate's kernels flush every 1 ms " +
				"(its bootstrap); stock ipykernel (the floor, Jupyter Server) every 200 ms, which is what flush=False shows.",
			Rows: per(func(r PeerRound) []float64 { return r.StreamMS[key] }),
		})
	}
	add(peerWorkload{
		Title: "Plot latency, `plt.show()` → PNG at the client", Unit: "ms", Target: &Target{Kind: TargetAbsolute, Limit: 50},
		What: "`plt.plot([1, 3, 2]); plt.show()` in a kernel that has drawn one figure already (matplotlib imported, fonts " +
			"cached), from sending the cell to receiving the message holding the PNG. Matplotlib's render is inside: " +
			"the floor row is that cost with nothing in between.",
		Rows: per(func(r PeerRound) []float64 { return r.PlotMS }),
	})
	add(peerWorkload{
		Title: "10,000-row DataFrame result, time", Unit: "ms",
		What: "`df` (10,000 × 5 floats, created untimed) as the cell's result, send to end. Bytes are in the table below.",
		Rows: per(func(r PeerRound) []float64 { return r.DFMS }),
	})
	add(peerWorkload{
		Title: "10 MB output flood, time", Unit: "ms",
		What: "A cell writing 10,000 lines of 1,000 bytes to stdout without flushing, send to end. " +
			"What arrived and what the gateway's memory did are in the table below.",
		Rows: per(func(r PeerRound) []float64 {
			var v []float64
			for _, f := range r.Flood {
				v = append(v, f.MS)
			}
			return v
		}),
	})
	if len(su.ReadyMS) > 0 {
		var rows []peerSeries
		for _, name := range []string{peerFloor + ", cold", peerKGCh + ", warm pool", peerKGWS + ", warm pool",
			peerKGCh + ", cold", peerJS + ", cold"} {
			if runs, ok := su.ReadyMS[name]; ok {
				rows = append(rows, peerSeries{Peer: name, Runs: runs, Check: strings.HasSuffix(name, "warm pool")})
			}
		}
		rows = append(rows, peerSeries{Peer: peerJS + ", warm pool",
			NA: "n/a: Jupyter Server keeps no warm kernels; every kernel starts on demand"})
		add(peerWorkload{
			Title: "Time to a ready kernel", Unit: "ms", Target: &Target{Kind: TargetAbsolute, Limit: 50},
			What: "Channels APIs: `POST /api/kernels`, open the channels WebSocket, send `kernel_info_request`, receive its reply " +
				"(what JupyterLab waits for). `/ws`: connect, `start_kernel_session`, receive `kernel_session_started`. " +
				"Floor: `KernelManager.start_kernel` + `wait_for_ready`. Warm pool rows wait for the pool to be full before each start; " +
				"cold kernelgate rows use a second kernelgate with `--pool-size 0`. The 50 ms target applies to the warm pool.",
			Rows: rows,
		})
	}
	if len(su.Conc) > 0 {
		var rows []peerSeries
		for _, peer := range su.Peers {
			var runs [][]float64
			for _, c := range su.Conc[peer] {
				runs = append(runs, c.LatencyMS)
			}
			if len(runs) > 0 {
				rows = append(rows, peerSeries{Peer: peer, Runs: runs})
			}
		}
		add(peerWorkload{
			Title: "20 clients × `1+1`, latency under load", Unit: "ms",
			What: "Each client's round trips while all clients run at once; throughput is in the table below.",
			Rows: rows,
		})
	}
	return out
}

// checkRow is one line of the targets table.
type checkRow struct {
	Target, Peer, Measured, Limit, Verdict string
	Met                                    bool
}

func targetChecks(ws []peerWorkload) []checkRow {
	var out []checkRow
	for _, w := range ws {
		if w.Target == nil {
			continue
		}
		floor, hasFloor := w.floorRow()
		for _, r := range w.Rows {
			if !r.Check || r.NA != "" {
				continue
			}
			st := Pooled(r.Runs)
			limit := w.Target.Limit
			if w.Target.Kind == TargetOverBaseline {
				if !hasFloor {
					continue
				}
				limit += floor.P50
			}
			met := st.P50 <= limit
			verdict := "**met**"
			if !met {
				verdict = fmt.Sprintf("missed by %s", fmtMS(st.P50-limit, w.Unit))
			}
			desc := w.Target.Describe(w.Unit)
			if w.Target.Kind == TargetOverBaseline {
				desc = fmt.Sprintf("p50 ≤ floor + %g %s", w.Target.Limit, w.Unit)
			}
			out = append(out, checkRow{Target: w.Title + ": " + desc, Peer: r.Peer,
				Measured: "p50 " + fmtMS(st.P50, w.Unit), Limit: fmtMS(limit, w.Unit), Verdict: verdict, Met: met})
		}
	}
	return out
}

// renderSuiteDetails writes one section per workload.
func renderSuiteDetails(b *strings.Builder, su Suite, ws []peerWorkload) {
	for _, wl := range ws {
		renderPeerWorkload(b, wl)
		switch {
		case strings.HasPrefix(wl.Title, "10,000-row"):
			renderDFTable(b, su)
		case strings.HasPrefix(wl.Title, "10 MB"):
			renderFloodTable(b, su)
		case strings.HasPrefix(wl.Title, "20 clients"):
			renderConcTable(b, su)
		}
	}
	if len(su.Scale) > 0 {
		renderScale(b, su)
	}
}

// renderHeadline writes the all-peers table and the target checks.
func renderHeadline(b *strings.Builder, su Suite, ws []peerWorkload) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	defer func() {
		if len(su.Failures) > 0 {
			w("**Failed during the run** (the rows above lack these samples):\n\n")
			for _, f := range su.Failures {
				w("- %s\n", cell(tail(f, 400)))
			}
			w("\n")
		}
	}()

	w("## Headline: every peer, every workload\n\n")
	w("p50 / p99 over all samples of all rounds; in brackets, p50 as a multiple of the floor's. ")
	w("Peers: **%s** (`bench/baseline.py`, no server), **%s** (AdeloopFlow protocol), **%s** (`/api/kernels/{id}/channels`, %s framing) ", peerFloor, peerKGWS, peerKGCh, framingName(su))
	w("and **%s** (Debian's `python3-jupyter-server`, its own local kernels, shipped settings). ", peerJS)
	w("kernelgate ran as the real `bin/kernelgate serve` subprocess, kernels **%s**.\n\n", su.Sandbox)
	w("| workload |")
	for _, p := range su.Peers {
		w(" %s |", p)
	}
	w("\n|---|%s\n", strings.Repeat("---:|", len(su.Peers)))
	for _, wl := range ws {
		if strings.HasPrefix(wl.Title, "Time to a ready kernel") {
			continue // variants per peer: its own table below
		}
		floor, hasFloor := wl.floorRow()
		w("| %s |", wl.Title)
		for _, p := range su.Peers {
			cellText := "—"
			for _, r := range wl.Rows {
				if r.Peer != p {
					continue
				}
				st := Pooled(r.Runs)
				cellText = fmtMS(st.P50, wl.Unit) + " / " + fmtMS(st.P99, wl.Unit)
				if hasFloor && p != peerFloor {
					cellText += " (" + ratio(st.P50, floor.P50) + ")"
				}
			}
			w(" %s |", cellText)
		}
		w("\n")
	}
	w("\n")

	if checks := targetChecks(ws); len(checks) > 0 || len(su.Conc) > 0 {
		w("## Targets (design.md §7)\n\n")
		w("| target | peer | measured | limit | verdict |\n|---|---|---:|---:|---|\n")
		for _, c := range checks {
			w("| %s | %s | %s | %s | %s |\n", c.Target, c.Peer, c.Measured, c.Limit, c.Verdict)
		}
		if fl, ok := concRate(su.Conc[peerFloor]); ok {
			for _, p := range []string{peerKGWS, peerKGCh} {
				if r, ok := concRate(su.Conc[p]); ok {
					verdict := "**met**"
					if r < fl {
						verdict = fmt.Sprintf("missed by %.0f executions/s", fl-r)
					}
					w("| 20 clients × `1+1`: executions/s ≥ floor | %s | %.0f/s | %.0f/s | %s |\n", p, r, fl, verdict)
				}
			}
		}
		w("\n")
	}
}

func framingName(su Suite) string {
	if su.Framing != "" {
		return su.Framing
	}
	return "v1 binary"
}

func renderPeerWorkload(b *strings.Builder, wl peerWorkload) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## %s\n\n%s\n\n", wl.Title, wl.What)
	floor, hasFloor := wl.floorRow()
	w("| peer | n | min | p50 | p90 | p99 | p50 of each round | p50 / floor | p99 / floor |\n")
	w("|---|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, r := range wl.Rows {
		if r.NA != "" {
			w("| %s | — | — | — | — | — | %s | — | — |\n", r.Peer, r.NA)
			continue
		}
		st := Pooled(r.Runs)
		rounds := make([]string, len(st.RoundP50s))
		for i, v := range st.RoundP50s {
			rounds[i] = fmtNum(v)
		}
		rp50, rp99 := "—", "—"
		if hasFloor {
			rp50, rp99 = ratio(st.P50, floor.P50), ratio(st.P99, floor.P99)
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.Peer, st.N, fmtMS(st.Min, wl.Unit), fmtMS(st.P50, wl.Unit),
			fmtMS(st.P90, wl.Unit), fmtMS(st.P99, wl.Unit), strings.Join(rounds, ", "), rp50, rp99)
	}
	w("\n")
}

// medianInt is the median of ints, as a float.
func medianInt(v []int) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return Median(f)
}

// fmtBytes formats a byte count for tables.
func fmtBytes(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 1e6:
		return fmt.Sprintf("%.2f MB", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f KB", v/1e3)
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

func renderDFTable(b *strings.Builder, su Suite) {
	fmt.Fprintf(b, "| peer | bytes on the wire per result (median) |\n|---|---:|\n")
	for _, p := range su.Peers {
		var all []int
		for _, r := range su.Rounds[p] {
			all = append(all, r.DFBytes...)
		}
		if len(all) > 0 {
			fmt.Fprintf(b, "| %s | %s |\n", p, fmtBytes(medianInt(all)))
		}
	}
	fmt.Fprintf(b, "\nWire bytes: the WebSocket payloads about the cell (the floor: its ZMQ frames, signatures included).\n\n")
}

func renderFloodTable(b *strings.Builder, su Suite) {
	fmt.Fprintf(b, "| peer | stdout text delivered (median) | wire bytes (median) | gateway RSS before | gateway peak RSS during the cell (max) |\n|---|---:|---:|---:|---:|\n")
	for _, p := range su.Peers {
		var text, wire []int
		var before, peak uint64
		for _, r := range su.Rounds[p] {
			for _, f := range r.Flood {
				text, wire = append(text, f.StreamBytes), append(wire, f.WireBytes)
				before, peak = max(before, f.GatewayKB), max(peak, f.PeakKB)
			}
		}
		if len(text) == 0 {
			continue
		}
		gb, gp := MB(before), MB(peak)
		if p == peerFloor {
			gb, gp = "n/a (no gateway)", "n/a (no gateway)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", p, fmtBytes(medianInt(text)), fmtBytes(medianInt(wire)), gb, gp)
	}
	fmt.Fprintf(b, "\nPeak RSS is the gateway process's VmHWM after resetting it (`/proc/<pid>/clear_refs`) just before the cell. "+
		"The kernelgate rows share one process (the /ws and channels peers are two APIs of one server).\n\n")
}

// concRate is the median over rounds of executions per second.
func concRate(rounds []ConcRound) (float64, bool) {
	var v []float64
	for _, r := range rounds {
		if r.ElapsedS > 0 {
			v = append(v, float64(r.Count)/r.ElapsedS)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	return Median(v), true
}

func renderConcTable(b *strings.Builder, su Suite) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	fl, hasFloor := concRate(su.Conc[peerFloor])
	w("| peer | executions/s, each round | median | / floor | gateway CPU in the window (median) |\n|---|---|---:|---:|---:|\n")
	for _, p := range su.Peers {
		rounds := su.Conc[p]
		if len(rounds) == 0 {
			continue
		}
		var each []string
		var cpu []float64
		for _, r := range rounds {
			each = append(each, fmt.Sprintf("%.0f", float64(r.Count)/r.ElapsedS))
			cpu = append(cpu, r.GatewayCPU/r.ElapsedS*100)
		}
		rate, _ := concRate(rounds)
		rt := "—"
		if hasFloor {
			rt = ratio(rate, fl)
		}
		gc := fmt.Sprintf("%.0f%% of a core", Median(cpu))
		if p == peerFloor {
			gc = "n/a (no gateway)"
		}
		w("| %s | %s | %.0f/s | %s | %s |\n", p, strings.Join(each, ", "), rate, rt, gc)
	}
	w("\n")
}

func renderScale(b *strings.Builder, su Suite) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("## Many live kernels and idle WebSockets\n\n")
	w("Each gateway started fresh (kernelgate without a warm pool, so exactly that many kernels), then: kernels started through ")
	w("`POST /api/kernels` (4 at a time), then idle channels WebSockets spread evenly over them, held open and read. ")
	w("Memory from `/proc/<pid>/status` (RSS) and `smaps_rollup` (PSS: shared pages split between their users, so PSS sums to ")
	w("what the kernels really take together); kernel memory is every process below the gateway (kernelgate: the sandbox ")
	w("helpers and `bwrap` processes are counted with their kernels). CPU: ticks in `/proc/<pid>/stat` over an idle window.\n\n")
	if su.ScaleNote != "" {
		w("**Scaled down:** %s\n\n", su.ScaleNote)
	}
	w("| peer | kernels | idle sockets | start all | gateway RSS: empty → kernels → sockets | gateway CPU idle | kernels RSS (per kernel) | kernels PSS (per kernel) | processes | kernels CPU idle |\n")
	w("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	names := make([]string, 0, len(su.Scale))
	for p := range su.Scale {
		names = append(names, p)
	}
	sort.Slice(names, func(i, j int) bool { return peerOrder(names[i]) < peerOrder(names[j]) })
	for _, p := range names {
		r := su.Scale[p]
		if r.Failed != "" {
			w("| %s | %d | — | — | failed: %s | — | — | — | — | — |\n", p, r.Kernels, cell(tail(r.Failed, 300)))
			continue
		}
		k := float64(max(1, r.Kernels))
		gwMem, gwCPU := "n/a (no gateway)", "n/a"
		if r.NA == "" {
			gwMem = fmt.Sprintf("%s → %s → %s", MB(r.GatewayIdleKB), MB(r.GatewayKernelsKB), MB(r.GatewaySocketsKB))
			if r.GatewayFlowKB > 0 {
				gwMem += fmt.Sprintf(" (→ %s with %d idle `/ws` sockets more)", MB(r.GatewayFlowKB), r.Sockets)
			}
			gwCPU = fmt.Sprintf("%.1f%%", r.GatewayCPUPct)
		}
		socks := fmt.Sprint(r.Sockets)
		if r.NA != "" {
			socks = "n/a"
		}
		w("| %s | %d | %s | %.1f s | %s | %s | %s (%s) | %s (%s) | %d | %.1f%% |\n", p, r.Kernels, socks, r.StartS, gwMem, gwCPU,
			MB(r.KernelsMem.RSS), MB(uint64(float64(r.KernelsMem.RSS)/k)), MB(r.KernelsMem.PSS), MB(uint64(float64(r.KernelsMem.PSS)/k)),
			r.KernelsMem.Procs, r.KernelsCPUPct)
	}
	w("\nCPU percentages are of one core over the idle window; kernel CPU is their heartbeats and event loops.\n\n")
}

func peerOrder(p string) int {
	for i, q := range []string{peerKGCh, peerKGWS, peerJS, peerFloor} {
		if strings.HasPrefix(p, q) {
			return i
		}
	}
	return 99
}

// SummaryTable is the headline table for stdout.
func SummaryTable(su Suite) string {
	var b strings.Builder
	renderHeadline(&b, su, suiteWorkloads(su))
	return b.String()
}

// Summary is what kgbench prints to stdout: the headline table and target
// checks, and the engine's summary rows.
func Summary(r Report) string {
	var b strings.Builder
	if r.Suite != nil {
		b.WriteString(SummaryTable(*r.Suite))
	}
	if len(r.Metrics) > 0 {
		b.WriteString("## Engine in-process vs direct (p50 / p99, medians of runs)\n\n| metric | engine | direct | p50 ratio |\n|---|---:|---:|---:|\n")
		for _, m := range r.Metrics {
			e, d := summarizeSide(m.Engine), summarizeSide(m.Baseline)
			fmt.Fprintf(&b, "| %s | %s / %s | %s / %s | %s |\n", m.Title, fmtMS(e.P50, m.Unit), fmtMS(e.P99, m.Unit),
				fmtMS(d.P50, m.Unit), fmtMS(d.P99, m.Unit), ratio(e.P50, d.P50))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// jsonReport is the raw material of a report, for the JSON output: every
// sample, no hand-written prose (-render puts that back).
func jsonReport(r Report) Report {
	r.Notes, r.Analysis = nil, nil
	return r
}

// suiteMethod is how the server peers were measured, for the report.
func suiteMethod(su Suite) []string {
	return []string{
		"All peers run on this one machine, clients included, so they compete for the same cores: the load averages in the machine table say how busy it was.",
		"Rounds: in each round every peer runs its workloads once, one peer after another, and the starting peer rotates from round to round; " +
			"percentiles pool every sample of every round (nearest rank: a measured value, never an interpolation), and the per-round p50s show the noise.",
		"kernelgate: `bin/kernelgate serve` as shipped (sandbox `auto`, warm pool of 2, heartbeats, bootstrap) on a loopback port without a token, " +
			"except `--rate-executions 0 --rate-kernel-starts 0 --rate-messages 0 --max-kernels 0 --max-kernels-per-user 0` " +
			"(per-user limits would refuse one user's 20 clients and 100 kernels; they are policy, not cost) and `--session-ttl 15s` " +
			"(so `/ws` sessions the benchmark closed free their kernels soon). Sandbox: " + su.Sandbox + ".",
		"Jupyter Server: `/usr/bin/python3 -m jupyter_server --allow-root` with a token, a temp `root_dir` and temp `JUPYTER_*` dirs, shipped settings " +
			"(including its iopub limits of 1,000 messages/s and 1 MB/s per connection, which matter for the flood); its kernels are the system " +
			"`python3` kernelspec (`/usr/bin/python3 -m ipykernel_launcher`), unconfined.",
		"Floor: `bench/baseline.py -job`, a jupyter_client KernelManager and the kernel's own Session over plain pyzmq sockets and one poller: " +
			"the fastest a Python client gets with nothing in between. Its kernel is stock ipykernel (200 ms stream flush, 0.5 ms sleep before each reply).",
		"Clients are Go (`coder/websocket`, compression off), one connection per kernel; the channels peers speak the " + framingName(su) +
			" framing. Every peer runs the same cell source, byte for byte (the Go side hands the floor its code).",
		"Each latency round starts a fresh kernel per peer (untimed) and waits, on kernelgate, for the warm pool to be full, so a pool refill never overlaps a timed section.",
	}
}
