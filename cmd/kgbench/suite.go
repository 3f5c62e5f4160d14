package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The peers measured over public APIs, in the order of the report's rows.
const (
	peerFloor = "direct jupyter_client (floor)"
	peerKGWS  = "kernelgate /ws"
	peerKGCh  = "kernelgate channels"
	peerJS    = "Jupyter Server 1.23"
)

// SuiteParams size the server workloads.
type SuiteParams struct {
	Rounds                  int
	N, Warmup               int
	StreamLines, StreamReps int
	StreamSleep             time.Duration
	PlotReps                int
	DFRows, DFReps          int
	FloodBytes, FloodReps   int
	ReadyStarts             int
	ConcClients, ConcRounds int
	ConcDuration            time.Duration
	ScaleKernels            int
	ScaleSockets            int
	ScaleIdle               time.Duration
	V1                      bool // the channels framing: v1 binary, else legacy JSON
	Workloads               map[string]bool
	Binary, Python, Script  string
}

// Codes are the cells every peer runs, byte for byte.
type Codes struct {
	StreamNoflush string `json:"stream_noflush"`
	StreamFlush   string `json:"stream_flush"`
	PlotSetup     string `json:"plot_setup"`
	Plot          string `json:"plot"`
	DFSetup       string `json:"df_setup"`
	DF            string `json:"df"`
	Flood         string `json:"flood"`
}

func codesFor(p SuiteParams) Codes {
	return Codes{
		StreamNoflush: streamCode(p.StreamLines, p.StreamSleep, false),
		StreamFlush:   streamCode(p.StreamLines, p.StreamSleep, true),
		// The first figure pays matplotlib's import and font setup; the
		// timed ones measure a plot in a warm kernel, as in a notebook.
		PlotSetup: "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
		Plot:      "plt.plot([1, 3, 2])\nplt.show()",
		DFSetup: fmt.Sprintf("import numpy as np, pandas as pd\n"+
			"df = pd.DataFrame(np.random.default_rng(0).random((%d, 5)), columns=list('abcde'))", p.DFRows),
		DF: "df",
		// 1,000-byte lines, written without flush: the kernel's own
		// buffering decides the message sizes.
		Flood: fmt.Sprintf("import sys\nfor _i in range(%d):\n    sys.stdout.write('x' * 999 + '\\n')\n", p.FloodBytes/1000),
	}
}

// PeerRound is one peer's raw results of one round of the latency
// workloads.
type PeerRound struct {
	ExecuteMS []float64            `json:"execute_ms,omitempty"`
	StreamMS  map[string][]float64 `json:"stream_ms,omitempty"`
	PlotMS    []float64            `json:"plot_ms,omitempty"`
	DFMS      []float64            `json:"dataframe_ms,omitempty"`
	DFBytes   []int                `json:"dataframe_wire_bytes,omitempty"`
	Flood     []FloodSample        `json:"flood,omitempty"`
}

// FloodSample is one 10 MB flood as one peer delivered it.
type FloodSample struct {
	MS          float64 `json:"ms"`
	StreamBytes int     `json:"stream_bytes"` // printed text that reached the client
	WireBytes   int     `json:"wire_bytes"`
	GatewayKB   uint64  `json:"gateway_rss_before_kb,omitempty"`
	PeakKB      uint64  `json:"gateway_peak_kb,omitempty"` // VmHWM over the cell
}

// ConcRound is one peer's concurrency run.
type ConcRound struct {
	LatencyMS  []float64 `json:"latency_ms"`
	Count      int       `json:"count"`
	ElapsedS   float64   `json:"elapsed_s"`
	GatewayCPU float64   `json:"gateway_cpu_s,omitempty"` // CPU seconds the gateway used in the window
}

// ScaleResult is one peer holding many kernels and idle WebSockets.
type ScaleResult struct {
	Kernels, Sockets int
	StartS           float64 // to start all kernels
	GatewayIdleKB    uint64  // gateway RSS with no kernel
	GatewayKernelsKB uint64  // with the kernels
	GatewaySocketsKB uint64  // with the kernels and the idle channels sockets
	GatewayFlowKB    uint64  // kernelgate: and as many idle /ws sockets
	GatewayCPUPct    float64 // over the idle window, % of one core
	KernelsCPUPct    float64
	KernelsMem       Mem // every process below the gateway
	NA               string
	Failed           string // the workload failed on this peer: why
}

// Suite is every server-peer result of one kgbench invocation.
type Suite struct {
	Peers      []string
	Rounds     map[string][]PeerRound
	ReadyMS    map[string][][]float64 // peer variant → rounds → samples
	Conc       map[string][]ConcRound
	Scale      map[string]ScaleResult
	Sandbox    string // kernelgate's /readyz confinement line
	Framing    string // of the channels peers: "v1 binary" or "legacy JSON"
	ScaleNote  string // why the scale workload ran smaller, if it did
	Failures   []string
	Codes      Codes
	Versions   map[string]string
	LoadBefore string
	LoadAfter  string
	Took       time.Duration
}

// runSuite runs the selected server workloads, peers interleaved round by
// round (the start order rotates, so no peer always goes first).
func runSuite(ctx context.Context, p SuiteParams, progress io.Writer) (su Suite, err error) {
	su = Suite{
		Peers:  []string{peerFloor, peerKGWS, peerKGCh, peerJS},
		Rounds: map[string][]PeerRound{}, ReadyMS: map[string][][]float64{},
		Conc: map[string][]ConcRound{}, Scale: map[string]ScaleResult{},
		Codes: codesFor(p), LoadBefore: loadAvg(),
	}
	began := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(progress, "kgbench: "+format+"\n", a...)
	}
	latency := p.Workloads["rtt"] || p.Workloads["stream"] || p.Workloads["plot"] || p.Workloads["dataframe"] || p.Workloads["flood"]
	needServers := latency || p.Workloads["ready"] || p.Workloads["concurrency"]
	var kg, kgCold, js *server
	defer func() { kg.stop(); kgCold.stop(); js.stop() }()
	if needServers {
		if kg, err = startKernelgate(ctx, kgOptions{Binary: p.Binary, PoolSize: 2}, "kernelgate"); err != nil {
			return su, err
		}
		su.Sandbox = SandboxLine(kg.readyz(ctx))
		say("kernelgate pid %d at %s; %s", kg.PID(), kg.Base, su.Sandbox)
		if js, err = startJupyterServer(ctx, p.Python); err != nil {
			return su, err
		}
		say("Jupyter Server pid %d at %s", js.PID(), js.Base)
	}

	if latency || p.Workloads["ready"] {
		if p.Workloads["ready"] {
			if kgCold, err = startKernelgate(ctx, kgOptions{Binary: p.Binary, PoolSize: 0}, "kernelgate (no pool)"); err != nil {
				return su, err
			}
		}
		for r := range p.Rounds {
			for _, peer := range rotate(su.Peers, r) {
				t := time.Now()
				pr, err := latencyRound(ctx, p, &su, peer, kg, kgCold, js)
				if err != nil {
					return su, fmt.Errorf("round %d, %s: %w", r+1, peer, err)
				}
				su.Rounds[peer] = append(su.Rounds[peer], pr)
				say("round %d/%d %s done in %s", r+1, p.Rounds, peer, time.Since(t).Round(time.Millisecond))
			}
		}
		kgCold.stop()
		kgCold = nil
	}

	if p.Workloads["concurrency"] {
		for r := range p.ConcRounds {
			for _, peer := range rotate(su.Peers, r) {
				t := time.Now()
				cr, err := concRound(ctx, p, peer, kg, js)
				if err != nil {
					if ctx.Err() != nil {
						return su, err
					}
					// A peer failing under load is a finding; keep the run.
					say("concurrency round %d, %s failed: %v", r+1, peer, err)
					su.Failures = append(su.Failures, fmt.Sprintf("20 clients, round %d, %s: %v", r+1, peer, err))
					continue
				}
				su.Conc[peer] = append(su.Conc[peer], cr)
				say("concurrency round %d/%d %s: %.0f executions/s (%s)", r+1, p.ConcRounds, peer,
					float64(cr.Count)/cr.ElapsedS, time.Since(t).Round(time.Millisecond))
			}
		}
	}
	// The scale workload runs each gateway fresh: no kernel of an earlier
	// workload (or /ws session waiting out its TTL) may count.
	kg.stop()
	js.stop()
	kg, js = nil, nil

	if p.Workloads["scale"] {
		for _, peer := range []string{peerKGCh, peerJS, peerFloor} {
			t := time.Now()
			res, err := scaleRun(ctx, p, peer)
			if err != nil {
				if ctx.Err() != nil {
					return su, err
				}
				// One gateway failing to hold the load is a finding, not a
				// reason to throw away the rest of the run.
				say("scale, %s failed: %v", peer, err)
				res = ScaleResult{Kernels: p.ScaleKernels, Failed: err.Error()}
			}
			su.Scale[peer] = res
			say("scale %s: %d kernels, %d sockets in %s", peer, res.Kernels, res.Sockets, time.Since(t).Round(time.Millisecond))
		}
	}
	su.LoadAfter = loadAvg()
	su.Took = time.Since(began)
	return su, nil
}

// rotate returns peers starting at index r (mod len).
func rotate(peers []string, r int) []string {
	out := make([]string, 0, len(peers))
	for i := range peers {
		out = append(out, peers[(i+r)%len(peers)])
	}
	return out
}

// latencyRound runs one round of the latency workloads (and the ready
// starts) for one peer.
func latencyRound(ctx context.Context, p SuiteParams, su *Suite, peer string, kg, kgCold, js *server) (PeerRound, error) {
	if peer == peerFloor {
		job := map[string]any{
			"mode": "peer", "n": p.N, "warmup": p.Warmup, "codes": su.Codes,
			"stream_reps": p.StreamReps, "plot_reps": p.PlotReps, "df_reps": p.DFReps, "flood_reps": p.FloodReps,
			"workloads": keys(p.Workloads), "starts": 0,
		}
		if p.Workloads["ready"] {
			job["starts"] = p.ReadyStarts
		}
		var out floorPeerOut
		if err := floorJob(ctx, p.Python, p.Script, job, &out); err != nil {
			return PeerRound{}, err
		}
		su.Versions = out.Versions
		if p.Workloads["ready"] {
			su.ReadyMS[peerFloor+", cold"] = append(su.ReadyMS[peerFloor+", cold"], out.StartMS)
		}
		pr := PeerRound{ExecuteMS: out.ExecuteMS, StreamMS: out.StreamMS, PlotMS: out.PlotMS}
		for _, d := range out.DataFrame {
			pr.DFMS, pr.DFBytes = append(pr.DFMS, d.MS), append(pr.DFBytes, d.WireBytes)
		}
		for _, f := range out.Flood {
			pr.Flood = append(pr.Flood, FloodSample{MS: f.MS, StreamBytes: f.StreamBytes, WireBytes: f.WireBytes})
		}
		return pr, nil
	}

	var gw *server
	switch peer {
	case peerKGWS, peerKGCh:
		gw = kg
	case peerJS:
		gw = js
	}
	if p.Workloads["ready"] {
		if err := readyRound(ctx, p, su, peer, kg, kgCold, js); err != nil {
			return PeerRound{}, fmt.Errorf("ready: %w", err)
		}
	}
	c, cleanup, err := openClient(ctx, peer, gw, p.V1)
	if err != nil {
		return PeerRound{}, err
	}
	defer cleanup()
	if gw == kg {
		if err := kg.waitPool(ctx); err != nil {
			return PeerRound{}, err
		}
	}
	return runLatency(ctx, p, su.Codes, c, gw.PID())
}

// openClient starts a kernel on gw for peer and connects to it; cleanup
// closes the connection and (on the channels APIs) deletes the kernel.
func openClient(ctx context.Context, peer string, gw *server, v1 bool) (client, func(), error) {
	if peer == peerKGWS {
		fc, err := dialFlow(ctx, gw)
		if err != nil {
			return nil, nil, err
		}
		if err := fc.StartSession(ctx); err != nil {
			fc.Close()
			return nil, nil, err
		}
		// The session keeps its kernel for --session-ttl after the close.
		return fc, fc.Close, nil
	}
	id, err := createKernel(ctx, gw)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { deleteKernel(gw, id) }
	cc, err := dialChannels(ctx, gw, id, v1)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := cc.KernelInfo(ctx); err != nil {
		cc.Close()
		cleanup()
		return nil, nil, err
	}
	return cc, func() { cc.Close(); cleanup() }, nil
}

func createKernel(ctx context.Context, s *server) (string, error) {
	code, body, err := s.request(ctx, "POST", "/api/kernels", `{"name":"python3"}`)
	if err != nil {
		return "", fmt.Errorf("%s: start kernel: %w", s.Name, err)
	}
	if code != http.StatusCreated && code != http.StatusOK {
		return "", fmt.Errorf("%s: start kernel: %d %s", s.Name, code, tail(string(body), 300))
	}
	var m struct{ ID string }
	if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
		return "", fmt.Errorf("%s: start kernel: bad answer %s", s.Name, tail(string(body), 300))
	}
	return m.ID, nil
}

// deleteKernel is cleanup: it gets its own context, so it runs after a
// Ctrl-C too.
func deleteKernel(s *server, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.request(ctx, "DELETE", "/api/kernels/"+id, "")
}

// runLatency runs the latency workloads on one connected client.
func runLatency(ctx context.Context, p SuiteParams, codes Codes, c client, gwPID int) (PeerRound, error) {
	var pr PeerRound
	run := func(code string) (cellResult, error) { return c.Run(ctx, code) }
	if p.Workloads["rtt"] {
		for range p.Warmup {
			if _, err := run("1+1"); err != nil {
				return pr, err
			}
		}
		for range p.N {
			r, err := run("1+1")
			if err != nil {
				return pr, err
			}
			pr.ExecuteMS = append(pr.ExecuteMS, ms(r.Elapsed))
		}
	}
	if p.Workloads["stream"] {
		pr.StreamMS = map[string][]float64{}
		for _, key := range []string{"noflush", "flush"} {
			code := codes.StreamNoflush
			if key == "flush" {
				code = codes.StreamFlush
			}
			for range p.StreamReps {
				r, err := run(code)
				if err != nil {
					return pr, err
				}
				lat, err := StreamLatencies(r.Stream)
				if err != nil {
					return pr, err
				}
				pr.StreamMS[key] = append(pr.StreamMS[key], lat...)
			}
		}
	}
	if p.Workloads["plot"] {
		if _, err := run(codes.PlotSetup); err != nil {
			return pr, err
		}
		for range p.PlotReps {
			r, err := run(codes.Plot)
			if err != nil {
				return pr, err
			}
			if r.ImageAfter == 0 {
				return pr, errors.New("plot: no PNG image arrived")
			}
			pr.PlotMS = append(pr.PlotMS, ms(r.ImageAfter))
		}
	}
	if p.Workloads["dataframe"] {
		if _, err := run(codes.DFSetup); err != nil {
			return pr, err
		}
		for range p.DFReps {
			r, err := run(codes.DF)
			if err != nil {
				return pr, err
			}
			pr.DFMS, pr.DFBytes = append(pr.DFMS, ms(r.Elapsed)), append(pr.DFBytes, r.WireBytes)
		}
	}
	if p.Workloads["flood"] {
		for range p.FloodReps {
			var f FloodSample
			if m, err := procMem(gwPID); err == nil {
				f.GatewayKB = m.RSS
			}
			resetPeak(gwPID)
			r, err := run(codes.Flood)
			if err != nil {
				return pr, err
			}
			if m, err := procMem(gwPID); err == nil {
				f.PeakKB = m.HWM
			}
			f.MS, f.StreamBytes, f.WireBytes = ms(r.Elapsed), r.StreamBytes, r.WireBytes
			pr.Flood = append(pr.Flood, f)
		}
	}
	return pr, nil
}

// StreamLatencies turns the chunks of the stream workload into one latency
// per printed line: the arrival of the chunk that completed the line minus
// the time.time_ns() the line holds. A line may be split over chunks (the
// kernel flushes on a timer, and print writes the newline separately).
func StreamLatencies(chunks []streamChunk) ([]float64, error) {
	var out []float64
	var carry string
	for _, c := range chunks {
		text := carry + c.Text
		carry = ""
		for line := range strings.Lines(text) {
			if !strings.HasSuffix(line, "\n") {
				carry = line
				break
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			printed, err := strconv.ParseInt(line, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("stream line %q: %w", line, err)
			}
			out = append(out, float64(c.At-printed)/1e6)
		}
	}
	if strings.TrimSpace(carry) != "" {
		return nil, fmt.Errorf("stream ended inside a line: %q", carry)
	}
	return out, nil
}

// readyRound times kernels becoming ready for a new client on one peer:
// start request to the first kernel_info_reply on the channels socket (what
// JupyterLab waits for), or /ws connect to kernel_session_started.
func readyRound(ctx context.Context, p SuiteParams, su *Suite, peer string, kg, kgCold, js *server) error {
	type variant struct {
		name string
		gw   *server
		pool bool
	}
	var vs []variant
	switch peer {
	case peerKGCh:
		vs = []variant{{peerKGCh + ", warm pool", kg, true}, {peerKGCh + ", cold", kgCold, false}}
	case peerKGWS:
		vs = []variant{{peerKGWS + ", warm pool", kg, true}}
	case peerJS:
		vs = []variant{{peerJS + ", cold", js, false}}
	}
	for _, v := range vs {
		var samples []float64
		for range p.ReadyStarts {
			if v.pool {
				if err := v.gw.waitPool(ctx); err != nil {
					return err
				}
			}
			began := time.Now()
			c, cleanup, err := openClient(ctx, peer, v.gw, p.V1)
			took := time.Since(began)
			if err != nil {
				return err
			}
			_ = c
			cleanup()
			samples = append(samples, ms(took))
		}
		su.ReadyMS[v.name] = append(su.ReadyMS[v.name], samples)
	}
	return nil
}

// concRound runs ConcClients clients, each on its own kernel, each with one
// `1+1` outstanding, for ConcDuration.
func concRound(ctx context.Context, p SuiteParams, peer string, kg, js *server) (ConcRound, error) {
	if peer == peerFloor {
		var out floorConcOut
		err := floorJob(ctx, p.Python, p.Script, map[string]any{
			"mode": "concurrency", "clients": p.ConcClients, "seconds": p.ConcDuration.Seconds(), "warmup": 5, "parallel": 4,
		}, &out)
		return ConcRound{LatencyMS: out.LatencyMS, Count: out.Count, ElapsedS: out.ElapsedS}, err
	}
	gw := kg
	if peer == peerJS {
		gw = js
	}
	clients := make([]client, p.ConcClients)
	cleanups := make([]func(), p.ConcClients)
	defer func() {
		for _, c := range cleanups {
			if c != nil {
				c()
			}
		}
	}()
	if err := parallel(ctx, p.ConcClients, 4, func(i int) error {
		c, cleanup, err := openClient(ctx, peer, gw, p.V1)
		if err != nil {
			return err
		}
		clients[i], cleanups[i] = c, cleanup
		for range 5 {
			if _, err := c.Run(ctx, "1+1"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return ConcRound{}, err
	}
	if gw == kg {
		if err := kg.waitPool(ctx); err != nil {
			return ConcRound{}, err
		}
	}
	cpu0 := cpuTicks(gw.PID())
	lat := make([][]float64, len(clients))
	began := time.Now()
	end := began.Add(p.ConcDuration)
	err := parallel(ctx, len(clients), len(clients), func(i int) error {
		for time.Now().Before(end) {
			r, err := clients[i].Run(ctx, "1+1")
			if err != nil {
				return err
			}
			lat[i] = append(lat[i], ms(r.Elapsed))
		}
		return nil
	})
	elapsed := time.Since(began)
	cr := ConcRound{ElapsedS: elapsed.Seconds(), GatewayCPU: float64(cpuTicks(gw.PID())-cpu0) / clockTick}
	for _, l := range lat {
		cr.LatencyMS = append(cr.LatencyMS, l...)
	}
	cr.Count = len(cr.LatencyMS)
	return cr, err
}

// parallel runs fn(0..n-1) with at most width at once and returns the
// first error; it returns after every fn has returned.
func parallel(ctx context.Context, n, width int, fn func(i int) error) error {
	sem := make(chan struct{}, max(1, width))
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}

// scaleRun holds ScaleKernels kernels and ScaleSockets idle WebSockets on
// one fresh gateway and reads what they cost from /proc.
func scaleRun(ctx context.Context, p SuiteParams, peer string) (res ScaleResult, err error) {
	res.Kernels = p.ScaleKernels
	if peer == peerFloor {
		pid, startS, release, err := floorScale(ctx, p.Python, p.Script, p.ScaleKernels)
		if err != nil {
			return res, err
		}
		res.StartS = startS
		_, t0 := treeMem(pid)
		time.Sleep(p.ScaleIdle)
		res.KernelsMem, res.KernelsCPUPct = treeMemCPU(pid, t0, p.ScaleIdle)
		res.NA = "no gateway: the kernels are children of the client process"
		return res, release()
	}
	var gw *server
	if peer == peerJS {
		gw, err = startJupyterServer(ctx, p.Python)
	} else {
		// No warm pool: exactly ScaleKernels kernels.
		gw, err = startKernelgate(ctx, kgOptions{Binary: p.Binary, PoolSize: 0}, "kernelgate")
	}
	if err != nil {
		return res, err
	}
	defer gw.stop()
	m, _ := procMem(gw.PID())
	res.GatewayIdleKB = m.RSS

	ids := make([]string, p.ScaleKernels)
	began := time.Now()
	if err := parallel(ctx, p.ScaleKernels, 4, func(i int) error {
		id, err := createKernel(ctx, gw)
		ids[i] = id
		return err
	}); err != nil {
		return res, err
	}
	res.StartS = time.Since(began).Seconds()
	m, _ = procMem(gw.PID())
	res.GatewayKernelsKB = m.RSS

	var socks idleSockets
	defer socks.close()
	if err := socks.open(ctx, p.ScaleSockets, func(i int) string {
		return gw.WS("/api/kernels/" + ids[i%len(ids)] + "/channels?session_id=kgbench-idle-" + strconv.Itoa(i))
	}); err != nil {
		return res, err
	}
	res.Sockets = p.ScaleSockets
	// Let connection setup (Jupyter Server's kernel_info nudges) settle.
	time.Sleep(2 * time.Second)
	m, _ = procMem(gw.PID())
	res.GatewaySocketsKB = m.RSS

	g0 := cpuTicks(gw.PID())
	_, k0 := treeMem(gw.PID())
	time.Sleep(p.ScaleIdle)
	res.GatewayCPUPct = float64(cpuTicks(gw.PID())-g0) / clockTick / p.ScaleIdle.Seconds() * 100
	res.KernelsMem, res.KernelsCPUPct = treeMemCPU(gw.PID(), k0, p.ScaleIdle)

	if peer == peerKGCh {
		if err := socks.open(ctx, p.ScaleSockets, func(int) string { return gw.WS("/ws") }); err != nil {
			return res, err
		}
		time.Sleep(time.Second)
		m, _ = procMem(gw.PID())
		res.GatewayFlowKB = m.RSS
	}
	return res, nil
}

// treeMemCPU reads the memory below root and the CPU it used since ticks0,
// as % of one core over d.
func treeMemCPU(root int, ticks0 uint64, d time.Duration) (Mem, float64) {
	m, t1 := treeMem(root)
	if t1 < ticks0 {
		return m, 0
	}
	return m, float64(t1-ticks0) / clockTick / d.Seconds() * 100
}

// idleSockets are WebSockets held open and read (so pings are answered
// and nothing backs up) until closed.
type idleSockets struct {
	conns []*websocket.Conn
	wg    sync.WaitGroup
}

func (s *idleSockets) open(ctx context.Context, n int, url func(int) string) error {
	conns := make([]*websocket.Conn, n)
	err := parallel(ctx, n, 8, func(i int) error {
		// Long: a gateway may hold the handshake until the kernel answers
		// (Jupyter Server's kernel_info nudge), and 100 kernels starting on
		// 2 cores take a while.
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		ws, _, err := websocket.Dial(dctx, url(i), &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return fmt.Errorf("idle socket %d: %w", i, err)
		}
		ws.SetReadLimit(1 << 30)
		conns[i] = ws
		return nil
	})
	for _, c := range conns {
		if c == nil {
			continue
		}
		s.conns = append(s.conns, c)
		s.wg.Go(func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		})
	}
	return err
}

func (s *idleSockets) close() {
	for _, c := range s.conns {
		c.CloseNow()
	}
	s.wg.Wait()
}

func keys(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	return out
}
