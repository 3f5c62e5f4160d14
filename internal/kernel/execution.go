package kernel

import (
	"context"
	"sync"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// ExecState is where one execution is.
type ExecState string

// Execution states. Queued executions wait behind others in the kernel's
// own shell queue; running ones have made the kernel busy.
const (
	ExecQueued  ExecState = "queued"
	ExecRunning ExecState = "running"
	ExecInput   ExecState = "waiting_input"
	ExecOK      ExecState = "ok"
	ExecError   ExecState = "error"
	ExecAborted ExecState = "aborted"
	ExecLost    ExecState = "lost" // the kernel died or restarted under it
)

// ExecuteRequest is what a caller asks a kernel to run.
type ExecuteRequest struct {
	Code            string
	Silent          bool
	StoreHistory    bool
	UserExpressions map[string]string
	AllowStdin      bool
	StopOnError     bool
}

// Execution is one execute_request, tracked by its msg_id until the kernel
// has both replied on shell and gone idle on iopub for it, so that when Done
// is closed every output of the execution is already in the journal.
type Execution struct {
	// ID is the execute_request's msg_id; outputs carry it as parent.
	ID string
	// After is the journal position just before the request was sent:
	// reading the journal from here sees every output of this execution.
	After uint64

	done chan struct{}

	mu        sync.Mutex // guards the fields below
	state     ExecState
	reply     *jmsg.Message
	content   jmsg.ExecuteReplyContent
	replySeen bool
	idleSeen  bool
	err       error
}

func newExecution(id string, after uint64) *Execution {
	return &Execution{ID: id, After: after, done: make(chan struct{}), state: ExecQueued}
}

// Done is closed when the execution has finished, successfully or not.
func (e *Execution) Done() <-chan struct{} { return e.done }

// Wait blocks until the execution finishes or ctx ends.
func (e *Execution) Wait(ctx context.Context) error {
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// State is the execution's current state.
func (e *Execution) State() ExecState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// Result is the final execute_reply (nil if the kernel never sent one), its
// decoded content, and the error that ended the execution without a reply
// (the kernel died, say).
func (e *Execution) Result() (*jmsg.Message, jmsg.ExecuteReplyContent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reply, e.content, e.err
}

// observe updates the execution from one kernel message with it as parent
// and reports whether the execution is now complete.
func (e *Execution) observe(ch jmsg.Channel, m *jmsg.Message) (complete bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case ch == jmsg.IOPub && m.Type() == jmsg.Status:
		var st jmsg.StatusContent
		if m.Decode(&st) == nil {
			switch st.ExecutionState {
			case "busy":
				if e.state == ExecQueued {
					e.state = ExecRunning
				}
			case "idle":
				e.idleSeen = true
			}
		}
	case ch == jmsg.Shell && m.Type() == jmsg.ExecuteReply:
		e.reply = m
		e.replySeen = true
		if err := m.Decode(&e.content); err != nil {
			e.content.Status = "error"
			e.content.Ename = "GatewayError"
			e.content.Evalue = "undecodable execute_reply: " + err.Error()
		}
		switch e.content.Status {
		case "ok":
			e.state = ExecOK
		case "aborted":
			e.state = ExecAborted
		default:
			e.state = ExecError
		}
	case ch == jmsg.Stdin && m.Type() == jmsg.InputRequest:
		e.state = ExecInput
	case ch == jmsg.Stdin && m.Type() == jmsg.InputReply:
		e.state = ExecRunning
	}
	return e.replySeen && e.idleSeen
}

// inputAnswered moves an execution that waited for input back to running.
func (e *Execution) inputAnswered() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state == ExecInput {
		e.state = ExecRunning
	}
}

// fail ends an execution that will never get its reply.
func (e *Execution) fail(state ExecState, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = state
	e.err = err
}

// finish closes Done; the kernel's owner goroutine calls it exactly once.
func (e *Execution) finish() { close(e.done) }
