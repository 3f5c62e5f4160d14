package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/zmqconn"
)

// handshakeInterval is how often kernel_info_request is resent until the
// kernel answers it and iopub has delivered a message: a SUB socket misses
// whatever is published before its subscription reaches the kernel (the
// "slow joiner"), so a reply alone does not prove iopub works.
const handshakeInterval = 200 * time.Millisecond

// outcome is why an incarnation ended.
type outcome struct {
	died   bool
	reason string
	cmd    command
}

// run is the kernel's owner goroutine: it launches incarnations, pumps
// their messages, and handles death, restarts and shutdown, until the kernel
// is shut down or fails its first start.
func (k *Kernel) run() {
	defer close(k.done)
	var (
		first    = true
		pending  *command // a restart waiting for the new process to be ready
		reason   string   // why the current incarnation was started
		restarts []time.Time
	)
	for n := 1; ; n++ {
		k.setState(evLaunch)
		onReady := func() {
			k.setState(evReady)
			k.mu.Lock()
			if first {
				k.startedAt = time.Now()
			}
			k.mu.Unlock()
			if first {
				first = false
				close(k.started)
			} else {
				k.journal.Append(Event{Life: &Lifecycle{Kind: LifeRestarted, Reason: reason, StateLost: true, State: Idle}})
			}
			if pending != nil {
				pending.reply <- nil
				pending = nil
			}
		}
		var out outcome
		inc, err := k.launch(context.Background(), n)
		for try := 1; err != nil && k.cfg.Transport == "tcp" && errors.Is(err, errConnect) && try < 3; try++ {
			// With tcp another process may have bound a released port
			// before the kernel did: fresh ports, another try.
			k.log.Warn("kernel start failed, retrying with fresh ports", "err", err)
			n++
			inc, err = k.launch(context.Background(), n)
		}
		if err != nil {
			out = outcome{died: true, reason: "kernel failed to start: " + err.Error()}
		} else {
			k.mu.Lock()
			k.conn, k.proc = inc.conn, inc.proc
			k.mu.Unlock()
			out = k.pump(inc, onReady)
		}

		if !out.died {
			// A command ended the incarnation.
			switch out.cmd.kind {
			case cmdRestart:
				reason = "restart requested"
				k.setState(evRestart)
				k.journal.Append(Event{Life: &Lifecycle{Kind: LifeRestarting, Reason: reason, StateLost: true, State: Restarting}})
				k.stop(inc, true)
				k.failAll(&DiedError{Reason: "kernel restarted; its state was lost"})
				k.bumpRestarts()
				pending = &out.cmd
				continue
			case cmdShutdown:
				k.shutdown(inc)
				out.cmd.reply <- nil
				return
			}
		}

		// The process died (or never came up).
		if inc != nil {
			inc.close()
		}
		k.mu.Lock()
		k.conn = nil
		k.mu.Unlock()
		k.setState(evDied)
		now := time.Now()
		restarts = recent(restarts, now, k.cfg.RestartWindow)
		autoRestart := !first && k.cfg.AutoRestart && len(restarts) < k.cfg.MaxRestarts
		if !first {
			// Journaled before the executions end, so a reader that sees an
			// execution end finds the reason already in the journal.
			k.journal.Append(Event{Life: &Lifecycle{Kind: LifeDied, Reason: out.reason, StateLost: true, State: Dead, AutoRestart: autoRestart}})
		}
		k.failAll(&DiedError{Reason: out.reason + "; its state was lost"})
		k.log.Warn("kernel died", "reason", out.reason)
		k.metrics.KernelDied()
		if first {
			k.mu.Lock()
			k.startErr = fmt.Errorf("%w: %s", ErrStartFailed, out.reason)
			k.stopped = true
			k.mu.Unlock()
			close(k.started)
			k.journal.Close()
			os.RemoveAll(k.dir)
			return
		}
		if pending != nil {
			pending.reply <- fmt.Errorf("restart kernel %s: %s", k.id, out.reason)
			pending = nil
		}
		if autoRestart {
			restarts = append(restarts, now)
			reason = "restarted after: " + out.reason
			k.setState(evRestart)
			k.journal.Append(Event{Life: &Lifecycle{Kind: LifeRestarting, Reason: reason, StateLost: true, State: Restarting}})
			k.bumpRestarts()
			continue
		}
		// Dead for good until someone asks for a restart or a shutdown.
		c := <-k.cmds
		if c.kind == cmdShutdown {
			k.shutdown(nil)
			c.reply <- nil
			return
		}
		reason = "restart requested after: " + out.reason
		k.setState(evRestart)
		k.journal.Append(Event{Life: &Lifecycle{Kind: LifeRestarting, Reason: reason, StateLost: true, State: Restarting}})
		k.bumpRestarts()
		pending = &c
	}
}

// recent keeps the times within window of now.
func recent(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	out := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

func (k *Kernel) bumpRestarts() {
	k.metrics.KernelRestarted()
	k.mu.Lock()
	k.restarts++
	k.mu.Unlock()
}

// pump is the single reader of one incarnation's messages. It runs the
// handshake (and the Python bootstrap), then journals messages, tracks
// executions and state, and returns when the process dies or a command
// arrives.
func (k *Kernel) pump(inc *incarnation, onReady func()) outcome {
	var (
		gotReply, gotIOPub, bootSent, ready bool
		tick                                = time.NewTicker(handshakeInterval)
		deadline                            = time.NewTimer(k.cfg.StartTimeout)
	)
	defer tick.Stop()
	defer deadline.Stop()
	tickC, deadlineC := tick.C, deadline.C
	var order inputOrder
	var heldC <-chan time.Time

	sendKernelInfo := func() {
		m, _ := jmsg.New(jmsg.KernelInfoRequest, k.session, k.cfg.Username, nil, struct{}{})
		k.expect(m.Header.MsgID, func(*jmsg.Message) { gotReply = true })
		if err := inc.conn.Send(jmsg.Shell, m); err != nil {
			k.log.Debug("send kernel_info_request", "err", err)
		}
	}
	becomeReady := func() {
		ready = true
		deadlineC = nil
		onReady()
	}
	advance := func() {
		if ready || bootSent || !gotReply || !gotIOPub {
			return
		}
		tickC = nil
		bootSent = true
		if k.spec.Language != "python" || !k.cfg.Bootstrap {
			becomeReady()
			return
		}
		m, _ := jmsg.New(jmsg.ExecuteRequest, k.session, k.cfg.Username, nil, jmsg.ExecuteRequestContent{
			Code: bootstrap.Code() + k.cfg.ExtraBootstrap[k.spec.Name], Silent: true, UserExpressions: map[string]string{},
		})
		k.expect(m.Header.MsgID, func(r *jmsg.Message) {
			if r == nil {
				return // the process died; pump reports it
			}
			var c jmsg.ExecuteReplyContent
			if r.Decode(&c) == nil && c.Status != "ok" {
				// A kernel without the bootstrap still works, only slower to stream.
				k.log.Warn("kernel bootstrap failed", "ename", c.Ename, "evalue", c.Evalue)
			}
			becomeReady()
		})
		if err := inc.conn.Send(jmsg.Shell, m); err != nil {
			k.log.Warn("send kernel bootstrap", "err", err)
		}
	}
	sendKernelInfo()

	for {
		select {
		case in := <-inc.conn.Incoming():
			if in.Channel == jmsg.IOPub {
				gotIOPub = true
			}
			if !order.admit(in, k.handle) && heldC == nil {
				heldC = time.After(inputHoldLimit)
			}
			if order.held == nil {
				heldC = nil
			}
			advance()
		case <-heldC:
			heldC = nil
			order.release(k.handle) // no marker came (a kernel without the bootstrap)
		case <-tickC:
			sendKernelInfo()
		case <-deadlineC:
			inc.proc.Signal(syscall.SIGKILL)
			<-inc.proc.Done()
			return outcome{died: true, reason: fmt.Sprintf("kernel did not become ready within %s (%s)", k.cfg.StartTimeout, k.describeExit(inc.proc))}
		case <-inc.proc.Done():
			order.release(k.handle)
			k.drain(inc.conn)
			return outcome{died: true, reason: k.deathReason(inc)}
		case <-inc.hbLost:
			inc.proc.Signal(syscall.SIGKILL)
			<-inc.proc.Done()
			k.drain(inc.conn)
			return outcome{died: true, reason: fmt.Sprintf("kernel stopped answering heartbeats for %s and was killed",
				time.Duration(k.cfg.HeartbeatMisses)*(k.cfg.HeartbeatInterval+k.cfg.HeartbeatTimeout))}
		case c := <-k.cmds:
			return outcome{cmd: c}
		}
	}
}

// drain handles what the kernel sent before it died (its last prints), so
// the journal keeps them.
func (k *Kernel) drain(conn *zmqconn.Conn) {
	for {
		select {
		case in := <-conn.Incoming():
			k.handle(in)
		default:
			return
		}
	}
}

// expect registers a reply callback for one of the gateway's own requests.
func (k *Kernel) expect(msgID string, cb func(*jmsg.Message)) {
	k.mu.Lock()
	k.internal[msgID] = cb
	k.mu.Unlock()
}

// handle routes one kernel message: replies to the gateway's own requests
// go to their callbacks and stay out of the journal; everything else is
// journaled, then moves the kernel and execution state machines.
func (k *Kernel) handle(in zmqconn.Incoming) {
	m := in.Msg
	parent := m.ParentID()
	k.mu.Lock()
	if cb, ok := k.internal[parent]; ok || k.wasInternal(parent) {
		if ok && (in.Channel == jmsg.Shell || in.Channel == jmsg.Control) {
			delete(k.internal, parent)
			k.rememberInternal(parent)
			k.mu.Unlock()
			cb(m)
			return
		}
		k.mu.Unlock()
		return
	}
	exec := k.execs[parent]
	switch {
	case in.Channel == jmsg.IOPub && m.Type() == jmsg.Status:
		var st jmsg.StatusContent
		if m.Decode(&st) == nil {
			switch st.ExecutionState {
			case "busy":
				k.state = next(k.state, evBusy)
			case "idle":
				k.state = next(k.state, evIdle)
			}
		}
	case in.Channel == jmsg.IOPub && m.Type() == jmsg.ExecuteInput:
		var c struct {
			ExecutionCount int `json:"execution_count"`
		}
		if m.Decode(&c) == nil && c.ExecutionCount > k.execCount {
			k.execCount = c.ExecutionCount
		}
	case in.Channel == jmsg.Stdin && m.Type() == jmsg.InputRequest:
		k.pendingInput = m
	}
	if in.Channel == jmsg.Shell && m.Type() == jmsg.ExecuteReply && k.pendingInput != nil && k.pendingInput.ParentID() == parent {
		k.pendingInput = nil // the cell ended (interrupted in input()): nobody waits any more
	}
	k.lastActivity = time.Now()
	k.mu.Unlock()

	k.journal.Append(Event{Channel: in.Channel, Msg: m})
	if exec != nil && exec.observe(in.Channel, m) {
		k.mu.Lock()
		delete(k.execs, parent)
		k.mu.Unlock()
		exec.finish()
	}
}

// recentInternalCap bounds the memory of finished internal requests, kept so
// that their late iopub idle stays out of the journal too.
const recentInternalCap = 64

func (k *Kernel) rememberInternal(id string) {
	if k.recentInternal == nil {
		k.recentInternal = make(map[string]struct{}, recentInternalCap)
	}
	if old := k.recentOrder[k.recentNext]; old != "" {
		delete(k.recentInternal, old)
	}
	k.recentOrder[k.recentNext] = id
	k.recentNext = (k.recentNext + 1) % recentInternalCap
	k.recentInternal[id] = struct{}{}
}

func (k *Kernel) wasInternal(id string) bool {
	_, ok := k.recentInternal[id]
	return ok
}

// failAll ends every execution and internal request of a process that is
// gone.
func (k *Kernel) failAll(err *DiedError) {
	k.mu.Lock()
	execs := k.execs
	internal := k.internal
	k.execs = make(map[string]*Execution)
	k.internal = make(map[string]func(*jmsg.Message))
	k.pendingInput = nil
	k.mu.Unlock()
	for _, cb := range internal {
		cb(nil)
	}
	for _, e := range execs {
		e.fail(ExecLost, err)
		e.finish()
	}
}

// stop ends an incarnation with the ladder: shutdown_request on control,
// then SIGTERM, then SIGKILL, each bounded.
func (k *Kernel) stop(inc *incarnation, restart bool) {
	polite := func(ctx context.Context) error {
		// A kernel busy in user code (or blocked in input()) does not act on
		// shutdown_request until the code returns: interrupt it first. An
		// idle ipykernel ignores SIGINT, so a race with going idle is harmless.
		if k.State() == Busy {
			if k.interruptByMessage() {
				m, err := jmsg.New(jmsg.InterruptRequest, k.session, k.cfg.Username, nil, struct{}{})
				if err == nil {
					_ = inc.conn.Send(jmsg.Control, m)
				}
			} else {
				_ = inc.proc.Signal(syscall.SIGINT)
			}
		}
		m, err := jmsg.New(jmsg.ShutdownRequest, k.session, k.cfg.Username, nil, jmsg.ShutdownContent{Restart: restart})
		if err != nil {
			return err
		}
		return inc.conn.Send(jmsg.Control, m)
	}
	if err := inc.proc.Stop(context.Background(), polite); err != nil {
		k.log.Warn("stop kernel process", "err", err)
	}
	inc.close()
	k.mu.Lock()
	k.conn = nil
	k.mu.Unlock()
}

// shutdown stops the kernel for good and removes its files.
func (k *Kernel) shutdown(inc *incarnation) {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	if inc != nil {
		k.stop(inc, false)
	}
	k.failAll(&DiedError{Reason: "kernel was shut down"})
	k.setState(evDied)
	k.journal.Append(Event{Life: &Lifecycle{Kind: LifeShutdown, Reason: "kernel was shut down", StateLost: true, State: Dead}})
	k.journal.Close()
	if err := os.RemoveAll(k.dir); err != nil {
		k.log.Warn("remove kernel dir", "err", err)
	}
}

// inputHoldLimit bounds how long an input_request waits for its marker.
const inputHoldLimit = 100 * time.Millisecond

// inputOrder keeps a prompt behind the output printed before it. The
// bootstrap sends a marker on iopub after flushing that output and before
// the input_request (stdin); the two sockets are read independently, so the
// input_request may arrive first. It is then held until its marker arrives
// (or inputHoldLimit passes). Markers never reach the journal.
type inputOrder struct {
	held   *zmqconn.Incoming
	marked string // parent msg_id of the last marker seen
}

// admit passes in to handle in the right order and reports false when it
// holds in back.
func (o *inputOrder) admit(in zmqconn.Incoming, handle func(zmqconn.Incoming)) bool {
	parent := in.Msg.ParentID()
	switch {
	case in.Channel == jmsg.IOPub && in.Msg.Type() == bootstrap.InputMarker:
		o.marked = parent
		if o.held != nil && o.held.Msg.ParentID() == parent {
			o.release(handle)
		}
		return true
	case in.Channel == jmsg.Stdin && in.Msg.Type() == jmsg.InputRequest && o.marked != parent:
		o.release(handle) // at most one prompt is ever pending
		o.held = &in
		return false
	}
	if in.Channel == jmsg.Stdin && in.Msg.Type() == jmsg.InputRequest {
		o.marked = "" // one marker per prompt
	}
	handle(in)
	return true
}

// release hands a held input_request on.
func (o *inputOrder) release(handle func(zmqconn.Incoming)) {
	if o.held != nil {
		in := *o.held
		o.held, o.marked = nil, ""
		handle(in)
	}
}
