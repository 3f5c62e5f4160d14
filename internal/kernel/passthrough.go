package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// ErrDuplicateID is returned by Send for a message whose msg_id is already
// in use by a request in flight: its replies could not be told apart.
var ErrDuplicateID = errors.New("msg_id is already in use by a request in flight")

// Send forwards a client's own message to the kernel as it is: its header
// (msg_id, session, username) stays the client's, so the kernel's replies
// name it as their parent and the client's protocol library can match them.
// Replies and outputs are journaled like any other kernel message; the
// caller routes them back by parent msg_id. An input_reply on stdin answers
// the pending input_request. The gateway signs the message with the
// kernel's key; clients never see it.
func (k *Kernel) Send(ch jmsg.Channel, m *jmsg.Message) error {
	switch ch {
	case jmsg.Shell, jmsg.Control, jmsg.Stdin:
	default:
		return fmt.Errorf("cannot send on channel %q: only shell, control and stdin carry requests", ch)
	}
	m.Identities = nil
	if m.Header.Version == "" {
		m.Header.Version = jmsg.ProtocolVersion
	}
	k.mu.Lock()
	conn, err := k.usableLocked()
	if err != nil {
		k.mu.Unlock()
		return err
	}
	id := m.Header.MsgID
	if _, clash := k.internal[id]; clash || k.execs[id] != nil || k.wasInternal(id) {
		k.mu.Unlock()
		return fmt.Errorf("msg_id %q: %w", id, ErrDuplicateID)
	}
	if ch == jmsg.Stdin && m.Type() == jmsg.InputReply && k.pendingInput != nil &&
		k.pendingInput.Header.MsgID == m.Parent.MsgID {
		k.pendingInput = nil
	}
	k.lastActivity = time.Now()
	k.mu.Unlock()
	if err := conn.Send(ch, m); err != nil {
		return fmt.Errorf("kernel %s: %w", k.id, err)
	}
	return nil
}

// WaitReady waits until the kernel can take requests: its first start or a
// restart has finished. It fails at once for a dead or shut-down kernel.
func (k *Kernel) WaitReady(ctx context.Context) error {
	select {
	case <-k.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		// Every change of readiness is journaled (restarting, restarted,
		// died, shutdown) after the state is set, so an event after this
		// position is the wake-up for any change seen too late here.
		last := k.journal.Last()
		k.mu.Lock()
		_, err := k.usableLocked()
		startErr := k.startErr
		k.mu.Unlock()
		switch {
		case err == nil:
			return nil
		case startErr != nil:
			return startErr
		case !errors.Is(err, ErrNotReady):
			return err
		}
		if _, err := k.journal.Read(ctx, last, 1); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrJournalClosed) {
				return ErrShutdown
			}
			var gap *GapError
			if !errors.As(err, &gap) {
				return err
			}
		}
	}
}

// setEnv sets variables in a running Python kernel's os.environ, for a warm
// kernel handed out to a start request that carries an environment. A
// restart starts the process with them (extraEnv).
func (k *Kernel) setEnv(ctx context.Context, env map[string]string) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	lit, err := json.Marshal(string(b))
	if err != nil {
		return err
	}
	res, err := k.Evaluate(ctx, map[string]string{"env": "__import__('os').environ.update(__import__('json').loads(" + string(lit) + ")) or 0"})
	if err != nil {
		return fmt.Errorf("set the environment of kernel %s: %w", k.id, err)
	}
	if r := res["env"]; r.Status != "ok" {
		return fmt.Errorf("set the environment of kernel %s: %s: %s", k.id, r.Ename, r.Evalue)
	}
	k.mu.Lock()
	k.extraEnv = env
	k.mu.Unlock()
	return nil
}
