package flowapi

import (
	"context"
	"strings"
)

// cellOutcome is how a cell followed through the session journal ended
// (for now): finished, waiting for input, or failed before it ran.
type cellOutcome struct {
	final    Msg      // execution_result or execution_error; nil otherwise
	prompt   *Msg     // the input_request the cell waits on
	early    string   // why the cell never ran (kernel did not start, cancelled while queued)
	warnings []string // problems that did not stop the cell (a bad dataset)
	stdout   strings.Builder
	last     uint64 // journal position of the last message read
}

// follow reads the session journal after position after and calls fn for
// every message about cellID until fn returns true or ctx ends.
func (s *Session) follow(ctx context.Context, cellID string, after uint64, fn func(Msg) bool) (uint64, error) {
	for {
		msgs, err := s.Read(ctx, after)
		if err != nil {
			return after, err
		}
		for _, m := range msgs {
			after = m.seq
			if id, _ := m.msg["cell_id"].(string); id != cellID {
				continue
			}
			if fn(m.msg) {
				return after, nil
			}
		}
	}
}

// await follows one cell until it finishes or asks for input; started says
// it already began before after.
func (s *Session) await(ctx context.Context, cellID string, after uint64, started bool) (*cellOutcome, error) {
	out := &cellOutcome{}
	last, err := s.follow(ctx, cellID, after, func(m Msg) bool {
		switch m["type"] {
		case "execution_start":
			started = true
		case "execution_cancelled":
			if !started { // dropped from the queue: it will never run
				out.early = "the cell was cancelled before it started"
				return true
			}
		case "stream_output":
			if m["is_last"] == false && m["stream"] == "stdout" {
				text, _ := m["content"].(string)
				out.stdout.WriteString(text)
			}
		case "input_request":
			out.prompt = &m
			return true
		case "execution_result", "execution_error":
			out.final = m
			return true
		case "error":
			text, _ := m["error"].(string)
			if m["is_last"] == true { // the cell could not run at all
				out.early = text
				return true
			}
			out.warnings = append(out.warnings, text)
		}
		return false
	})
	out.last = last
	return out, err
}

// runningCell returns the id of the cell that is running, if any.
func (s *Session) runningCellID() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		return "", false
	}
	return s.running.cellID, true
}
