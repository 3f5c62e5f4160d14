package flowapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/flowapi"
)

// These tests drive the AdeloopFlow HTTP routes (and the NDJSON stream and
// the monitoring socket) over real HTTP against real ipykernels, with the
// server and helpers of ws_test.go.

// reply is one HTTP answer: its status code, headers and JSON body.
type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    []byte
}

// request sends one request with a deadline and decodes a JSON answer. body
// is sent as is when it is a string or []byte, else JSON-encoded; session,
// when set, goes in X-Session-ID.
func (s *server) request(t *testing.T, method, path, session string, body any) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	return s.requestCtx(t, ctx, method, path, session, body)
}

func (s *server) requestCtx(t *testing.T, ctx context.Context, method, path, session string, body any) reply {
	t.Helper()
	resp, err := s.send(ctx, method, path, session, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	r := reply{code: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %d with a body that is not a JSON object: %v: %.300s", method, path, resp.StatusCode, err, raw)
	}
	return r
}

func (s *server) send(ctx context.Context, method, path, session string, body any) (*http.Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case json.RawMessage:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if session != "" {
		req.Header.Set("X-Session-ID", session)
	}
	return http.DefaultClient.Do(req)
}

// exec posts code to /api/execute and requires a 200.
func (s *server) exec(t *testing.T, session string, body any) map[string]any {
	t.Helper()
	if code, ok := body.(string); ok {
		body = map[string]any{"code": code}
	}
	r := s.request(t, "POST", "/api/execute", session, body)
	if r.code != http.StatusOK {
		t.Fatalf("POST /api/execute: %d %s", r.code, r.raw)
	}
	return r.body
}

// wantFields fails unless every key of want is in got with an equal value
// (numbers decode as float64).
func wantFields(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	sub := map[string]any{}
	for k := range want {
		if v, ok := got[k]; ok {
			sub[k] = v
		}
	}
	if diff := cmp.Diff(want, sub); diff != "" {
		t.Errorf("%s (-want +got):\n%s\nwhole body: %v", what, diff, got)
	}
}

func obj(t *testing.T, what string, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T %v, want an object", what, v, v)
	}
	return m
}

func TestHTTP_ServerBasics(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)

	r := s.request(t, "GET", "/", "", nil)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /: %d %q", r.code, r.header.Get("Content-Type"))
	}
	version, _ := r.body["version"].(string)
	if r.body["message"] != "HRatlas Backend API" || r.body["status"] != "running" || version == "" {
		t.Errorf("GET /: %v", r.body)
	}

	r = s.request(t, "GET", "/health", "", nil)
	if r.code != 200 || r.body["status"] != "healthy" {
		t.Fatalf("GET /health: %d %v", r.code, r.body)
	}
	health := obj(t, "health", r.body["health"])
	checks := obj(t, "health.checks", health["checks"])
	if health["status"] != "healthy" || len(checks) == 0 {
		t.Errorf("GET /health: health = %v", health)
	}
	for name, c := range checks {
		if obj(t, "check "+name, c)["status"] != "ok" {
			t.Errorf("check %s: %v", name, c)
		}
	}
	if _, ok := r.body["uptime"].(float64); !ok {
		t.Errorf("GET /health: uptime %v", r.body["uptime"])
	}

	r = s.request(t, "GET", "/ping", "", nil)
	ts, ok := r.body["timestamp"].(float64)
	if r.code != 200 || r.body["status"] != "pong" || !ok || ts < 1e9 {
		t.Errorf("GET /ping: %d %v", r.code, r.body)
	}

	r = s.request(t, "GET", "/backend-status", "", nil)
	if _, ok := r.body["uptime"].(float64); r.code != 200 || r.body["status"] != "online" ||
		r.body["service"] != "HRatlas Backend API" || r.body["version"] != version || !ok {
		t.Errorf("GET /backend-status: %d %v", r.code, r.body)
	}

	r = s.request(t, "GET", "/ws-test", "", nil)
	endpoint, _ := r.body["endpoint"].(string)
	if r.code != 200 || r.body["websocket_available"] != true || r.body["status"] != "ready" || !strings.HasPrefix(endpoint, "/ws") {
		t.Fatalf("GET /ws-test: %d %v", r.code, r.body)
	}
	// The endpoint it names really takes a WebSocket.
	endpoint = strings.ReplaceAll(endpoint, "{client_id}", "ws-test-client")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+endpoint, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	defer c.CloseNow()
	cl := &client{t: t, c: c}
	if m := cl.next(); m["type"] != "connection_established" {
		t.Fatalf("%s: first message %v", endpoint, m)
	}
}

func TestHTTP_Execute(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	code := "x = 5\nprint('hi', x)\nx*2"
	want := map[string]any{
		"status": "ok", "output": "hi 5\n", "result": "10", "execution_count": 1.0, "error": "",
		"plots": []any{}, "data": nil, "plot_count": 0.0, "plotly_count": 0.0, "total_plots": 0.0,
	}
	for _, path := range []string{"/api/execute", "/api/execute-jupyter"} {
		// Each route in a fresh session, so each is execution 1.
		r := s.request(t, "POST", path, "exec"+path, map[string]any{"code": code})
		if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("POST %s: %d %q %s", path, r.code, r.header.Get("Content-Type"), r.raw)
		}
		// The old backend evaluated the last line a second time: the print
		// must show once.
		wantFields(t, "POST "+path, r.body, want)
	}
}

func TestHTTP_TableAndNumpyResults(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	r := s.exec(t, "", "import pandas as pd\npd.DataFrame({'a': [1, None]})")
	if r["status"] != "ok" {
		t.Fatalf("DataFrame cell: %v", r)
	}
	records := []any{map[string]any{"a": 1.0}, map[string]any{"a": nil}}
	if diff := cmp.Diff(records, r["result"]); diff != "" {
		t.Errorf("DataFrame result (-want +got):\n%s", diff)
	}
	table := obj(t, "table_result", r["table_result"])
	wantFields(t, "table_result", table, map[string]any{
		"columns": []any{map[string]any{"key": "a", "label": "a"}},
		"data":    records,
		"shape":   []any{2.0, 1.0},
	})

	for _, tc := range []struct{ code, want string }{
		{"import numpy as np\nnp.float64(2.5)", "2.5"},
		{"np.int64(7)", "7"},
		{"float('nan')", "nan"},
	} {
		r := s.exec(t, "", tc.code)
		if r["status"] != "ok" || r["result"] != tc.want {
			t.Errorf("%q: status %v result %#v, want %q", tc.code, r["status"], r["result"], tc.want)
		}
	}
}

func TestHTTP_ExecuteError(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	r := s.exec(t, "", "print('before')\n1/0\nprint('after')")
	wantFields(t, "error cell", r, map[string]any{"status": "error", "error": "division by zero", "output": "before\n", "result": nil})
	details := obj(t, "error_details", r["error_details"])
	tb := fmt.Sprint(details["traceback"])
	if details["ename"] != "ZeroDivisionError" || details["evalue"] != "division by zero" || !strings.Contains(tb, "ZeroDivisionError") ||
		strings.Contains(tb, "\x1b[") {
		t.Errorf("error_details %v", details)
	}
	// The session still works after the error.
	if r := s.exec(t, "", "print('still here')"); r["status"] != "ok" || r["output"] != "still here\n" {
		t.Errorf("after the error: %v", r)
	}
}

func TestHTTP_Input(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	code := "print('start')\nn = input('Your name: ')\nprint('Hi', n)"

	r := s.exec(t, "in", code)
	out, _ := r["output"].(string)
	if r["status"] != "input_required" || !strings.HasSuffix(out, "Your name: ") || r["input_prompt"] != "Your name: " {
		t.Fatalf("first run: %v", r)
	}
	c := s.request(t, "POST", "/api/python/continue", "in", map[string]any{"input": "Bob"})
	out, _ = c.body["output"].(string)
	// The answer carries the whole cell's output, which ran once: the cell
	// continued in place rather than running again.
	if c.code != 200 || c.body["status"] != "ok" || !strings.Contains(out, "Hi Bob\n") || strings.Count(out, "start") != 1 {
		t.Fatalf("continue: %d %v", c.code, c.body)
	}

	// A second prompt, answered the other way: /api/execute with user_input.
	if r := s.exec(t, "in", code); r["status"] != "input_required" {
		t.Fatalf("second run: %v", r)
	}
	r = s.exec(t, "in", map[string]any{"code": code, "user_input": "Ada"})
	if out, _ := r["output"].(string); r["status"] != "ok" || !strings.Contains(out, "Hi Ada") || strings.Count(out, "Hi ") != 1 {
		t.Fatalf("user_input continuation: %v", r)
	}
	if r := s.exec(t, "in", "print(n)"); r["output"] != "Ada\n" {
		t.Errorf("n after the continuation: %v", r)
	}

	// Nothing is waiting now.
	for _, tc := range []struct {
		path string
		body any
	}{
		{"/api/python/continue", map[string]any{"input": "late"}},
		{"/api/execute", map[string]any{"code": code, "user_input": "late"}},
	} {
		r := s.request(t, "POST", tc.path, "in", tc.body)
		if msg, _ := r.body["error"].(string); r.code != http.StatusConflict || r.body["status"] != "error" || !strings.Contains(msg, "waiting for input") {
			t.Errorf("POST %s with nothing pending: %d %v", tc.path, r.code, r.body)
		}
	}
	// A session that never ran anything has nothing to answer either.
	if r := s.request(t, "POST", "/api/python/continue", "fresh", map[string]any{"input": "x"}); r.code != http.StatusConflict {
		t.Errorf("continue in a fresh session: %d %v", r.code, r.body)
	}
}

func TestHTTP_ContinueWhileACellRunsWithoutInput(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	path, open := gate(t)
	marker := filepath.Join(t.TempDir(), "started")
	done := make(chan map[string]any, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		resp, err := s.send(ctx, "POST", "/api/execute", "busy", map[string]any{
			"code": fmt.Sprintf("open(%q, 'w').close()\n", marker) + waitCode(path) + "print('released')"})
		if err != nil {
			done <- map[string]any{"transport error": err.Error()}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		done <- m
	}()
	waitFile(t, marker)
	r := s.request(t, "POST", "/api/python/continue", "busy", map[string]any{"input": "x"})
	if msg, _ := r.body["error"].(string); r.code != http.StatusConflict || !strings.Contains(msg, "no input() is waiting") {
		t.Errorf("continue while the cell runs without input(): %d %v", r.code, r.body)
	}
	open()
	if m := <-done; m["status"] != "ok" || m["output"] != "released\n" {
		t.Fatalf("the running cell: %v", m)
	}
}

// waitFile waits (with a deadline) until a cell has created path.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cell did not create %s within 60s", path)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestHTTP_Sessions(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	if r := s.exec(t, "a", "secret = 'only in a'"); r["status"] != "ok" {
		t.Fatalf("a: %v", r)
	}
	r := s.exec(t, "b", "secret")
	if d, _ := r["error_details"].(map[string]any); r["status"] != "error" || d["ename"] != "NameError" {
		t.Errorf("b sees a's variable: %v", r)
	}
	// The body's session_id names the same session as the header.
	if r := s.exec(t, "", map[string]any{"code": "print(secret)", "session_id": "a"}); r["output"] != "only in a\n" {
		t.Errorf("session_id a: %v", r)
	}
	// The default session keeps its state between requests.
	if r := s.exec(t, "", "kept = 41"); r["status"] != "ok" {
		t.Fatalf("default session: %v", r)
	}
	if r := s.exec(t, "", "print(kept + 1)"); r["status"] != "ok" || r["output"] != "42\n" || r["execution_count"] != 2.0 {
		t.Errorf("default session, second request: %v", r)
	}
}

func TestHTTP_VariableContext(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	r := s.exec(t, "vc", map[string]any{"code": "print(k, cfg['deep'][1])", "variableContext": map[string]any{"k": 3, "cfg": map[string]any{"deep": []any{1, "two"}}}})
	if r["status"] != "ok" || r["output"] != "3 two\n" {
		t.Fatalf("variableContext: %v", r)
	}
	// Bad keys are skipped, the good one is set and the cell still runs.
	r = s.exec(t, "vc", map[string]any{
		"code":            "print(good, '_x' in globals(), 'not valid' in globals())",
		"variableContext": map[string]any{"_x": 1, "not valid": 2, "good": "yes"},
	})
	if r["status"] != "ok" || r["output"] != "yes False False\n" {
		t.Fatalf("variableContext with bad keys: %v", r)
	}
	// The HTTP answer reports each skipped key...
	warnings := fmt.Sprint(r["warnings"])
	for _, name := range []string{"'_x'", "'not valid'"} {
		if !strings.Contains(warnings, "variable "+name+" was not set") {
			t.Errorf("no warning about %s in the answer; warnings = %v", name, r["warnings"])
		}
	}
	if strings.Contains(warnings, "'good'") {
		t.Errorf("a warning about the good key: %v", r["warnings"])
	}
	// ...and so does the session's journal, for WebSocket clients following it.
	errs := sessionErrors(t, s, "vc")
	for _, name := range []string{"'_x'", "'not valid'"} {
		if !strings.Contains(errs, "variable "+name+" was not set") {
			t.Errorf("no error about %s in the session; got %q", name, errs)
		}
	}
}

// sessionErrors replays a session's journal over /ws (resume from 0) and
// returns the text of its error messages up to now.
func sessionErrors(t *testing.T, s *server, session string) string {
	t.Helper()
	ss, ok := s.sessions.Lookup("tester", session)
	if !ok {
		t.Fatalf("no session %q", session)
	}
	last := ss.Last()
	c := s.dial(t)
	c.send(map[string]any{"type": "resume", "kernel_id": session, "last_seq": 0})
	var errs []string
	c.until(func(m map[string]any) bool {
		if m["type"] == "error" {
			errs = append(errs, fmt.Sprint(m["error"]))
		}
		seq, _ := m["seq"].(float64)
		return uint64(seq) >= last
	})
	return strings.Join(errs, "\n")
}

func TestHTTP_Datasets(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	// Raw JSON, so the columns keep the client's order.
	r := s.exec(t, "", json.RawMessage(`{
		"code": "print(df is sales_data_2024, len(df), int(sales_data_2024['amount'].isna().sum()), list(df.columns))",
		"datasets": [
			{"name": "Sales Data-2024", "data": [{"region": "N", "amount": 10}, {"region": "S", "amount": null}]},
			{"name": "broken", "data": "not rows"}
		]}`))
	if r["status"] != "ok" || r["output"] != "True 2 1 ['region', 'amount']\n" {
		t.Fatalf("datasets: %v", r)
	}
	if w := fmt.Sprint(r["warnings"]); !strings.Contains(w, "'broken'") || strings.Contains(w, "Sales") {
		t.Errorf("warnings %v; want one about the broken dataset only", r["warnings"])
	}
	// Datasets stay for later requests of the session.
	if r := s.exec(t, "", "print(df1['region'].tolist())"); r["output"] != "['N', 'S']\n" {
		t.Errorf("df1 later: %v", r)
	}
}

func TestHTTP_ExecutePipeline(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	r := s.request(t, "POST", "/api/execute-pipeline", "pipe", map[string]any{
		"code": "print(df is input_data, df['x'].sum(), src_a['v'].tolist(), threshold)\ndf['x'].max()",
		"input_data": []any{
			map[string]any{"x": 1}, map[string]any{"x": 2},
		},
		"all_source_data": []any{
			map[string]any{"name": "Src A", "data": []any{map[string]any{"v": "p"}, map[string]any{"v": "q"}}},
		},
		"variables": map[string]any{"threshold": 0.5},
	})
	if r.code != 200 {
		t.Fatalf("execute-pipeline: %d %s", r.code, r.raw)
	}
	wantFields(t, "execute-pipeline", r.body, map[string]any{
		"status": "ok", "output": "True 3 ['p', 'q'] 0.5\n", "result": "2", "error": "",
	})
	// Without input_data the code still runs.
	r = s.request(t, "POST", "/api/execute-pipeline", "pipe2", map[string]any{"code": "print('alone')", "input_data": []any{}})
	if r.code != 200 || r.body["status"] != "ok" || r.body["output"] != "alone\n" {
		t.Errorf("pipeline without input: %d %v", r.code, r.body)
	}
	r = s.request(t, "POST", "/api/execute-pipeline", "pipe2", map[string]any{"input_data": []any{}})
	if r.code != http.StatusUnprocessableEntity {
		t.Errorf("pipeline without code: %d %v", r.code, r.body)
	}
}

func TestHTTP_VariablesStatusClearReset(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	const sess = "state"

	r := s.request(t, "GET", "/api/python/status", sess, nil)
	info := obj(t, "status data[0]", r.body["data"].([]any)[0])
	if r.code != 200 || r.body["status"] != "success" || info["status"] != "active" || info["variables_count"] != 0.0 {
		t.Fatalf("status before any cell: %d %v", r.code, r.body)
	}

	if r := s.exec(t, sess, "v = 1\nimport pandas as pd\nd = pd.DataFrame({'a': range(1000)})"); r["status"] != "ok" {
		t.Fatalf("setup: %v", r)
	}
	r = s.request(t, "GET", "/api/python/variables", sess, nil)
	if r.code != 200 || r.body["status"] != "success" {
		t.Fatalf("variables: %d %v", r.code, r.body)
	}
	data, _ := r.body["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("variables data %v", r.body["data"])
	}
	vars := obj(t, "variables data[0]", data[0])
	if vars["v"] != 1.0 {
		t.Errorf("v = %v", vars["v"])
	}
	if _, ok := vars["pd"]; ok {
		t.Errorf("modules must not be listed: %v", vars["pd"])
	}
	d := obj(t, "d", vars["d"])
	rows, _ := d["data"].([]any)
	if fmt.Sprint(d["shape"]) != "[1000 1]" || d["truncated"] != true || len(rows) == 0 || len(rows) > 100 {
		t.Errorf("d = shape %v truncated %v with %d rows; want [1000 1], truncated, a bounded preview", d["shape"], d["truncated"], len(rows))
	}
	if len(r.raw) > 64<<10 {
		t.Errorf("variables answer is %d bytes; it must stay bounded", len(r.raw))
	}

	r = s.request(t, "GET", "/api/python/status", sess, nil)
	info = obj(t, "status data[0]", r.body["data"].([]any)[0])
	wantFields(t, "status", info, map[string]any{"status": "active", "execution_count": 1.0, "variables_count": 2.0, "kernel_id": sess})

	r = s.request(t, "POST", "/api/python/clear-variables", sess, nil)
	if r.code != 200 || r.body["status"] != "success" || r.body["output"] != "All user-defined variables cleared successfully" {
		t.Fatalf("clear-variables: %d %v", r.code, r.body)
	}
	r = s.request(t, "GET", "/api/python/variables", sess, nil)
	if got := r.body["data"].([]any)[0]; r.code != 200 || len(obj(t, "variables after clear", got)) != 0 {
		t.Errorf("variables after clear: %v", got)
	}
	if r := s.exec(t, sess, "v"); r["status"] != "error" {
		t.Errorf("v after clear: %v", r)
	}

	if r := s.exec(t, sess, "w = 2"); r["status"] != "ok" {
		t.Fatalf("w: %v", r)
	}
	r = s.request(t, "POST", "/api/python/reset", sess, nil)
	wantFields(t, "reset", r.body, map[string]any{"status": "success", "output": "Python kernel reset successfully", "data": []any{}, "plots": []any{}})
	if r.code != 200 {
		t.Fatalf("reset: %d", r.code)
	}
	r2 := s.exec(t, sess, "w")
	if d, _ := r2["error_details"].(map[string]any); r2["status"] != "error" || d["ename"] != "NameError" || r2["execution_count"] != 1.0 {
		t.Errorf("w after reset: %v", r2)
	}
	// Reset of a session whose kernel never started is fine too.
	if r := s.request(t, "POST", "/api/python/reset", "never-started", nil); r.code != 200 || r.body["status"] != "success" {
		t.Errorf("reset of an idle session: %d %v", r.code, r.body)
	}
}

func TestHTTP_BadRequests(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(cfg *flowapi.Config) { cfg.MaxMessageBytes = 4096 })
	big := `{"code":"` + strings.Repeat("x", 10000) + `"}`
	for _, path := range []string{"/api/execute", "/api/execute-jupyter", "/api/execute-pipeline", "/api/stream"} {
		for _, tc := range []struct {
			name string
			body string
			code int
			want string
		}{
			{"invalid JSON", "{nope", http.StatusBadRequest, "invalid JSON"},
			{"wrong type", `{"code": 5}`, http.StatusBadRequest, "invalid JSON"},
			{"missing code", `{"datasets": []}`, http.StatusUnprocessableEntity, `"code" is required`},
			{"empty body", ``, http.StatusUnprocessableEntity, `"code" is required`},
			{"oversize", big, http.StatusRequestEntityTooLarge, "4096-byte limit"},
		} {
			r := s.request(t, "POST", path, "", tc.body)
			msg, _ := r.body["error"].(string)
			if r.code != tc.code || r.body["status"] != "error" || !strings.Contains(msg, tc.want) {
				t.Errorf("%s %s: %d %v; want %d with an error containing %q", path, tc.name, r.code, r.body, tc.code, tc.want)
			}
		}
	}
	if r := s.request(t, "POST", "/api/python/continue", "", "{nope"); r.code != http.StatusBadRequest {
		t.Errorf("continue with invalid JSON: %d %v", r.code, r.body)
	}
	// Nothing was run by any of these.
	if _, ok := s.sessions.Lookup("tester", "http"); ok {
		t.Errorf("a rejected request opened a session")
	}
}

// ndjson reads an NDJSON answer of /api/stream line by line.
type ndjson struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

// stream posts body to /api/stream; the answer is read under ctx.
func (s *server) stream(t *testing.T, ctx context.Context, session string, body any) *ndjson {
	t.Helper()
	resp, err := s.send(ctx, "POST", "/api/stream", session, body)
	if err != nil {
		t.Fatalf("POST /api/stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /api/stream: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &ndjson{t: t, resp: resp, sc: sc}
}

// next reads one event; every line must be a JSON object.
func (n *ndjson) next() map[string]any {
	n.t.Helper()
	if !n.sc.Scan() {
		n.t.Fatalf("the stream ended before its end event: %v", n.sc.Err())
	}
	var ev map[string]any
	if err := json.Unmarshal(n.sc.Bytes(), &ev); err != nil {
		n.t.Fatalf("invalid NDJSON line: %v: %.300s", err, n.sc.Bytes())
	}
	return ev
}

// rest reads the events up to and including end, then requires the body
// to be over.
func (n *ndjson) rest() []map[string]any {
	n.t.Helper()
	var evs []map[string]any
	for {
		ev := n.next()
		evs = append(evs, ev)
		if ev["event"] == "end" {
			break
		}
	}
	if n.sc.Scan() {
		n.t.Fatalf("a line after the end event: %s", n.sc.Bytes())
	}
	return evs
}

func events(evs []map[string]any) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprint(ev["event"]))
	}
	return out
}

// joinStreams merges consecutive stdout (or stderr) events into one: the
// kernel may send one print as several chunks ("a", then "\n").
func joinStreams(evs []map[string]any) []map[string]any {
	var out []map[string]any
	for _, ev := range evs {
		if n := len(out); n > 0 && (ev["event"] == "stdout" || ev["event"] == "stderr") && out[n-1]["event"] == ev["event"] {
			out[n-1] = map[string]any{"event": ev["event"], "text": fmt.Sprint(out[n-1]["text"], ev["text"])}
			continue
		}
		out = append(out, ev)
	}
	return out
}

// readStdout reads events until the stdout read so far is want; any other
// event than start or stdout first is a failure.
func (n *ndjson) readStdout(want string) []map[string]any {
	n.t.Helper()
	var evs []map[string]any
	var text strings.Builder
	for text.String() != want {
		ev := n.next()
		evs = append(evs, ev)
		switch ev["event"] {
		case "start":
		case "stdout":
			text.WriteString(fmt.Sprint(ev["text"]))
			if !strings.HasPrefix(want, text.String()) {
				n.t.Fatalf("stdout %q, want %q", text.String(), want)
			}
		default:
			n.t.Fatalf("event %v while waiting for stdout %q; read %v", ev, want, evs)
		}
	}
	return evs
}

func TestHTTP_StreamEvents(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	evs := joinStreams(s.stream(t, ctx, "st", map[string]any{"code": "print('a'); 1+1"}).rest())
	if got := strings.Join(events(evs), ","); got != "start,stdout,result,end" {
		t.Fatalf("events %s: %v", got, evs)
	}
	if id, _ := evs[0]["cell_id"].(string); !strings.HasPrefix(id, "stream-") || evs[0]["kernel_id"] != "st" {
		t.Errorf("start %v", evs[0])
	}
	if evs[1]["text"] != "a\n" {
		t.Errorf("stdout %v", evs[1])
	}
	if evs[2]["value"] != "2" || evs[2]["execution_count"] != 1.0 {
		t.Errorf("result %v", evs[2])
	}
	if evs[3]["status"] != "ok" {
		t.Errorf("end %v", evs[3])
	}

	evs = joinStreams(s.stream(t, ctx, "st", map[string]any{"code": "import sys\nprint('x', flush=True)\nprint('warn', file=sys.stderr, flush=True)\n1/0"}).rest())
	if got := strings.Join(events(evs), ","); got != "start,stdout,stderr,error,end" {
		t.Fatalf("error run: events %s: %v", got, evs)
	}
	e := evs[3]
	if e["ename"] != "ZeroDivisionError" || e["evalue"] != "division by zero" || !strings.Contains(fmt.Sprint(e["traceback"]), "ZeroDivisionError") {
		t.Errorf("error event %v", e)
	}
	if evs[1]["text"] != "x\n" || evs[2]["text"] != "warn\n" || evs[4]["status"] != "error" {
		t.Errorf("stdout %v, stderr %v, end %v", evs[1], evs[2], evs[4])
	}

	// Datasets load for the stream too.
	evs = s.stream(t, ctx, "st", map[string]any{"code": "len(df)", "datasets": []any{map[string]any{"name": "t", "data": []any{map[string]any{"a": 1}}}}}).rest()
	if r := evs[len(evs)-2]; r["event"] != "result" || r["value"] != "1" {
		t.Errorf("stream with datasets: %v", evs)
	}
}

func TestHTTP_StreamIsNotBatched(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	path, open := gate(t)
	code := "import time\nprint('line 0', flush=True)\n" + waitCode(path) +
		"print('line 1', flush=True)\ntime.sleep(0.2)\nprint('line 2', flush=True)\n'done'"
	n := s.stream(t, ctx, "", map[string]any{"code": code})
	// The first line arrives while the cell waits on the gate, before any
	// end: a server that answered only at the end would never send it, and
	// the read would hit the deadline.
	before := n.readStdout("line 0\n")
	open()
	after := n.rest()
	var text strings.Builder
	stdouts := 0
	for _, ev := range append(before, after...) {
		if ev["event"] == "stdout" {
			stdouts++
			text.WriteString(ev["text"].(string))
		}
	}
	if text.String() != "line 0\nline 1\nline 2\n" || stdouts < 2 {
		t.Fatalf("%d stdout events with %q; want at least 2 events with every line", stdouts, text.String())
	}
	// Lines 1 and 2, 0.2 s apart, come as separate events too.
	for _, ev := range after {
		if t1, _ := ev["text"].(string); strings.Contains(t1, "line 1") && strings.Contains(t1, "line 2") {
			t.Errorf("lines printed 0.2 s apart came in one event: %v", ev)
		}
	}
	end := after[len(after)-1]
	if res := after[len(after)-2]; res["event"] != "result" || res["value"] != "'done'" || end["status"] != "ok" {
		t.Fatalf("last events %v %v", res, end)
	}
}

func TestHTTP_StreamDisconnectInterruptsTheRun(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	path, _ := gate(t) // never opened
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	n := s.stream(t, ctx, "gone", map[string]any{"code": "keep = 'kept'\nprint('waiting', flush=True)\n" + waitCode(path)})
	start := n.next()
	cellID, _ := start["cell_id"].(string)
	if start["event"] != "start" || cellID == "" {
		t.Fatalf("first event %v", start)
	}
	n.readStdout("waiting\n")
	cancel() // the client goes away mid-run

	// At once, the next cell of the session: it would wait behind the
	// blocked cell until the deadline if the run went on. It sees the
	// blocked cell's state, so the kernel was not restarted.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel2()
	r := s.requestCtx(t, ctx2, "POST", "/api/execute", "gone", map[string]any{"code": "print(keep)"})
	if r.code != 200 || r.body["status"] != "ok" || r.body["output"] != "kept\n" {
		t.Fatalf("after the disconnect: %d %v", r.code, r.body)
	}
	// The run ended with the interrupt.
	end := cellEnd(t, s, "gone", func(id string) bool { return id == cellID })
	if !strings.Contains(fmt.Sprint(end["error_details"]), "KeyboardInterrupt") {
		t.Fatalf("the disconnected run ended with %v", end)
	}
}

func TestHTTP_ExecuteDisconnectInterruptsTheRun(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	path, _ := gate(t) // never opened
	marker := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		resp, err := s.send(ctx, "POST", "/api/execute", "gone", map[string]any{
			"code": fmt.Sprintf("keep = 'kept'\nopen(%q, 'w').close()\n", marker) + waitCode(path)})
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFile(t, marker)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the blocked /api/execute answered")
	}
	ctx2, cancel2 := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel2()
	r := s.requestCtx(t, ctx2, "POST", "/api/execute", "gone", map[string]any{"code": "print(keep)"})
	if r.code != 200 || r.body["status"] != "ok" || r.body["output"] != "kept\n" {
		t.Fatalf("after the disconnect: %d %v", r.code, r.body)
	}
	end := cellEnd(t, s, "gone", func(id string) bool { return strings.HasPrefix(id, "http-") })
	if !strings.Contains(fmt.Sprint(end["error_details"]), "KeyboardInterrupt") {
		t.Fatalf("the disconnected run ended with %v", end)
	}
}

// cellEnd follows a session's journal over /ws, from its start, until the
// final message of the first cell whose id match accepts (each read has
// the 60 s deadline of client.next).
func cellEnd(t *testing.T, s *server, session string, match func(cellID string) bool) map[string]any {
	t.Helper()
	c := s.dial(t)
	defer c.c.CloseNow()
	c.send(map[string]any{"type": "resume", "kernel_id": session, "last_seq": 0})
	ms := c.until(func(m map[string]any) bool {
		id, _ := m["cell_id"].(string)
		return match(id) && (m["type"] == "execution_result" || m["type"] == "execution_error")
	})
	return ms[len(ms)-1]
}

func TestHTTP_MonitoringSocket(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/ws/monitoring/abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	cl := &client{t: t, c: c}
	if m := cl.next(); m["type"] != "connected" || m["client_id"] != "abc" || m["message"] != "Connected to monitoring WebSocket" {
		t.Fatalf("first message %v", m)
	}
	cl.send(map[string]any{"type": "ping"})
	if m := cl.next(); m["type"] != "pong" || m["timestamp"] == nil {
		t.Errorf("ping: %v", m)
	}
	cl.send(map[string]any{"type": "request_monitoring_data"})
	m := cl.next()
	data, _ := m["data"].(map[string]any)
	if m["type"] != "monitoring" || data["status"] != "running" || data["server_uptime"] == nil {
		t.Errorf("request_monitoring_data: %v", m)
	}
	cl.sendRaw(websocket.MessageText, []byte("{nope"))
	if m := cl.next(); m["type"] != "error" || m["error"] != "Invalid JSON format" {
		t.Errorf("invalid JSON: %v", m)
	}
	// An unknown type is ignored: the next answer is the pong.
	cl.send(map[string]any{"type": "bogus"})
	cl.send(map[string]any{"type": "ping"})
	if m := cl.next(); m["type"] != "pong" {
		t.Errorf("after invalid JSON and an unknown type, the socket answers %v", m)
	}
}

// Kernels started at the same time never share a port: each tcp port is
// kept out of circulation after it is handed out, through the gap between
// its release and the kernel's bind.
func TestHTTP_KernelsStartConcurrently(t *testing.T) {
	t.Parallel()
	s := newServer(t, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			resp, err := s.send(ctx, "POST", "/api/execute", fmt.Sprint("k", i), map[string]any{"code": "1"})
			if err != nil {
				t.Errorf("k%d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["status"] != "ok" {
				t.Errorf("k%d: %v %v", i, body["error"], err)
			}
		})
	}
	wg.Wait()
}
