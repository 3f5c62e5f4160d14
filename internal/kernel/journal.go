package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
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
}

// ErrJournalClosed is returned by Read once a closed journal has been read
// to its end.
var ErrJournalClosed = errors.New("kernel journal closed")

// ErrBadPosition is returned by Read for a position the journal never
// reached (a client resuming with a sequence number it cannot have seen).
var ErrBadPosition = errors.New("bad journal position")

// GapError says a reader asked for events the ring no longer holds: it fell
// behind (a slow consumer) or resumed too late.
type GapError struct {
	After  uint64 // the reader's position
	Oldest uint64 // the oldest sequence number still held
}

func (e *GapError) Error() string {
	return fmt.Sprintf("journal: events %d..%d are gone (oldest held is %d)", e.After+1, e.Oldest-1, e.Oldest)
}

// Journal stamps every event of one kernel with a sequence number (from 1)
// and keeps the newest ones in a ring bounded by count and bytes. Readers
// hold only a position, so a reader costs no memory and a slow one can never
// block the kernel: it finds a GapError instead. A client that reconnects
// resumes from the last sequence number it saw.
type Journal struct {
	mu       sync.Mutex // guards every field below
	ring     []Event
	sizes    []int
	count    int    // events held
	next     uint64 // sequence number of the next event
	bytes    int
	maxBytes int
	wake     chan struct{} // closed and replaced on every append
	closed   bool
}

// NewJournal returns a journal holding at most maxEvents events and about
// maxBytes bytes of message payload (the newest event is always kept).
func NewJournal(maxEvents, maxBytes int) *Journal {
	if maxEvents < 1 {
		maxEvents = 1
	}
	return &Journal{
		ring:     make([]Event, maxEvents),
		sizes:    make([]int, maxEvents),
		next:     1,
		maxBytes: maxBytes,
		wake:     make(chan struct{}),
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

// Append stamps e with the next sequence number, stores it and wakes the
// readers. It never blocks on readers.
func (j *Journal) Append(e Event) uint64 {
	size := eventSize(&e)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0
	}
	if j.count == len(j.ring) {
		j.evictOldest() // before next moves: evictOldest finds the oldest from it
	}
	e.Seq = j.next
	j.next++
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	i := int((e.Seq - 1) % uint64(len(j.ring)))
	j.ring[i], j.sizes[i] = e, size
	j.count++
	j.bytes += size
	for j.maxBytes > 0 && j.bytes > j.maxBytes && j.count > 1 {
		j.evictOldest()
	}
	close(j.wake)
	j.wake = make(chan struct{})
	return e.Seq
}

func (j *Journal) evictOldest() {
	i := int((j.next - uint64(j.count) - 1) % uint64(len(j.ring)))
	j.bytes -= j.sizes[i]
	j.ring[i], j.sizes[i] = Event{}, 0
	j.count--
}

// Last is the sequence number of the newest event (0 before the first).
func (j *Journal) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Close wakes every reader; they read what is left and then get
// ErrJournalClosed.
func (j *Journal) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.closed {
		j.closed = true
		close(j.wake)
	}
}

// Read returns up to max events with sequence numbers greater than after,
// waiting until there is at least one or ctx ends. A reader that fell out of
// the ring gets a *GapError.
func (j *Journal) Read(ctx context.Context, after uint64, max int) ([]Event, error) {
	for {
		j.mu.Lock()
		oldest := j.next - uint64(j.count)
		if after >= j.next {
			j.mu.Unlock()
			return nil, fmt.Errorf("journal: position %d is ahead of the newest event %d: %w", after, j.next-1, ErrBadPosition)
		}
		if after+1 < oldest {
			j.mu.Unlock()
			return nil, &GapError{After: after, Oldest: oldest}
		}
		if after+1 < j.next {
			n := int(j.next - after - 1)
			if max > 0 && n > max {
				n = max
			}
			out := make([]Event, n)
			for k := range out {
				seq := after + 1 + uint64(k)
				out[k] = j.ring[int((seq-1)%uint64(len(j.ring)))]
			}
			j.mu.Unlock()
			return out, nil
		}
		if j.closed {
			j.mu.Unlock()
			return nil, ErrJournalClosed
		}
		wake := j.wake
		j.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
