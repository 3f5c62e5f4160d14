package flowapi

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// keepaliveInterval is how long a stream may be silent before a keepalive
// line tells the client (and proxies) that the run is still alive.
const keepaliveInterval = 15 * time.Second

// streamRequest is the body of POST /api/stream.
type streamRequest struct {
	codeBody
	Datasets json.RawMessage `json:"datasets"`
}

// stream runs code and answers with NDJSON events as they happen: start,
// stdout, stderr, display, input_request, warning, kernel, result, error,
// end, and keepalive during silence. A client that disconnects interrupts
// its run. Programs and agents use it; see docs/protocol.md.
func (h *HTTP) stream(w http.ResponseWriter, r *http.Request) {
	var q streamRequest
	s, release, ok := h.openForCode(w, r, &q)
	if !ok {
		return
	}
	defer release()
	if h.overLimit(w, s, ratelimit.Executions) {
		return
	}
	cellID := "stream-" + uuid.NewString()
	after := s.Last()
	if err := s.Enqueue(ExecuteRequest{CellID: cellID, Code: *q.Code, Datasets: datasetsOrNil(q.Datasets), Timeout: q.limit()}); err != nil {
		enqueueError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	emit := func(ev Msg) bool {
		if enc.Encode(ev) != nil || rc.Flush() != nil {
			return false
		}
		return true
	}
	started := false
	for {
		ctx, cancel := context.WithTimeout(r.Context(), keepaliveInterval)
		msgs, err := s.Read(ctx, after)
		cancel()
		if err != nil {
			if r.Context().Err() != nil {
				s.Cancel(cellID) // the client is gone: stop its run
				return
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if !emit(Msg{"event": "keepalive", "time": now()}) {
					s.Cancel(cellID)
					return
				}
				continue
			}
			emit(Msg{"event": "error", "message": "following the run failed: " + err.Error()})
			emit(Msg{"event": "end", "status": "error"})
			return
		}
		for _, m := range msgs {
			after = m.seq
			if id, _ := m.msg["cell_id"].(string); id != cellID && m.msg["type"] != "kernel_status" {
				continue
			}
			if m.msg["type"] == "execution_start" {
				started = true
			}
			if m.msg["type"] == "execution_cancelled" && !started {
				emit(Msg{"event": "error", "message": "the run was cancelled before it started"})
				emit(Msg{"event": "end", "status": "cancelled"})
				return
			}
			events, done := streamEvents(m.msg)
			for _, ev := range events {
				if !emit(ev) {
					s.Cancel(cellID)
					return
				}
			}
			if done {
				return
			}
		}
	}
}

// streamEvents translates one session message into NDJSON events and says
// whether the run is over.
func streamEvents(m Msg) ([]Msg, bool) {
	switch m["type"] {
	case "execution_start":
		return []Msg{{"event": "start", "cell_id": m["cell_id"], "kernel_id": m["kernel_id"]}}, false
	case "stream_output":
		if m["is_last"] == true {
			return nil, false // the final result follows
		}
		return []Msg{{"event": m["stream"], "text": m["content"]}}, false
	case "display_output":
		ev := Msg{"event": "display", "data": m["data"]}
		if p, ok := m["plot"]; ok {
			ev["plot"] = p
		}
		return []Msg{ev}, false
	case "input_request":
		return []Msg{{"event": "input_request", "prompt": m["prompt"], "password": m["password"]}}, false
	case "kernel_status":
		return []Msg{{"event": "kernel", "kind": m["event"], "reason": m["reason"], "state_lost": m["state_lost"]}}, false
	case "error":
		if m["is_last"] == true {
			return []Msg{{"event": "error", "message": m["error"]}, {"event": "end", "status": "error"}}, true
		}
		return []Msg{{"event": "warning", "message": m["error"]}}, false
	case "execution_result", "execution_error":
		status, _ := m["status"].(string)
		if m["type"] == "execution_error" {
			status = "error"
		}
		if status == "error" {
			ev := Msg{"event": "error"}
			d := asMsg(m["error_details"])
			if d == nil {
				d = asMsg(m["error"])
			}
			ev["ename"], ev["evalue"], ev["traceback"] = d["ename"], d["evalue"], d["traceback"]
			return []Msg{ev, {"event": "end", "status": "error"}}, true
		}
		return []Msg{
			{"event": "result", "value": m["result"], "execution_count": m["execution_count"], "plots": m["plots"]},
			{"event": "end", "status": "ok"},
		}, true
	}
	return nil, false
}

// asMsg returns v as a message object, whichever map type built it.
func asMsg(v any) Msg {
	switch x := v.(type) {
	case Msg:
		return x
	case map[string]any:
		return x
	}
	return nil
}
