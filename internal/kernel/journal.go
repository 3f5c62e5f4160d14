package kernel

import (
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/journal"
)

// Event is one entry of a kernel's journal: a message the kernel sent, or a
// lifecycle event the gateway observed (death, restart, shutdown).
type Event struct {
	Seq     uint64
	Time    time.Time
	Channel jmsg.Channel  // empty for lifecycle events
	Msg     *jmsg.Message // nil for lifecycle events
	Life    *Lifecycle    // nil for kernel messages
}

// Lifecycle kinds.
const (
	LifeDied       = "died"
	LifeRestarting = "restarting"
	LifeRestarted  = "restarted"
	LifeShutdown   = "shutdown"
)

// Lifecycle describes a change of the kernel process that no kernel message
// reports: it died, is being restarted, or was shut down.
type Lifecycle struct {
	Kind string
	// Reason is one plain sentence, e.g. "kernel died: killed by SIGKILL,
	// likely out of memory".
	Reason string
	// StateLost is true when the user's variables are gone.
	StateLost bool
	State     State // the kernel state after this event
	// AutoRestart, on a died event, says an automatic restart follows (a
	// restarting event comes next); otherwise the kernel stays dead.
	AutoRestart bool
}

// Journal holds the events of one kernel: every event is stamped with a
// sequence number (from 1) and the newest are kept in a ring bounded by count
// and bytes. Readers hold only a position, so a slow one never blocks the
// kernel: it gets a *GapError instead. See package journal.
type Journal = journal.Journal[Event]

// ErrJournalClosed is returned by Read once a closed journal has been read
// to its end.
var ErrJournalClosed = journal.ErrClosed

// ErrBadPosition is returned (wrapped) by Read for a position the journal
// never reached (a client resuming with a sequence number it cannot have
// seen).
var ErrBadPosition = journal.ErrBadPosition

// GapError says a reader asked for events the ring no longer holds: it fell
// behind (a slow consumer) or resumed too late.
type GapError = journal.GapError

// NewJournal returns a journal holding at most maxEvents events and about
// maxBytes bytes of message payload (0 = no byte bound; the newest event is
// always kept). Appended events get their Seq, and a Time unless they carry
// one.
func NewJournal(maxEvents, maxBytes int) *Journal {
	return journal.New(maxEvents, maxBytes, eventSize, stampEvent)
}

// stampEvent sets the sequence number of an event being appended, and its
// time unless the caller set one.
func stampEvent(e *Event, seq uint64) {
	e.Seq = seq
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
}

// eventSize approximates the memory an event holds.
func eventSize(e *Event) int {
	n := 128
	if m := e.Msg; m != nil {
		n += len(m.Content) + len(m.Metadata)
		for _, b := range m.Buffers {
			n += len(b)
		}
	}
	return n
}
