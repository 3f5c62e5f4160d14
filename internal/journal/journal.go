// Package journal is a bounded, sequence-numbered log of entries that many
// readers follow independently: a kernel's messages and lifecycle events, or
// the messages one API session sent, kept so that a client can resume.
//
// Every entry is stamped with a sequence number (from 1) as it is appended.
// Readers hold only a position, the last sequence number they saw, never a
// cursor or a queue inside the journal: a reader costs the journal no memory,
// any number of them can follow it, a reader that disconnects needs no
// cleanup, and a client that reconnects resumes by sending back the last
// number it saw. Above all, a slow reader can never block the writer: the
// writer never waits for readers, and a reader that fell out of the ring gets
// a *GapError instead of the entries it missed.
//
// The ring is bounded by count and by bytes. The count bounds how far back a
// client can resume; the bytes bound the memory when entries are large (a
// plot, a dataframe), where the count alone could hold gigabytes. The newest
// entry is always kept, however large.
package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is returned by Read once a closed journal has been read to its
// end.
var ErrClosed = errors.New("journal closed")

// ErrBadPosition is returned by Read for a position the journal never
// reached (a client resuming with a sequence number it cannot have seen).
var ErrBadPosition = errors.New("bad journal position")

// GapError says a reader asked for entries the ring no longer holds: it fell
// behind (a slow consumer) or resumed too late.
type GapError struct {
	After  uint64 // the reader's position
	Oldest uint64 // the oldest sequence number still held
}

func (e *GapError) Error() string {
	return fmt.Sprintf("journal: events %d..%d are gone (oldest held is %d)", e.After+1, e.Oldest-1, e.Oldest)
}

// Journal stamps every entry with a sequence number (from 1) and keeps the
// newest ones in a ring bounded by count and bytes. It is safe for
// concurrent use.
type Journal[T any] struct {
	size  func(*T) int
	stamp func(*T, uint64)

	mu       sync.Mutex // guards every field below
	ring     []T
	sizes    []int
	count    int    // entries held
	next     uint64 // sequence number of the next entry
	bytes    int
	maxBytes int
	wake     chan struct{} // closed and replaced on every append
	closed   bool
}

// New returns a journal holding at most maxEntries entries (at least 1) and
// about maxBytes bytes (0 = no byte bound; the newest entry is always kept).
//
// size reports an entry's approximate memory. stamp writes the sequence
// number (and anything else, e.g. a time, or an encoding that includes the
// number) into the entry as it is appended. Append calls stamp and then size,
// once each, under the journal's lock and in sequence order, so size sees the
// entry as stored; both must be quick and must not use the journal. Either
// may be nil: a nil size counts every entry as 0 bytes, a nil stamp stamps
// nothing.
func New[T any](maxEntries, maxBytes int, size func(*T) int, stamp func(*T, uint64)) *Journal[T] {
	if maxEntries < 1 {
		maxEntries = 1
	}
	return &Journal[T]{
		size:     size,
		stamp:    stamp,
		ring:     make([]T, maxEntries),
		sizes:    make([]int, maxEntries),
		next:     1,
		maxBytes: maxBytes,
		wake:     make(chan struct{}),
	}
}

// Append stamps v with the next sequence number, stores it and wakes the
// readers. It returns the sequence number, or 0 if the journal is closed (v
// is then dropped). It never blocks on readers.
func (j *Journal[T]) Append(v T) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0
	}
	if j.count == len(j.ring) {
		j.evictOldest() // before next moves: evictOldest finds the oldest from it
	}
	seq := j.next
	j.next++
	if j.stamp != nil {
		j.stamp(&v, seq)
	}
	size := 0
	if j.size != nil {
		size = j.size(&v) // after stamp: the entry as it is stored
	}
	i := int((seq - 1) % uint64(len(j.ring)))
	j.ring[i], j.sizes[i] = v, size
	j.count++
	j.bytes += size
	for j.maxBytes > 0 && j.bytes > j.maxBytes && j.count > 1 {
		j.evictOldest()
	}
	close(j.wake)
	j.wake = make(chan struct{})
	return seq
}

func (j *Journal[T]) evictOldest() {
	var zero T
	i := int((j.next - uint64(j.count) - 1) % uint64(len(j.ring)))
	j.bytes -= j.sizes[i]
	j.ring[i], j.sizes[i] = zero, 0
	j.count--
}

// Last is the sequence number of the newest entry (0 before the first).
func (j *Journal[T]) Last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Close wakes every reader; they read what is left and then get ErrClosed.
// Later Appends are dropped. Close is idempotent.
func (j *Journal[T]) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.closed {
		j.closed = true
		close(j.wake)
	}
}

// Read returns up to max entries (max <= 0: all held) with sequence numbers
// greater than after, waiting until there is at least one or ctx ends.
// Entries already held are returned whatever the state of ctx. A reader that
// fell out of the ring gets a *GapError; a position past the newest entry is
// an error wrapping ErrBadPosition; a closed journal read to its end gives
// ErrClosed.
func (j *Journal[T]) Read(ctx context.Context, after uint64, max int) ([]T, error) {
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
			out := make([]T, n)
			for k := range out {
				seq := after + 1 + uint64(k)
				out[k] = j.ring[int((seq-1)%uint64(len(j.ring)))]
			}
			j.mu.Unlock()
			return out, nil
		}
		if j.closed {
			j.mu.Unlock()
			return nil, ErrClosed
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
