package flowapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kernelgate/kernelgate/internal/flowapi"
)

// These tests run the AdeloopFlow API over real WebSockets against real
// ipykernels on /usr/bin/python3.

type server struct {
	url      string
	sessions *flowapi.Sessions
}

func newServer(t *testing.T, mutate func(*flowapi.Config)) *server {
	t.Helper()
	ts := flowapi.NewTestServer(t, nil, mutate)
	return &server{url: ts.URL, sessions: ts.Sessions}
}

type client struct {
	t *testing.T
	c *websocket.Conn
}

func (s *server) dial(t *testing.T) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	cl := &client{t: t, c: c}
	if m := cl.next(); m["type"] != "connection_established" || m["message"] != "Connected to Python kernel" {
		t.Fatalf("first message %v", m)
	}
	return cl
}

func (c *client) send(v any) {
	c.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, raw)
}

func (c *client) sendRaw(typ websocket.MessageType, raw []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, typ, raw); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one message; every message must be valid JSON (Go's decoder
// rejects NaN and Infinity, as browsers do).
func (c *client) next() map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 60*time.Second)
	defer cancel()
	_, raw, err := c.c.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatalf("invalid JSON from server: %v: %.300s", err, raw)
	}
	return m
}

// until reads messages until one matches, returning all read.
func (c *client) until(match func(map[string]any) bool) []map[string]any {
	c.t.Helper()
	var all []map[string]any
	for {
		m := c.next()
		all = append(all, m)
		if match(m) {
			return all
		}
	}
}

// printed matches once the stdout chunks seen so far contain text: one
// print may arrive as several chunks (the kernel flushes every millisecond).
func printed(text string) func(map[string]any) bool {
	var seen strings.Builder
	return func(m map[string]any) bool {
		if m["type"] == "stream_output" && m["is_last"] == false && m["stream"] == "stdout" {
			seen.WriteString(m["content"].(string))
		}
		return strings.Contains(seen.String(), text)
	}
}

func isType(typ string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == typ }
}

func final(cellID string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		return m["cell_id"] == cellID && (m["type"] == "execution_result" || m["type"] == "execution_error")
	}
}

func types(ms []map[string]any) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprint(m["type"]))
	}
	return out
}

func stdout(ms []map[string]any) string {
	var b strings.Builder
	for _, m := range ms {
		if m["type"] == "stream_output" && m["is_last"] == false && m["stream"] == "stdout" {
			b.WriteString(m["content"].(string))
		}
	}
	return b.String()
}

// gate is a file the test creates to let a cell go on: the cell waits for
// it, so whatever the client receives before creating it was streamed while
// the cell still ran.
func gate(t *testing.T) (path string, open func()) {
	path = filepath.Join(t.TempDir(), "gate")
	return path, func() {
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func waitCode(path string) string {
	return fmt.Sprintf("import os, time\nwhile not os.path.exists(%q): time.sleep(0.01)\n", path)
}

func TestWS_ExecuteSequence(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "x = 41\nprint('hello', x+1)\nx*2", "cell_id": "c1"})
	ms := c.until(final("c1"))
	// execution_start, the printed chunks (one print may come in pieces),
	// the final stream_output, execution_result.
	n := len(ms)
	if got := types(ms); n < 4 || got[0] != "execution_start" || got[n-2] != "stream_output" || got[n-1] != "execution_result" {
		t.Fatalf("sequence %v", got)
	}
	for _, m := range ms[1 : n-2] {
		if m["type"] != "stream_output" || m["is_last"] != false {
			t.Fatalf("between start and end: %v", m)
		}
	}
	if got := stdout(ms); got != "hello 42\n" {
		t.Fatalf("chunks %q", got)
	}
	last := ms[n-2]
	res, _ := last["result"].(map[string]any)
	if last["is_last"] != true || res == nil || res["status"] != "ok" || res["result"] != "82" || res["execution_count"] != 1.0 {
		t.Fatalf("final stream_output %v", last)
	}
	vars, _ := res["variables"].(map[string]any)
	if vars["x"] != 41.0 {
		t.Fatalf("variables %v", res["variables"])
	}
	er := ms[n-1]
	if er["status"] != "ok" || er["stdout"] != "hello 42\n" || er["output"] != "hello 42\n" || er["execution_count"] != 1.0 {
		t.Fatalf("execution_result %v", er)
	}
	var prev float64
	for _, m := range ms[1:] {
		seq, ok := m["seq"].(float64)
		if !ok || seq <= prev {
			t.Fatalf("seq missing or not increasing: %v", m)
		}
		prev = seq
	}
}

func TestWS_StreamsAndPlotsBeforeTheEnd(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	path, open := gate(t)
	code := "import matplotlib.pyplot as plt\nprint('first', flush=True)\nplt.plot([1, 2]); plt.show()\n" + waitCode(path) + "print('second')"
	c.send(map[string]any{"type": "execute", "code": code, "cell_id": "p1"})
	// Both arrive while the cell waits on the gate; a server that sent
	// output only at the end would never send them and the test would time out.
	var sawChunk, sawPlot bool
	first := printed("first\n")
	c.until(func(m map[string]any) bool {
		if first(m) {
			sawChunk = true
		}
		if m["type"] == "display_output" {
			plot, _ := m["plot"].(string)
			sawPlot = strings.HasPrefix(plot, "data:image/png;base64,iVBOR")
		}
		return sawChunk && sawPlot
	})
	open()
	ms := c.until(final("p1"))
	if got := stdout(ms); got != "second\n" {
		t.Fatalf("after the gate: %q", got)
	}
	plots, _ := ms[len(ms)-1]["plots"].([]any)
	if len(plots) != 1 {
		t.Fatalf("final plots %v", ms[len(ms)-1]["plots"])
	}
}

func TestWS_TwoInputs(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "print('before')\na = input('first? ')\nb = input('second? ')\nprint(a, b)", "cell_id": "i1"})
	for _, answer := range []string{"Ada", "Lovelace"} {
		ms := c.until(isType("input_request"))
		req := ms[len(ms)-1]
		if req["cell_id"] != "i1" || req["prompt"] == "" {
			t.Fatalf("input_request %v", req)
		}
		c.send(map[string]any{"type": "provide_input", "input": answer, "original_code": "ignored"})
	}
	ms := c.until(final("i1"))
	end := ms[len(ms)-1]
	if end["status"] != "ok" || !strings.Contains(end["stdout"].(string), "Ada Lovelace\n") ||
		strings.Count(end["stdout"].(string), "before") != 1 {
		t.Fatalf("final %v; the cell must run once and continue in place", end)
	}
	c.send(map[string]any{"type": "provide_input", "input": "late"})
	if m := c.next(); m["type"] != "error" || !strings.Contains(m["error"].(string), "no input() is waiting") {
		t.Fatalf("late input: %v", m)
	}
}

func TestWS_CancelInterruptsAtOnce(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "import time\nprint('sleeping', flush=True)\ntime.sleep(100)", "cell_id": "s1"})
	c.send(map[string]any{"type": "execute", "code": "print('queued')", "cell_id": "s2"})
	c.until(printed("sleeping\n"))
	sent := time.Now()
	c.send(map[string]any{"type": "cancel_execution", "cell_id": "s1"})
	ms := c.until(final("s1"))
	t.Logf("cancel answered in %s", time.Since(sent))
	var cancelled []string
	for _, m := range ms {
		if m["type"] == "execution_cancelled" {
			cancelled = append(cancelled, m["cell_id"].(string))
		}
	}
	if strings.Join(cancelled, ",") != "s1,s2" {
		t.Fatalf("execution_cancelled for %v, want s1 (the reply) then s2 (the dropped queued cell)", cancelled)
	}
	end := ms[len(ms)-1]
	if end["status"] != "error" || !strings.Contains(fmt.Sprint(end["error_details"]), "KeyboardInterrupt") {
		t.Fatalf("final %v", end)
	}
	// The kernel kept its state: it was interrupted, not restarted.
	c.send(map[string]any{"type": "execute", "code": "print(time.time() > 0)", "cell_id": "s3"})
	if got := stdout(c.until(final("s3"))); got != "True\n" {
		t.Fatalf("after cancel: %q", got)
	}
}

func TestWS_CancelOfAStuckCellRestartsTheKernel(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(cfg *flowapi.Config) { cfg.CancelGrace = 300 * time.Millisecond }).dial(t)
	// SIGINT is ignored, so the interrupt cannot stop it (like C code that
	// never checks for signals).
	code := "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nx = 1\nprint('stuck', flush=True)\ntime.sleep(100)"
	c.send(map[string]any{"type": "execute", "code": code, "cell_id": "k1"})
	c.until(printed("stuck\n"))
	c.send(map[string]any{"type": "cancel_execution"})
	ms := c.until(final("k1"))
	ms = append(ms, c.until(func(m map[string]any) bool {
		return m["type"] == "kernel_status" && m["event"] == "restarted" && m["state_lost"] == true
	})...)
	end := ms[0]
	for _, m := range ms {
		if final("k1")(m) {
			end = m
		}
	}
	if end["status"] != "error" || !strings.Contains(fmt.Sprint(end["error_details"]), "KernelDied") {
		t.Fatalf("final %v", end)
	}
	c.send(map[string]any{"type": "execute", "code": "x", "cell_id": "k2"})
	ms = c.until(final("k2"))
	if !strings.Contains(fmt.Sprint(ms[len(ms)-1]["error_details"]), "NameError") {
		t.Fatalf("x after the restart: %v", ms[len(ms)-1])
	}
}

func TestWS_Reset(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "y = 5", "cell_id": "r1"})
	c.until(final("r1"))
	c.send(map[string]any{"type": "reset_kernel"})
	c.until(isType("kernel_reset"))
	c.send(map[string]any{"type": "execute", "code": "y", "cell_id": "r2"})
	ms := c.until(final("r2"))
	if end := ms[len(ms)-1]; !strings.Contains(fmt.Sprint(end["error_details"]), "NameError") || end["execution_count"] != 1.0 {
		t.Fatalf("after reset: %v", end)
	}
}

func TestWS_DatasetsNaNAndBoundedFrames(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	datasets := []map[string]any{
		{"name": "Sales Data-2024", "data": []map[string]any{{"region": "N", "amount": 10, "note": nil}, {"region": "S", "amount": nil, "note": "x"}}},
		{"name": "Données 1", "data": []map[string]any{{"v": 1}}},
		{"name": "broken", "data": "not rows"},
	}
	code := "import pandas as pd, numpy as np\nbig = pd.DataFrame({'a': np.arange(100000), 'b': np.nan})\nnan, inf = float('nan'), float('inf')\n" +
		"print(sorted(f for f in __import__('os').listdir() if f.endswith('.csv')))\nprint(df is sales_data_2024, df2 is données_1, sales_data_2024['amount'].isna().sum())"
	c.send(map[string]any{"type": "execute", "code": code, "cell_id": "d1", "datasets": datasets})
	ms := c.until(final("d1"))
	var dsErr string
	for _, m := range ms {
		if m["type"] == "error" {
			dsErr = fmt.Sprint(m["error"])
		}
	}
	if !strings.Contains(dsErr, "broken") {
		t.Fatalf("no error naming the bad dataset; got %q", dsErr)
	}
	if got := stdout(ms); got != "['Données 1.csv', 'Sales Data-2024.csv', 'dataset1.csv', 'dataset2.csv', 'données_1.csv', 'sales_data_2024.csv']\nTrue True 1\n" {
		t.Fatalf("stdout %q", got)
	}
	end := ms[len(ms)-1]
	raw, _ := json.Marshal(end)
	if len(raw) > 100<<10 {
		t.Fatalf("final message is %d bytes with a 100000-row frame in the namespace; it must stay bounded", len(raw))
	}
	vars := end["variables"].(map[string]any)
	if vars["nan"] != nil || vars["inf"] != nil {
		t.Fatalf("NaN/Infinity must be null: %v %v", vars["nan"], vars["inf"])
	}
	big := vars["big"].(map[string]any)
	if fmt.Sprint(big["shape"]) != "[100000 2]" || big["truncated"] != true {
		t.Fatalf("big = %v", big)
	}
	var names []string
	for _, d := range end["dataframe_variables"].([]any) {
		names = append(names, d.(map[string]any)["name"].(string))
	}
	if !strings.Contains(strings.Join(names, ","), "sales_data_2024") {
		t.Fatalf("dataframe_variables %v", names)
	}
}

func TestWS_ResumeAfterDrop(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t)
	path, open := gate(t)
	code := "for i in range(3): print('early', i, flush=True)\n" + waitCode(path) + "for i in range(3): print('late', i)\n'done'"
	c.send(map[string]any{"type": "execute", "code": code, "cell_id": "z1"})
	var kernelID string
	var lastSeq float64
	early := printed("early 1\n")
	c.until(func(m map[string]any) bool {
		if m["type"] == "execution_start" {
			kernelID = m["kernel_id"].(string)
		}
		if seq, ok := m["seq"].(float64); ok {
			lastSeq = seq
		}
		return early(m)
	})
	c.c.CloseNow() // the network drops
	open()         // the cell finishes while nobody listens

	c2 := s.dial(t)
	c2.send(map[string]any{"type": "resume", "kernel_id": kernelID, "last_seq": lastSeq})
	ms := c2.until(final("z1"))
	want := lastSeq + 1
	for _, m := range ms {
		if m["seq"] != want {
			t.Fatalf("after resume from %v: got seq %v, want %v (no loss, no duplicate)", lastSeq, m["seq"], want)
		}
		want++
	}
	if got := stdout(ms); got != "early 2\nlate 0\nlate 1\nlate 2\n" {
		t.Fatalf("missed output %q", got)
	}
	if ms[len(ms)-1]["result"] != "'done'" {
		t.Fatalf("final %v", ms[len(ms)-1])
	}
	c2.send(map[string]any{"type": "resume", "kernel_id": "nope", "last_seq": 0})
	if m := c2.next(); m["type"] != "error" || !strings.Contains(m["error"].(string), "no session") {
		t.Fatalf("resume of an unknown session: %v", m)
	}
}

func TestWS_BadInputKeepsTheSocket(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(cfg *flowapi.Config) { cfg.MaxMessageBytes = 4096 }).dial(t)
	tests := []struct {
		name string
		typ  websocket.MessageType
		raw  string
		want string
	}{
		{"invalid JSON", websocket.MessageText, "{nope", "invalid JSON"},
		{"binary frame", websocket.MessageBinary, "{}", "binary frames are not supported"},
		{"missing type", websocket.MessageText, `{"code":"1"}`, `no "type" field`},
		{"unknown type", websocket.MessageText, `{"type":"bogus"}`, "Unknown message type: bogus"},
		{"oversize", websocket.MessageText, `{"type":"execute","code":"` + strings.Repeat("x", 10000) + `"}`, "over the 4096-byte limit"},
		{"bad datasets", websocket.MessageText, `{"type":"execute","code":"1","datasets":{"a":1}}`, "must be an array"},
		{"other language", websocket.MessageText, `{"type":"execute","code":"1","language":"r"}`, "not supported"},
		{"resume without position", websocket.MessageText, `{"type":"resume","kernel_id":"x"}`, "needs"},
	}
	for _, tt := range tests {
		c.sendRaw(tt.typ, []byte(tt.raw))
		m := c.next()
		if m["type"] != "error" || !strings.Contains(fmt.Sprint(m["error"]), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, m, tt.want)
		}
	}
	c.send(map[string]any{"type": "ping"})
	if m := c.next(); m["type"] != "pong" {
		t.Fatalf("socket did not survive: %v", m)
	}
}

func TestWS_MagicsAndShell(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "answer = 42\n%who\n!echo from-shell", "cell_id": "m1"})
	ms := c.until(final("m1"))
	if got := stdout(ms); !strings.Contains(got, "answer") || !strings.Contains(got, "from-shell") {
		t.Fatalf("magics output %q", got)
	}
}

func TestWS_NamedSessionSurvivesReconnect(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	c := s.dial(t)
	c.send(map[string]any{"type": "start_kernel_session", "kernel_id": "notebook-1"})
	c.until(isType("kernel_session_started"))
	c.send(map[string]any{"type": "execute", "code": "kept = 'yes'", "cell_id": "n1"})
	c.until(final("n1"))
	c.c.Close(websocket.StatusNormalClosure, "page reload")

	c2 := s.dial(t)
	c2.send(map[string]any{"type": "start_kernel_session", "kernel_id": "notebook-1"})
	c2.until(isType("kernel_session_started"))
	c2.send(map[string]any{"type": "execute", "code": "print(kept)", "cell_id": "n2"})
	if got := stdout(c2.until(final("n2"))); got != "yes\n" {
		t.Fatalf("after reattach: %q", got)
	}
}

func TestWS_ConnectionsRunInParallel(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	a, b := s.dial(t), s.dial(t)
	path, open := gate(t)
	a.send(map[string]any{"type": "execute", "code": waitCode(path) + "print('a done')", "cell_id": "a1"})
	a.until(isType("execution_start"))
	// b runs in its own kernel while a's cell blocks.
	b.send(map[string]any{"type": "execute", "code": "print('b done')", "cell_id": "b1"})
	if got := stdout(b.until(final("b1"))); got != "b done\n" {
		t.Fatalf("b: %q", got)
	}
	open()
	if got := stdout(a.until(final("a1"))); got != "a done\n" {
		t.Fatalf("a: %q", got)
	}
}

func TestWS_KernelDeathWhileIdleIsReported(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "import os; print(os.getpid())", "cell_id": "d1"})
	pid, err := strconv.Atoi(strings.TrimSpace(stdout(c.until(final("d1")))))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ms := c.until(func(m map[string]any) bool { return m["type"] == "kernel_status" && m["event"] == "restarted" })
	var died map[string]any
	for _, m := range ms {
		if m["type"] == "kernel_status" && m["event"] == "died" {
			died = m
		}
	}
	if died == nil || !strings.Contains(died["reason"].(string), "killed by SIGKILL, likely out of memory") || died["state_lost"] != true {
		t.Fatalf("died message %v", died)
	}
	c.send(map[string]any{"type": "execute", "code": "print('alive')", "cell_id": "d2"})
	if got := stdout(c.until(final("d2"))); got != "alive\n" {
		t.Fatalf("after restart: %q", got)
	}
}

func TestWS_CancelOfOneQueuedCell(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	path, open := gate(t)
	c.send(map[string]any{"type": "execute", "code": waitCode(path) + "print('one')", "cell_id": "q1"})
	c.send(map[string]any{"type": "execute", "code": "print('two')", "cell_id": "q2"})
	c.send(map[string]any{"type": "execute", "code": "print('three')", "cell_id": "q3"})
	c.until(isType("execution_start"))
	c.send(map[string]any{"type": "cancel_execution", "cell_id": "q2"})
	if m := c.until(isType("execution_cancelled")); m[len(m)-1]["cell_id"] != "q2" {
		t.Fatalf("cancel reply %v", m[len(m)-1])
	}
	open()
	ms := c.until(final("q3"))
	var ran []string
	for _, m := range ms {
		if m["type"] == "execution_start" {
			ran = append(ran, m["cell_id"].(string))
		}
	}
	if strings.Join(ran, ",") != "q3" || !strings.Contains(stdout(ms), "three") || strings.Contains(stdout(ms), "two") {
		t.Fatalf("after cancelling q2: started %v, output %q", ran, stdout(ms))
	}
}

// Origins: the server's own host and loopback pages are let in, others are
// refused at the handshake.
func TestWS_OriginCheck(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"http://localhost:3000", true},
		{"http://localhost", true},
		{"http://127.0.0.1:5173", true},
		{"http://[::1]:3000", true},
		{"https://evil.example", false},
		{"http://localhost.evil.example", false},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/ws",
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {tt.origin}}})
		cancel()
		if tt.ok != (err == nil) {
			t.Errorf("origin %s: err = %v, want allowed=%v", tt.origin, err, tt.ok)
		}
		if err == nil {
			c.CloseNow()
		} else if resp != nil && resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %s: status %d, want 403", tt.origin, resp.StatusCode)
		}
	}
}

// A cell cancelled while it waits in input() leaves nothing waiting: a
// late provide_input is refused instead of vanishing.
func TestWS_CancelInInputClearsThePrompt(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "input('name? ')", "cell_id": "w1"})
	c.until(isType("input_request"))
	c.send(map[string]any{"type": "cancel_execution"})
	c.until(final("w1"))
	c.send(map[string]any{"type": "provide_input", "input": "late"})
	if m := c.until(isType("error")); !strings.Contains(m[len(m)-1]["error"].(string), "no input() is waiting") {
		t.Fatalf("late input after cancel: %v", m[len(m)-1])
	}
}

func TestWS_ExecutionTimeoutStopsTheCell(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(cfg *flowapi.Config) { cfg.ExecutionTimeout = 500 * time.Millisecond }).dial(t)
	c.send(map[string]any{"type": "execute", "code": "import time\nkept = 1\ntime.sleep(100)", "cell_id": "t1"})
	ms := c.until(final("t1"))
	var notice bool
	for _, m := range ms {
		if m["type"] == "error" && strings.Contains(fmt.Sprint(m["error"]), "timed out after 500ms") {
			notice = true
		}
	}
	if end := ms[len(ms)-1]; !notice || !strings.Contains(fmt.Sprint(end["error_details"]), "KeyboardInterrupt") {
		t.Fatalf("notice %v, final %v", notice, end)
	}
	c.send(map[string]any{"type": "execute", "code": "print(kept)", "cell_id": "t2"})
	if got := stdout(c.until(final("t2"))); got != "1\n" {
		t.Fatalf("after the timeout the kernel keeps its state: %q", got)
	}
}

// A request may ask for a shorter limit than the server's, never a longer one.
func TestWS_PerRequestTimeoutIsBounded(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(cfg *flowapi.Config) { cfg.ExecutionTimeout = 10 * time.Second }).dial(t)
	c.send(map[string]any{"type": "execute", "code": "import time\ntime.sleep(100)", "cell_id": "r1", "timeout": 0.3})
	ms := c.until(final("r1"))
	var notice string
	for _, m := range ms {
		if m["type"] == "error" {
			notice = fmt.Sprint(m["error"])
		}
	}
	if !strings.Contains(notice, "timed out after 300ms") {
		t.Fatalf("notice %q", notice)
	}
}

func TestWS_InputTimeoutStopsAnAbandonedPrompt(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(cfg *flowapi.Config) { cfg.InputTimeout = 300 * time.Millisecond }).dial(t)
	c.send(map[string]any{"type": "execute", "code": "kept = 2\nname = input('name? ')", "cell_id": "w1"})
	ms := c.until(final("w1"))
	var notice string
	for _, m := range ms {
		if m["type"] == "error" {
			notice = fmt.Sprint(m["error"])
		}
	}
	if !strings.Contains(notice, "input() got no answer within 300ms") {
		t.Fatalf("notice %q", notice)
	}
	c.send(map[string]any{"type": "execute", "code": "print(kept)", "cell_id": "w2"})
	if got := stdout(c.until(final("w2"))); got != "2\n" {
		t.Fatalf("after the timeout: %q", got)
	}
}

// The variables come with every result: evaluated with the cell when it
// succeeds, asked for afterwards when it fails (the kernel skips user
// expressions then).
func TestWS_VariablesAfterSuccessAndFailure(t *testing.T) {
	t.Parallel()
	c := newServer(t, nil).dial(t)
	c.send(map[string]any{"type": "execute", "code": "a = 1", "cell_id": "ok"})
	ms := c.until(final("ok"))
	if vars, _ := ms[len(ms)-1]["variables"].(map[string]any); vars["a"] != 1.0 {
		t.Fatalf("variables after a successful cell: %v", ms[len(ms)-1]["variables"])
	}
	c.send(map[string]any{"type": "execute", "code": "b = 2\n1/0", "cell_id": "bad"})
	ms = c.until(final("bad"))
	end := ms[len(ms)-1]
	vars, _ := end["variables"].(map[string]any)
	if end["status"] != "error" || vars["a"] != 1.0 || vars["b"] != 2.0 {
		t.Fatalf("after a failing cell: status %v, variables %v; want error and both a and b", end["status"], end["variables"])
	}
}
