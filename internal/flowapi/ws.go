package flowapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/kernelgate/kernelgate/internal/journal"
)

// writeTimeout bounds one WebSocket write: a client that cannot take a
// message in this time is too slow and is disconnected.
const writeTimeout = 10 * time.Second

// UserFunc names the principal a request acts for.
type UserFunc func(*http.Request) string

// WS serves the AdeloopFlow notebook WebSocket (/ws and /ws/execute/{id}).
type WS struct {
	cfg      Config
	sessions *Sessions
	user     UserFunc
	log      *slog.Logger

	mu     sync.Mutex // guards conns and closed
	conns  map[*wsConn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection
}

// NewWS returns the WebSocket handler.
func NewWS(cfg Config, sessions *Sessions, user UserFunc, log *slog.Logger) *WS {
	return &WS{cfg: cfg, sessions: sessions, user: user, log: log, conns: make(map[*wsConn]struct{})}
}

// ServeHTTP upgrades the request and serves the connection until it ends.
func (h *WS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins})
	if err != nil {
		return // Accept has answered (403 for a foreign Origin, 400 otherwise)
	}
	// Our own size check answers an oversize message with an error and keeps
	// the socket; the library limit is only the backstop against floods.
	c.SetReadLimit(4*h.cfg.MaxMessageBytes + 4096)
	ctx, cancel := context.WithCancel(context.Background())
	conn := &wsConn{h: h, c: c, ctx: ctx, cancel: cancel, user: h.user(r), log: h.log}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		c.Close(websocket.StatusGoingAway, "server is shutting down")
		return
	}
	h.conns[conn] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, conn)
		h.mu.Unlock()
		h.wg.Done()
	}()
	conn.serve()
}

// Close closes every connection with "going away" and waits for them.
func (h *WS) Close() {
	h.mu.Lock()
	h.closed = true
	conns := make([]*wsConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	var closing sync.WaitGroup
	for _, c := range conns {
		// In parallel: each close handshake may wait seconds for its peer.
		closing.Go(func() {
			c.c.Close(websocket.StatusGoingAway, "server is shutting down")
			c.cancel()
		})
	}
	closing.Wait()
	h.wg.Wait()
}

// wsConn is one client connection. Its reader loop runs on the serving
// goroutine; a follower goroutine copies the attached session's journal to
// the socket. Messages about the connection itself (bad input, pong) carry
// no seq and are not replayed on resume.
type wsConn struct {
	h      *WS
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	user   string
	log    *slog.Logger

	mu       sync.Mutex // guards session and stopFollow
	session  *Session
	stopFol  context.CancelFunc
	follower sync.WaitGroup
	tasks    sync.WaitGroup // resets and session starts in flight
}

func (c *wsConn) serve() {
	defer func() {
		c.cancel()
		c.tasks.Wait()
		c.detach()
		c.c.CloseNow()
	}()
	c.send(Msg{"type": "connection_established", "message": "Connected to Python kernel"})
	for {
		typ, rd, err := c.c.Reader(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			io.Copy(io.Discard, rd)
			c.fail("binary frames are not supported: send each message as a JSON text frame")
			continue
		}
		data, err := io.ReadAll(io.LimitReader(rd, c.h.cfg.MaxMessageBytes+1))
		if err != nil {
			return
		}
		if int64(len(data)) > c.h.cfg.MaxMessageBytes {
			n, _ := io.Copy(io.Discard, rd)
			c.fail(fmt.Sprintf("message of %d bytes is over the %d-byte limit and was ignored", int64(len(data))+n, c.h.cfg.MaxMessageBytes))
			continue
		}
		c.handle(data)
	}
}

// clientMsg holds every field any client message has.
type clientMsg struct {
	Type         *string         `json:"type"`
	Code         string          `json:"code"`
	CellID       string          `json:"cell_id"`
	Language     string          `json:"language"`
	Datasets     json.RawMessage `json:"datasets"`
	Streaming    json.RawMessage `json:"streaming"`
	KernelID     string          `json:"kernel_id"`
	Input        string          `json:"input"`
	OriginalCode string          `json:"original_code"`
	LastSeq      *uint64         `json:"last_seq"`
	Timeout      float64         `json:"timeout"` // seconds; bounded by --execution-timeout
}

func (c *wsConn) handle(data []byte) {
	if c.overLimit(ratelimit.Messages) {
		return
	}
	var m clientMsg
	if err := json.Unmarshal(data, &m); err != nil {
		c.fail("invalid JSON: " + err.Error())
		return
	}
	if m.Type == nil {
		c.fail(`message has no "type" field`)
		return
	}
	switch *m.Type {
	case "execute":
		if c.overLimit(ratelimit.Executions) {
			return
		}
		c.execute(m)
	case "provide_input":
		c.provideInput(m)
	case "cancel_execution", "interrupt":
		c.cancelExecution(m)
	case "reset_kernel":
		c.resetKernel()
	case "start_kernel_session":
		c.startSession(m)
	case "resume":
		c.resume(m)
	case "ping":
		c.send(Msg{"type": "pong", "timestamp": float64(time.Now().UnixMicro()) / 1e6})
	default:
		c.fail("Unknown message type: " + *m.Type)
	}
}

func (c *wsConn) execute(m clientMsg) {
	if m.Language != "" && m.Language != "python" {
		c.fail(fmt.Sprintf("language %q is not supported: cells run as Python", m.Language))
		return
	}
	if len(m.Datasets) > 0 && string(m.Datasets) != "null" && m.Datasets[0] != '[' {
		c.fail(`"datasets" must be an array of {name, data} objects`)
		return
	}
	s, err := c.sessionFor(m.KernelID)
	if err != nil {
		c.fail(err.Error())
		return
	}
	cellID := m.CellID
	if cellID == "" {
		cellID = "unknown"
	}
	if m.Timeout < 0 {
		c.fail(`"timeout" must be a positive number of seconds`)
		return
	}
	req := ExecuteRequest{CellID: cellID, Code: m.Code, Streaming: truthy(m.Streaming),
		Timeout: time.Duration(m.Timeout * float64(time.Second))}
	if string(m.Datasets) != "null" {
		req.Datasets = m.Datasets
	}
	if err := s.Enqueue(req); err != nil {
		c.send(Msg{"type": "error", "cell_id": cellID, "error": err.Error()})
	}
}

// truthy follows the original backend: any truthy JSON value counts.
func truthy(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch x := v.(type) {
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return false // null
}

func (c *wsConn) provideInput(m clientMsg) {
	s := c.current()
	if s == nil {
		c.fail("no cell is waiting for input on this connection")
		return
	}
	if err := s.ProvideInput(m.Input); err != nil {
		// A real input() is answered in place; re-running original_code, as
		// the old backend did, would repeat the cell's side effects.
		c.fail("no input() is waiting in this session: " + err.Error())
	}
}

func (c *wsConn) cancelExecution(m clientMsg) {
	s := c.current()
	if s == nil {
		c.send(Msg{"type": "execution_cancelled", "cell_id": m.CellID, "message": "Execution cancelled"})
		return
	}
	// Cancelling the running cell (or "whatever runs") also drops the queued
	// ones, as a notebook's stop button does; naming a queued cell drops
	// only that one.
	running, _ := s.runningCellID()
	cellID, target := m.CellID, m.CellID
	if cellID == "" || cellID == running {
		cellID, target = running, ""
	}
	s.emit(Msg{"type": "execution_cancelled", "cell_id": cellID, "message": "Execution cancelled"})
	s.Cancel(target)
}

func (c *wsConn) resetKernel() {
	s := c.current()
	if s == nil {
		c.send(Msg{"type": "kernel_reset", "message": "Kernel reset successfully"})
		return
	}
	c.tasks.Go(func() {
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		if err := s.Reset(ctx); err != nil {
			s.emit(Msg{"type": "error", "error": "kernel reset failed: " + err.Error()})
			return
		}
		s.emit(Msg{"type": "kernel_reset", "kernel_id": s.id, "message": "Kernel reset successfully"})
	})
}

func (c *wsConn) startSession(m clientMsg) {
	s, err := c.h.sessions.Open(c.user, m.KernelID)
	if err != nil {
		c.fail(err.Error())
		return
	}
	c.attach(s, s.Last())
	c.tasks.Go(func() {
		ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
		defer cancel()
		if _, err := s.kernel(ctx); err != nil {
			s.emit(Msg{"type": "error", "kernel_id": s.id, "error": "the kernel could not start: " + err.Error()})
			return
		}
		s.emit(Msg{"type": "kernel_session_started", "kernel_id": s.id})
	})
}

func (c *wsConn) resume(m clientMsg) {
	if m.KernelID == "" || m.LastSeq == nil {
		c.fail(`resume needs "kernel_id" and "last_seq"`)
		return
	}
	s, ok := c.h.sessions.Lookup(c.user, m.KernelID)
	if !ok {
		c.fail(fmt.Sprintf("no session %q to resume: it ended or belongs to someone else", m.KernelID))
		return
	}
	if last := s.Last(); *m.LastSeq > last {
		c.fail(fmt.Sprintf("resume: last_seq %d is ahead of the session's newest message %d", *m.LastSeq, last))
		return
	}
	c.attach(s, *m.LastSeq)
}

// sessionFor returns the session an execute runs in: the named one, or the
// connection's current one, or a fresh one.
func (c *wsConn) sessionFor(kernelID string) (*Session, error) {
	if cur := c.current(); cur != nil && (kernelID == "" || kernelID == cur.id) {
		return cur, nil
	}
	s, err := c.h.sessions.Open(c.user, kernelID)
	if err != nil {
		return nil, err
	}
	c.attach(s, s.Last())
	return s, nil
}

func (c *wsConn) current() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// attach makes s the connection's session and streams its journal from
// position after.
func (c *wsConn) attach(s *Session, after uint64) {
	c.detach()
	s.attach()
	fctx, stop := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.session, c.stopFol = s, stop
	c.mu.Unlock()
	c.follower.Go(func() { c.follow(fctx, s, after) })
}

// detach stops following the current session, if any.
func (c *wsConn) detach() {
	c.mu.Lock()
	s, stop := c.session, c.stopFol
	c.session, c.stopFol = nil, nil
	c.mu.Unlock()
	if s == nil {
		return
	}
	stop()
	c.follower.Wait()
	s.detach()
}

// follow copies the session's messages to the socket. A client too slow
// for the session's replay buffer is told so and disconnected.
func (c *wsConn) follow(ctx context.Context, s *Session, after uint64) {
	for first := true; ; first = false {
		msgs, err := s.Read(ctx, after)
		if err != nil {
			var gap *journal.GapError
			switch {
			case errors.As(err, &gap) && first:
				// A resume from further back than the session keeps: say
				// what is lost and go on from the oldest message held.
				c.send(Msg{"type": "error", "kernel_id": s.id, "error": fmt.Sprintf(
					"resume: messages %d to %d are no longer kept; continuing from %d", gap.After+1, gap.Oldest-1, gap.Oldest)})
				after = gap.Oldest - 1
				continue
			case errors.As(err, &gap):
				c.send(Msg{"type": "error", "kernel_id": s.id, "error": fmt.Sprintf(
					"messages %d to %d are gone: this client fell too far behind; reconnect and resume from %d", gap.After+1, gap.Oldest-1, gap.Oldest-1)})
				c.c.Close(websocket.StatusPolicyViolation, "slow consumer")
				c.cancel()
			case errors.Is(err, journal.ErrClosed):
				c.send(Msg{"type": "error", "kernel_id": s.id, "error": "this kernel session has ended"})
			}
			return
		}
		for _, m := range msgs {
			if err := c.write(m.raw); err != nil {
				c.cancel()
				return
			}
			after = m.seq
		}
	}
}

func (c *wsConn) fail(reason string) { c.send(Msg{"type": "error", "error": reason}) }

// send writes a connection-level message (not journaled, no seq).
func (c *wsConn) send(m Msg) {
	raw, err := json.Marshal(m)
	if err != nil {
		c.log.Error("encode message", "err", err)
		return
	}
	if c.write(raw) != nil {
		c.cancel()
	}
}

func (c *wsConn) write(raw []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	return c.c.Write(ctx, websocket.MessageText, raw)
}
