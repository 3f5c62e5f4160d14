package flowapi

import (
	"context"
	"errors"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"log/slog"
	"sync/atomic"
	"time"
)

// Audit statuses: how a cell ended.
const (
	auditOK        = "ok"        // the code ran and succeeded
	auditError     = "error"     // the code failed, or could not be run (the kernel did not start, say)
	auditLost      = "lost"      // the cell ended without a reply: the kernel died or the session closed
	auditCancelled = "cancelled" // a cancel, reset, disconnect or the execution timeout stopped it
)

// cellAudit gathers what the audit line of one cell says. It never holds
// the code: that is the user's, and may carry secrets.
type cellAudit struct {
	run      *runningCell
	start    time.Time
	status   string      // auditOK…; a cancelled run overrides all but auditOK
	limited  string      // the rate limit that kept the kernel from starting, if any
	timedOut atomic.Bool // the execution timeout stopped the cell
	cell     *Cell       // set once the code was sent; nil before
}

func newCellAudit(run *runningCell) *cellAudit {
	return &cellAudit{run: run, start: time.Now(), status: auditError}
}

// kernelFailed notes why the cell's kernel could not start.
func (a *cellAudit) kernelFailed(err error) {
	if rl, ok := errors.AsType[*ratelimit.Error](err); ok {
		a.limited = rl.Kind().String()
	}
}

// ended notes how a cell whose code was sent ended.
func (a *cellAudit) ended(end CellEnd) {
	switch o := a.cell.conclude(end); {
	case o.ok:
		a.status = auditOK
	case end.Lost != "":
		a.status = auditLost
	default:
		a.status = auditError
	}
}

// logCell writes the cell's audit line: "cell done" at Info on the
// session's logger (which names the session), with the user, the cell, how
// long it took from leaving the queue, how it ended, the stdout and stderr
// bytes it printed, and the limits it hit.
func (s *Session) logCell(a *cellAudit) {
	s.mu.Lock()
	cancelled := a.run.cancelled
	s.mu.Unlock()
	status := a.status
	if cancelled && status != auditOK {
		status = auditCancelled
	}
	var stdout, stderr int64
	var outputTruncated, streamTruncated bool
	if c := a.cell; c != nil {
		stdout, stderr = c.stdout.total, c.stderr.total
		// As in the result: the final messages repeat only the end of a
		// stream longer than its tail buffer, and past the stream cap
		// nothing more is sent.
		outputTruncated = stdout > int64(c.stdout.max) || stderr > int64(c.stderr.max)
		streamTruncated = c.capped
	}
	attrs := []slog.Attr{
		slog.String("user", s.user),
		slog.String("cell_id", a.run.cellID),
		slog.String("status", status),
		slog.Int64("duration_ms", time.Since(a.start).Milliseconds()),
		slog.Int64("stdout_bytes", stdout),
		slog.Int64("stderr_bytes", stderr),
		slog.Bool("output_truncated", outputTruncated),
		slog.Bool("stream_truncated", streamTruncated),
		slog.Bool("timeout", a.timedOut.Load()),
	}
	if a.limited != "" {
		attrs = append(attrs, slog.String("rate_limited", a.limited))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "cell done", attrs...)
}
