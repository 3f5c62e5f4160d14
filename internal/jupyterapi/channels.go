package jupyterapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/journal"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/wsproto"
)

// inboundQueue bounds the client messages waiting for the kernel (while it
// starts or restarts). A client that sends more is disconnected.
const inboundQueue = 256

// conn is one WebSocket connection to a kernel's channels.
type conn struct {
	ws      *websocket.Conn
	session string // the client's session_id: its identity for routing
	v1      bool   // the v1 binary framing was negotiated
	user    string

	ctx     context.Context
	cancel  context.CancelFunc
	closeMu sync.Mutex
	closing bool
	done    chan struct{} // closed when every goroutine of the connection is done
}

// replace closes a connection that a newer one of the same session
// supersedes.
func (c *conn) replace() {
	c.close(websocket.StatusNormalClosure, "replaced by a newer connection of the same session")
}

// close closes the WebSocket with a status and reason, once, then ends
// the connection's goroutines. It waits for the close handshake (bounded
// by the library), so it runs on the connection's own goroutines.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeMu.Lock()
	first := !c.closing
	c.closing = true
	c.closeMu.Unlock()
	if first {
		c.ws.Close(code, reason)
		c.cancel()
	}
}

func (a *API) channels(w http.ResponseWriter, r *http.Request) {
	k, err := a.ownKernel(r, r.PathValue("id"), false)
	if err != nil {
		kernelNotFound(w, r)
		return
	}
	h, ok := a.hub(k)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if !a.track() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer a.wg.Done()
	session := r.URL.Query().Get("session_id")
	if session == "" {
		session = uuid.NewString()
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{wsproto.SubprotocolV1},
		OriginPatterns: a.cfg.AllowedOrigins,
	})
	if err != nil {
		return // Accept has answered (403 for a foreign Origin)
	}
	ws.SetReadLimit(a.cfg.MaxMessageBytes)
	ctx, cancel := context.WithCancel(a.ctx)
	c := &conn{ws: ws, session: session, v1: ws.Subprotocol() == wsproto.SubprotocolV1, user: a.user(r),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	defer close(c.done)
	defer c.close(websocket.StatusNormalClosure, "")
	a.metrics.ChannelOpened()
	defer a.metrics.ChannelClosed()
	start := h.attach(c)
	a.log.Debug("kernel channels connected", "kernel_id", k.ID(), "session_id", session, "v1", c.v1, "from_seq", start)

	inbound := make(chan inMsg, inboundQueue)
	var wg sync.WaitGroup
	var pos uint64
	wg.Go(func() { pos = a.follow(c, h, k, start) })
	wg.Go(func() { a.send(c, h, k, inbound) })
	wg.Go(func() { a.ping(c) })
	a.read(c, h, inbound)
	close(inbound)
	c.close(websocket.StatusNormalClosure, "")
	wg.Wait()
	h.detach(c, pos)
}

type inMsg struct {
	ch  jmsg.Channel
	m   *jmsg.Message
	dup bool // its msg_id was used before
}

// read decodes the client's frames until the connection ends. A frame that
// cannot be decoded is reported in the log and dropped; the connection
// stays open (a client library bug must not cost the user the kernel).
func (a *API) read(c *conn, h *hub, inbound chan<- inMsg) {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			if websocket.CloseStatus(err) == -1 && c.ctx.Err() == nil {
				// Not the client's close: a frame past the read limit (the
				// library has closed with 1009 and says so), a broken
				// connection.
				a.log.Info("kernel channels connection ended", "user", c.user, "session_id", c.session, "err", err)
			}
			return
		}
		ch, m, err := wsproto.DecodeClientFrame(data, typ == websocket.MessageBinary, c.v1)
		if err != nil {
			a.metrics.ChannelProblem("malformed")
			a.log.Warn("dropped a malformed message from a kernel client", "user", c.user, "session_id", c.session, "err", err)
			continue
		}
		dup := !h.sent(m.Header.MsgID, c.session)
		select {
		case inbound <- inMsg{ch, m, dup}:
		default:
			c.close(websocket.StatusPolicyViolation, fmt.Sprintf("more than %d messages are waiting for the kernel", inboundQueue))
			return
		}
	}
}

// send forwards the client's messages to the kernel in order, waiting
// while the kernel starts or restarts. A request the kernel cannot take
// (it is dead, or the msg_id is in use) is answered with an error reply,
// so the client's request does not wait forever.
func (a *API) send(c *conn, h *hub, k *kernel.Kernel, inbound <-chan inMsg) {
	// Messages the client sent are passed on even when it has gone since:
	// a client may send a request and close at once.
	for in := range inbound {
		if in.dup {
			a.replyError(c, in, "msg_id "+in.m.Header.MsgID+" is already in use by an earlier request of this kernel")
			continue
		}
		if in.m.Type() == jmsg.ShutdownRequest {
			a.shutdownRequest(c, k, in)
			continue
		}
		if a.limits != nil {
			err := a.limits.Message(c.user)
			if err == nil && in.m.Type() == jmsg.ExecuteRequest {
				err = a.limits.Execution(c.user)
			}
			if err != nil {
				a.replyError(c, in, err.Error())
				continue
			}
		}
		err := k.Send(in.ch, in.m)
		if errors.Is(err, kernel.ErrNotReady) {
			wctx, cancel := context.WithTimeout(a.ctx, a.cfg.KernelReadyTimeout)
			err = k.WaitReady(wctx)
			cancel()
			if err == nil {
				err = k.Send(in.ch, in.m)
			}
		}
		if err != nil {
			a.replyError(c, in, "kernelgate could not send "+in.m.Type()+" to the kernel: "+err.Error())
		}
	}
}

// shutdownRequest handles a client's shutdown_request through the
// manager, so a shutdown is not taken for a crash (and restarted) and a
// restart keeps the kernel's id; the client gets the reply it expects.
func (a *API) shutdownRequest(c *conn, k *kernel.Kernel, in inMsg) {
	var req struct {
		Restart bool `json:"restart"`
	}
	_ = in.m.Decode(&req)
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.KernelReadyTimeout)
	defer cancel()
	var err error
	if req.Restart {
		err = k.Restart(ctx)
	} else {
		// Reply first: once the kernel is gone the connection closes.
		a.reply(c, in, jmsg.ShutdownReply, map[string]any{"status": "ok", "restart": false})
		if err := a.kernels.Shutdown(ctx, k.ID()); err != nil && !errors.Is(err, kernel.ErrNotFound) {
			a.log.Warn("shutdown_request from a client", "kernel_id", k.ID(), "err", err)
		}
		return
	}
	if err != nil {
		a.replyError(c, in, "restart failed: "+err.Error())
		return
	}
	a.reply(c, in, jmsg.ShutdownReply, map[string]any{"status": "ok", "restart": true})
}

// replyError answers a request the gateway could not pass on with the
// protocol's error reply, and an idle status for it so that clients that
// wait for both (JupyterLab's futures) finish.
func (a *API) replyError(c *conn, in inMsg, msg string) {
	a.metrics.ChannelProblem("refused")
	a.log.Info("kernel client request refused", "user", c.user, "msg_type", in.m.Type(), "reason", msg)
	typ := in.m.Type()
	if !strings.HasSuffix(typ, "_request") {
		return // not a request (an input_reply, a comm message): nothing waits for an answer
	}
	a.reply(c, in, strings.TrimSuffix(typ, "_request")+"_reply",
		map[string]any{"status": "error", "ename": "KernelGatewayError", "evalue": msg, "traceback": []string{msg}})
	a.writeOne(c, jmsg.IOPub, a.synthetic(jmsg.Status, &in.m.Header, map[string]string{"execution_state": "idle"}))
}

func (a *API) reply(c *conn, in inMsg, typ string, content any) {
	a.writeOne(c, in.ch, a.synthetic(typ, &in.m.Header, content))
}

// synthetic builds a message the gateway sends on the kernel's behalf.
func (a *API) synthetic(typ string, parent *jmsg.Header, content any) *jmsg.Message {
	m, err := jmsg.New(typ, "kernelgate", "kernelgate", parent, content)
	if err != nil {
		panic(err) // the contents built here always marshal
	}
	return m
}

// writeOne writes one message of the gateway's own within the write
// timeout.
func (a *API) writeOne(c *conn, ch jmsg.Channel, m *jmsg.Message) bool {
	ctx, cancel := context.WithTimeout(c.ctx, a.cfg.WriteTimeout)
	defer cancel()
	return a.write(ctx, c, ch, m)
}

// write encodes m in the connection's framing and writes it before ctx's
// deadline, closing a connection that cannot take it by then.
func (a *API) write(ctx context.Context, c *conn, ch jmsg.Channel, m *jmsg.Message) bool {
	var data []byte
	typ := websocket.MessageBinary
	var err error
	if c.v1 {
		data, err = wsproto.EncodeV1(ch, m)
	} else {
		var binary bool
		data, binary, err = wsproto.EncodeLegacy(ch, m)
		if !binary {
			typ = websocket.MessageText
		}
	}
	if err != nil {
		a.log.Warn("cannot encode a kernel message", "msg_type", m.Type(), "err", err)
		return true
	}
	if err := c.ws.Write(ctx, typ, data); err != nil {
		if c.ctx.Err() == nil {
			a.metrics.ChannelProblem("slow_client")
			c.close(websocket.StatusPolicyViolation, "client too slow: messages could not be written in "+a.cfg.WriteTimeout.String())
		}
		return false
	}
	return true
}

// follow copies the kernel's journal to the client from start: every iopub
// message, the replies and input requests of the client's own requests,
// and a status message for restarts and deaths. It returns the last
// position written, for a reconnect.
func (a *API) follow(c *conn, h *hub, k *kernel.Kernel, start uint64) uint64 {
	pos := start
	for {
		evs, err := k.Journal().Read(c.ctx, pos, 256)
		var gap *journal.GapError
		switch {
		case errors.As(err, &gap):
			if pos == start && start != 0 {
				// A reconnect from a position the ring no longer holds:
				// what can be replayed is replayed.
				pos = gap.Oldest - 1
				continue
			}
			a.metrics.ChannelProblem("slow_client")
			c.close(websocket.StatusPolicyViolation, "client too slow for the kernel's output; reconnect to go on")
			return pos
		case errors.Is(err, kernel.ErrJournalClosed):
			c.close(websocket.StatusNormalClosure, "kernel shut down")
			return pos
		case err != nil:
			return pos
		}
		// One deadline per batch, not a timer per message: the batch (at
		// most 256 messages) must be taken within the write timeout.
		wctx, cancel := context.WithTimeout(c.ctx, a.cfg.WriteTimeout)
		for _, e := range evs {
			if !a.deliver(wctx, c, h, e) {
				cancel()
				return pos
			}
			pos = e.Seq
		}
		cancel()
	}
}

// deliver writes one journal event to the client, if it is the client's.
func (a *API) deliver(ctx context.Context, c *conn, h *hub, e kernel.Event) bool {
	if e.Life != nil {
		state := ""
		switch e.Life.Kind {
		case kernel.LifeRestarting:
			state = "restarting"
		case kernel.LifeDied:
			if !e.Life.AutoRestart {
				state = "dead"
			}
		case kernel.LifeShutdown:
			state = "dead"
		}
		if state == "" {
			return true
		}
		return a.write(ctx, c, jmsg.IOPub, a.synthetic(jmsg.Status, nil, map[string]string{"execution_state": state}))
	}
	if !h.forSession(e.Channel, e.Msg, c.session) {
		return true
	}
	return a.write(ctx, c, e.Channel, e.Msg)
}

// ping keeps the connection alive through proxies and finds dead peers.
func (a *API) ping(c *conn) {
	t := time.NewTicker(a.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, a.cfg.PingInterval)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				if c.ctx.Err() == nil {
					c.close(websocket.StatusGoingAway, "no answer to ping")
				}
				return
			}
		}
	}
}
