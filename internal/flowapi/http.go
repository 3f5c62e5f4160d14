package flowapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
)

// serviceName and version are what the original backend called itself;
// clients may show or check them.
const (
	serviceName = "HRatlas Backend API"
	version     = "2.0.0"
)

// HTTP serves the AdeloopFlow HTTP routes. Executions run in the caller's
// own session: the user from auth, and the session named by the
// X-Session-ID header or the body's session_id (default "http").
type HTTP struct {
	cfg      Config
	sessions *Sessions
	user     UserFunc
	started  time.Time
	kernels  func() int // how many kernels run, for health

	// Page, when set, answers GET / for the requests it
	// Wants (browsers: the notebook page); the others keep the JSON.
	Page interface {
		http.Handler
		Wants(r *http.Request) bool
	}
}

// NewHTTP returns the HTTP routes handler.
func NewHTTP(cfg Config, sessions *Sessions, user UserFunc, kernels func() int) *HTTP {
	return &HTTP{cfg: cfg, sessions: sessions, user: user, started: time.Now(), kernels: kernels}
}

// Register adds the routes to mux.
func (h *HTTP) Register(mux *http.ServeMux, ws *WS) {
	mux.HandleFunc("GET /{$}", h.root)
	mux.HandleFunc("GET /health", h.health)
	mux.HandleFunc("GET /ping", h.ping)
	mux.HandleFunc("GET /backend-status", h.backendStatus)
	mux.HandleFunc("GET /ws-test", h.wsTest)
	mux.HandleFunc("POST /api/execute", h.execute)
	mux.HandleFunc("POST /api/execute-jupyter", h.execute)
	mux.HandleFunc("POST /api/execute-pipeline", h.executePipeline)
	mux.HandleFunc("POST /api/python/continue", h.continueInput)
	mux.HandleFunc("POST /api/python/reset", h.reset)
	mux.HandleFunc("GET /api/python/status", h.status)
	mux.HandleFunc("GET /api/python/variables", h.variables)
	mux.HandleFunc("POST /api/python/clear-variables", h.clearVariables)
	mux.HandleFunc("POST /api/stream", h.stream)
	mux.HandleFunc("GET /static/plotly.js", h.plotlyJS)
	mux.HandleFunc("GET /ws/monitoring/{client_id}", h.monitoring)
	mux.Handle("GET /ws", ws)
	mux.Handle("GET /ws/execute/{id}", ws)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// errorEnvelope is the original's error shape, with a precise message.
func errorEnvelope(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Msg{"status": "error", "error": msg, "data": []any{}, "output": "", "plots": []any{}})
}

func now() float64 { return float64(time.Now().UnixMicro()) / 1e6 }

func (h *HTTP) root(w http.ResponseWriter, r *http.Request) {
	if h.Page != nil {
		w.Header().Add("Vary", "Accept")
		if h.Page.Wants(r) {
			h.Page.ServeHTTP(w, r)
			return
		}
	}
	writeJSON(w, 200, Msg{"message": serviceName, "version": version, "status": "running", "docs": "/docs", "health": "/health"})
}

// health answers at once: the original sampled CPU for a second per call.
func (h *HTTP) health(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	up := time.Since(h.started).Seconds()
	writeJSON(w, 200, Msg{
		"status": "healthy", "uptime": up, "timestamp": now(), "message": "HRatlas backend is running",
		"health": Msg{"status": "healthy", "timestamp": time.Now().UTC().Format(time.RFC3339Nano), "uptime": up,
			"checks": Msg{
				"kernels": Msg{"status": "ok", "running": h.kernels()},
				"memory":  Msg{"status": "ok", "heap_bytes": ms.HeapAlloc},
			}},
	})
}

func (h *HTTP) ping(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, Msg{"status": "pong", "timestamp": now()})
}

func (h *HTTP) backendStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, Msg{"status": "online", "service": serviceName, "version": version,
		"uptime": time.Since(h.started).Seconds(), "timestamp": now()})
}

func (h *HTTP) wsTest(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, Msg{"websocket_available": true, "endpoint": "/ws", "status": "ready"})
}

// codeBody is what every body that runs code has.
type codeBody struct {
	Code      *string `json:"code"`
	SessionID string  `json:"session_id"`
	Timeout   float64 `json:"timeout"` // seconds; bounded by --execution-timeout
}

// limit is the body's own execution timeout.
func (b *codeBody) limit() time.Duration { return time.Duration(b.Timeout * float64(time.Second)) }

func (b *codeBody) code() *codeBody { return b }

// openForCode decodes a body that must carry code and opens the caller's
// session; call release when the request is done.
func (h *HTTP) openForCode(w http.ResponseWriter, r *http.Request, body interface{ code() *codeBody }) (s *Session, release func(), ok bool) {
	if !h.decodeBody(w, r, body) {
		return nil, nil, false
	}
	b := body.code()
	if b.Code == nil {
		errorEnvelope(w, http.StatusUnprocessableEntity, `"code" is required`)
		return nil, nil, false
	}
	if b.Timeout < 0 {
		errorEnvelope(w, http.StatusUnprocessableEntity, `"timeout" must be a positive number of seconds`)
		return nil, nil, false
	}
	return h.session(w, r, b.SessionID)
}

// queryRequest is the body of /api/execute (the original's QueryRequest).
type queryRequest struct {
	codeBody
	Datasets        json.RawMessage `json:"datasets"`
	Language        string          `json:"language"`
	VariableContext json.RawMessage `json:"variableContext"`
	UserInput       *string         `json:"user_input"`
}

// decodeBody reads a JSON body of at most MaxMessageBytes.
func (h *HTTP) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxMessageBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			errorEnvelope(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the %d-byte limit", tooBig.Limit))
		} else {
			errorEnvelope(w, http.StatusBadRequest, "reading the request body failed: "+err.Error())
		}
		return false
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		errorEnvelope(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// session returns the caller's session, attached for the request so that
// it is not culled while in use; call release when the request is done.
func (h *HTTP) session(w http.ResponseWriter, r *http.Request, bodyID string) (s *Session, release func(), ok bool) {
	id := r.Header.Get("X-Session-ID")
	if id == "" {
		id = bodyID
	}
	if id == "" {
		id = "http"
	}
	s, err := h.sessions.Open(h.user(r), id)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, errSessionClosed) {
			code = http.StatusServiceUnavailable
		}
		errorEnvelope(w, code, err.Error())
		return nil, nil, false
	}
	s.attach()
	return s, s.detach, true
}

// enqueueError answers a cell that could not be queued.
func enqueueError(w http.ResponseWriter, err error) {
	code := http.StatusServiceUnavailable
	if errors.Is(err, errQueueFull) {
		code = http.StatusTooManyRequests
	}
	errorEnvelope(w, code, err.Error())
}

func (h *HTTP) execute(w http.ResponseWriter, r *http.Request) {
	var q queryRequest
	s, release, ok := h.openForCode(w, r, &q)
	if !ok {
		return
	}
	defer release()
	if q.UserInput != nil {
		h.answer(w, r, s, *q.UserInput)
		return
	}
	h.run(w, r, s, ExecuteRequest{Code: *q.Code, Datasets: datasetsOrNil(q.Datasets), Variables: objectOrNil(q.VariableContext), Timeout: q.limit()})
}

func objectOrNil(raw json.RawMessage) json.RawMessage {
	if s := strings.TrimSpace(string(raw)); s == "" || s == "null" || s == "{}" {
		return nil
	}
	return raw
}

func datasetsOrNil(raw json.RawMessage) json.RawMessage {
	if s := strings.TrimSpace(string(raw)); s == "" || s == "null" || s == "[]" {
		return nil
	}
	return raw
}

// pipelineRequest is the body of /api/execute-pipeline.
type pipelineRequest struct {
	codeBody
	InputData     json.RawMessage `json:"input_data"`
	AllSourceData []struct {
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
	} `json:"all_source_data"`
	Variables json.RawMessage `json:"variables"`
}

func (h *HTTP) executePipeline(w http.ResponseWriter, r *http.Request) {
	var p pipelineRequest
	s, release, ok := h.openForCode(w, r, &p)
	if !ok {
		return
	}
	defer release()
	var ds []Msg
	if d := datasetsOrNil(p.InputData); d != nil {
		ds = append(ds, Msg{"name": "input_data", "data": d})
	}
	for _, src := range p.AllSourceData {
		ds = append(ds, Msg{"name": src.Name, "data": src.Data})
	}
	var datasets json.RawMessage
	if len(ds) > 0 {
		datasets, _ = json.Marshal(ds)
	}
	h.run(w, r, s, ExecuteRequest{Code: *p.Code, Datasets: datasets, Variables: objectOrNil(p.Variables), Timeout: p.limit()})
}

// run executes one cell and answers when it ends or asks for input.
func (h *HTTP) run(w http.ResponseWriter, r *http.Request, s *Session, req ExecuteRequest) {
	if h.overLimit(w, s, ratelimit.Executions) {
		return
	}
	req.CellID = "http-" + uuid.NewString()
	if k, ok := s.Kernel(); ok {
		if _, waiting := k.PendingInput(); waiting {
			// An HTTP client that got input_required and moved on will not
			// answer: as in the original, where input() ended the cell, the
			// waiting cell stops instead of blocking this one forever.
			s.Cancel("")
		}
	}
	after := s.Last()
	if err := s.Enqueue(req); err != nil {
		enqueueError(w, err)
		return
	}
	h.respond(w, r, s, req.CellID, after, false)
}

// respond answers with the cell's outcome; continued says the cell was
// already running (an input continuation) when following began.
func (h *HTTP) respond(w http.ResponseWriter, r *http.Request, s *Session, cellID string, after uint64, continued bool) {
	out, err := s.await(r.Context(), cellID, after, continued)
	if err != nil {
		if r.Context().Err() != nil {
			// The caller went away: do not leave its cell running.
			s.Cancel(cellID)
			return
		}
		errorEnvelope(w, http.StatusInternalServerError, "following the cell failed: "+err.Error())
		return
	}
	writeJSON(w, 200, execResponse(out))
}

// execResponse is the original's ExecResponse, from the cell's messages.
func execResponse(o *cellOutcome) Msg {
	resp := Msg{"status": "ok", "output": o.stdout.String(), "error": "", "plots": []any{}, "execution_count": 0,
		"data": nil, "result": nil, "plot_count": 0, "plotly_count": 0, "total_plots": 0}
	if len(o.warnings) > 0 {
		resp["warnings"] = o.warnings
	}
	switch {
	case o.early != "":
		resp["status"], resp["error"] = "error", o.early
	case o.prompt != nil:
		prompt, _ := (*o.prompt)["prompt"].(string)
		resp["status"] = "input_required"
		resp["output"] = o.stdout.String() + prompt
		resp["input_prompt"] = prompt
	case o.final != nil:
		for _, k := range []string{"status", "output", "error", "plots", "execution_count", "result", "table_result",
			"plot_count", "plotly_count", "total_plots", "error_details", "stderr", "output_truncated", "output_bytes", "stderr_bytes"} {
			if v, ok := o.final[k]; ok {
				resp[k] = v
			}
		}
		if o.final["type"] == "execution_error" {
			resp["status"] = "error"
		}
	}
	return resp
}

// continueInput answers the input() a cell of the caller's session waits on
// (the original re-ran the whole cell instead).
func (h *HTTP) continueInput(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Input     string `json:"input"`
		SessionID string `json:"session_id"`
	}
	if !h.decodeBody(w, r, &body) {
		return
	}
	s, release, ok := h.session(w, r, body.SessionID)
	if !ok {
		return
	}
	defer release()
	h.answer(w, r, s, body.Input)
}

func (h *HTTP) answer(w http.ResponseWriter, r *http.Request, s *Session, input string) {
	cellID, running := s.runningCellID()
	if !running {
		errorEnvelope(w, http.StatusConflict, "no cell of this session is waiting for input")
		return
	}
	after := s.Last()
	if err := s.ProvideInput(input); err != nil {
		errorEnvelope(w, http.StatusConflict, "no input() is waiting in this session: "+err.Error())
		return
	}
	h.respond(w, r, s, cellID, after, true)
}

func (h *HTTP) reset(w http.ResponseWriter, r *http.Request) {
	s, release, ok := h.session(w, r, "")
	if !ok {
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if err := s.Reset(ctx); err != nil {
		errorEnvelope(w, http.StatusInternalServerError, "kernel reset failed: "+err.Error())
		return
	}
	writeJSON(w, 200, Msg{"status": "success", "data": []any{}, "output": "Python kernel reset successfully", "plots": []any{}})
}

// state evaluates the bounded variables summary in the caller's session.
// state evaluates the bounded variables summary in the caller's session.
func (h *HTTP) state(w http.ResponseWriter, r *http.Request) (*Session, *FlowState, bool) {
	s, release, ok := h.session(w, r, "")
	if !ok {
		return nil, nil, false
	}
	defer release()
	k, started := s.Kernel()
	if !started {
		return s, &FlowState{Variables: json.RawMessage("{}"), DataFrameVariables: json.RawMessage("[]")}, true
	}
	st := s.flowState(k)
	if st == nil {
		errorEnvelope(w, http.StatusServiceUnavailable, "the kernel did not answer the variables query")
		return nil, nil, false
	}
	return s, st, true
}

func (h *HTTP) status(w http.ResponseWriter, r *http.Request) {
	s, st, ok := h.state(w, r)
	if !ok {
		return
	}
	var vars map[string]json.RawMessage
	json.Unmarshal(st.Variables, &vars)
	info := Msg{"status": "active", "kernel_id": s.id, "execution_count": 0, "variables_count": len(vars),
		"variables": st.Variables, "kernel_state": "not started"}
	if k, started := s.Kernel(); started {
		in := k.Info()
		info["execution_count"], info["kernel_state"] = in.ExecutionCount, string(in.State)
	}
	writeJSON(w, 200, Msg{"status": "success", "data": []any{info}, "output": "", "plots": []any{}})
}

func (h *HTTP) variables(w http.ResponseWriter, r *http.Request) {
	_, st, ok := h.state(w, r)
	if !ok {
		return
	}
	writeJSON(w, 200, Msg{"status": "success", "data": []any{st.Variables}, "output": "", "plots": []any{}})
}

func (h *HTTP) clearVariables(w http.ResponseWriter, r *http.Request) {
	s, release, ok := h.session(w, r, "")
	if !ok {
		return
	}
	defer release()
	if k, started := s.Kernel(); started {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		res, err := k.Evaluate(ctx, map[string]string{"reset": "get_ipython().run_line_magic('reset', '-f')"})
		if err == nil && res["reset"].Status != "ok" {
			err = fmt.Errorf("%s: %s", res["reset"].Ename, res["reset"].Evalue)
		}
		if err != nil {
			errorEnvelope(w, http.StatusInternalServerError, "clearing variables failed: "+err.Error())
			return
		}
	}
	writeJSON(w, 200, Msg{"status": "success", "data": []any{}, "output": "All user-defined variables cleared successfully", "plots": []any{}})
}

// plotlyJS serves the plotly.js that Debian's python3-plotly ships, which
// the figure HTML in plots loads: figures render with no CDN and no
// network.
func (h *HTTP) plotlyJS(w http.ResponseWriter, r *http.Request) {
	f, err := os.Open(h.cfg.PlotlyJSFile)
	if err != nil {
		http.Error(w, "plotly.js is not installed on this server (install the Debian package python3-plotly)", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "plotly.js cannot be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	http.ServeContent(w, r, "plotly.js", st.ModTime(), f)
}
