package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testTimeout bounds every wait in these tests so that a bug shows up as a
// failure rather than a hung test binary.
const testTimeout = 30 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// entry is the entry type of these tests: an ID, a payload that counts
// toward the byte bound, and an optional pointer that must come back as
// stored.
type entry struct {
	Seq  uint64
	ID   string
	Data []byte
	Note *note // nil for most entries
}

type note struct {
	Kind string
	Lost bool
}

// entryOverhead is what entrySize counts for an entry without payload.
const entryOverhead = 128

func entrySize(e *entry) int { return entryOverhead + len(e.Data) }

func stampEntry(e *entry, seq uint64) { e.Seq = seq }

func newTestJournal(maxEntries, maxBytes int) *Journal[entry] {
	return New(maxEntries, maxBytes, entrySize, stampEntry)
}

// textEntry is an entry whose ID and payload are text.
func textEntry(text string) entry {
	return entry{ID: text, Data: []byte(text)}
}

// sizedEntry is an entry whose entrySize is exactly size (>= entryOverhead).
func sizedEntry(t testing.TB, tag string, size int) entry {
	t.Helper()
	n := size - entryOverhead
	if n < len(tag) {
		t.Fatalf("sizedEntry(%q, %d): size too small", tag, size)
	}
	e := entry{ID: tag, Data: []byte(tag + strings.Repeat("x", n-len(tag)))}
	if got := entrySize(&e); got != size {
		t.Fatalf("sizedEntry(%q, %d): entrySize = %d", tag, size, got)
	}
	return e
}

func seqs(es []entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// checkBytes asserts the journal's byte accounting matches what it holds.
func checkBytes(t *testing.T, j *Journal[entry]) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	want := 0
	for s := j.next - uint64(j.count); s < j.next; s++ {
		i := int((s - 1) % uint64(len(j.ring)))
		if j.ring[i].Seq != s {
			t.Errorf("ring slot %d holds seq %d, want %d", i, j.ring[i].Seq, s)
		}
		want += entrySize(&j.ring[i])
	}
	if j.bytes != want {
		t.Errorf("journal bytes = %d, want %d (sum of held entry sizes)", j.bytes, want)
	}
}

func TestJournalSequenceNumbers(t *testing.T) {
	var stamped []uint64
	j := New(16, 0, entrySize, func(e *entry, seq uint64) {
		stamped = append(stamped, seq) // under the journal's lock
		e.Seq = seq
	})
	if got := j.Last(); got != 0 {
		t.Fatalf("Last() of an empty journal = %d, want 0", got)
	}
	var got []uint64
	for i := range 5 {
		e := textEntry(fmt.Sprint(i))
		e.Seq = 999 // must be overwritten
		got = append(got, j.Append(e))
	}
	if diff := cmp.Diff(seqRange(1, 5), got); diff != "" {
		t.Errorf("Append sequence numbers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqRange(1, 5), stamped); diff != "" {
		t.Errorf("stamp calls (-want +got):\n%s", diff)
	}
	if got := j.Last(); got != 5 {
		t.Errorf("Last() = %d, want 5", got)
	}
	es, err := j.Read(testCtx(t), 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(seqRange(1, 5), seqs(es)); diff != "" {
		t.Errorf("stored sequence numbers (-want +got):\n%s", diff)
	}
	for i, e := range es {
		if want := fmt.Sprint(i); e.ID != want {
			t.Errorf("entry %d: ID %q, want %q", e.Seq, e.ID, want)
		}
	}
}

func TestJournalSequenceNumbersSingleSlot(t *testing.T) {
	// maxEntries < 1 is clamped to 1; numbering still increases.
	for _, max := range []int{-3, 0, 1} {
		j := newTestJournal(max, 0)
		for want := uint64(1); want <= 3; want++ {
			if got := j.Append(textEntry("x")); got != want {
				t.Fatalf("New(%d): Append #%d = %d", max, want, got)
			}
		}
		es, err := j.Read(testCtx(t), 2, 0)
		if err != nil {
			t.Fatalf("New(%d): Read(2): %v", max, err)
		}
		if diff := cmp.Diff([]uint64{3}, seqs(es)); diff != "" {
			t.Errorf("New(%d): Read(2) (-want +got):\n%s", max, diff)
		}
	}
}

func TestJournalNilFuncs(t *testing.T) {
	// Without size every entry counts 0 bytes, so only the count evicts;
	// without stamp the entries come back as appended.
	j := New[string](3, 1, nil, nil)
	for i := 1; i <= 5; i++ {
		if got := j.Append(fmt.Sprint(i)); got != uint64(i) {
			t.Fatalf("Append #%d = %d", i, got)
		}
	}
	got, err := j.Read(testCtx(t), 2, 0)
	if err != nil {
		t.Fatalf("Read(2): %v", err)
	}
	if diff := cmp.Diff([]string{"3", "4", "5"}, got); diff != "" {
		t.Errorf("Read(2) (-want +got):\n%s", diff)
	}
}

func TestJournalSizeSeesTheStampedEntry(t *testing.T) {
	// An entry whose stored form is made by stamp (here: an encoding that
	// includes the sequence number) is sized as stored.
	j := New(100, 250,
		func(e *entry) int { return entryOverhead + len(e.Data) },
		func(e *entry, seq uint64) {
			e.Seq = seq
			e.Data = []byte(fmt.Sprintf("%d:%s", seq, strings.Repeat("x", 98)))
		})
	for range 3 {
		j.Append(entry{}) // 128 + 100 bytes once stamped
	}
	checkBytes(t, j)
	j.mu.Lock()
	count, bytes := j.count, j.bytes
	j.mu.Unlock()
	if count != 1 || bytes != entryOverhead+100 {
		t.Errorf("held %d entries, %d bytes; want 1 entry of %d bytes (the stamped size)", count, bytes, entryOverhead+100)
	}
}

func TestJournalRead(t *testing.T) {
	j := newTestJournal(32, 0)
	for i := 1; i <= 10; i++ {
		j.Append(textEntry(fmt.Sprintf("line %d", i)))
	}
	tests := []struct {
		after uint64
		max   int
		want  []uint64
	}{
		{after: 0, max: 0, want: seqRange(1, 10)},
		{after: 0, max: -1, want: seqRange(1, 10)},
		{after: 0, max: 3, want: seqRange(1, 3)},
		{after: 0, max: 10, want: seqRange(1, 10)},
		{after: 0, max: 100, want: seqRange(1, 10)},
		{after: 4, max: 0, want: seqRange(5, 10)},
		{after: 4, max: 2, want: seqRange(5, 6)},
		{after: 9, max: 5, want: []uint64{10}},
		{after: 9, max: 1, want: []uint64{10}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("after=%d,max=%d", tt.after, tt.max), func(t *testing.T) {
			es, err := j.Read(testCtx(t), tt.after, tt.max)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, seqs(es)); diff != "" {
				t.Errorf("sequence numbers (-want +got):\n%s", diff)
			}
			for _, e := range es {
				if want := fmt.Sprintf("line %d", e.Seq); string(e.Data) != want {
					t.Errorf("entry %d: data %q, want %q", e.Seq, e.Data, want)
				}
				if e.ID != string(e.Data) {
					t.Errorf("entry %d: ID %q, want %q", e.Seq, e.ID, e.Data)
				}
			}
		})
	}
}

// TestJournalEntriesOfAnotherShape stores an entry without payload but with a
// pointer (as the kernel stores lifecycle events among messages).
func TestJournalEntriesOfAnotherShape(t *testing.T) {
	j := newTestJournal(8, 0)
	j.Append(textEntry("a"))
	n := &note{Kind: "died", Lost: true}
	if got := j.Append(entry{Note: n}); got != 2 {
		t.Fatalf("Append(note) = %d, want 2", got)
	}
	es, err := j.Read(testCtx(t), 1, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(es) != 1 || es[0].Data != nil || es[0].Note == nil {
		t.Fatalf("Read(1) = %+v, want the note entry", es)
	}
	if es[0].Note != n {
		t.Errorf("Read(1) note = %p, want the appended %p", es[0].Note, n)
	}
	if diff := cmp.Diff(*n, *es[0].Note); diff != "" {
		t.Errorf("note (-want +got):\n%s", diff)
	}
	checkBytes(t, j)
}

// TestJournalEvictionByCountGap wraps a small ring several times and checks
// the GapError readers that fell behind get.
func TestJournalEvictionByCountGap(t *testing.T) {
	const size = 4
	j := newTestJournal(size, 0)
	const total = 3*size + 2 // the ring wraps three times
	for i := 1; i <= total; i++ {
		if got := j.Append(textEntry(fmt.Sprint(i))); got != uint64(i) {
			t.Fatalf("Append #%d = %d", i, got)
		}
	}
	const oldest = total - size + 1 // 11
	for _, after := range []uint64{0, 1, 5, oldest - 2} {
		t.Run(fmt.Sprintf("after=%d", after), func(t *testing.T) {
			es, err := j.Read(testCtx(t), after, 0)
			var gap *GapError
			if !errors.As(err, &gap) {
				t.Fatalf("Read(%d) = %v, %v; want a *GapError", after, seqs(es), err)
			}
			if diff := cmp.Diff(GapError{After: after, Oldest: oldest}, *gap); diff != "" {
				t.Errorf("GapError (-want +got):\n%s", diff)
			}
			want := fmt.Sprintf("journal: events %d..%d are gone (oldest held is %d)", after+1, oldest-1, oldest)
			if gap.Error() != want {
				t.Errorf("Error() = %q, want %q", gap.Error(), want)
			}
			if errors.Is(err, ErrBadPosition) || errors.Is(err, ErrClosed) {
				t.Errorf("GapError %v must not match ErrBadPosition or ErrClosed", err)
			}
		})
	}
	// The newest entry is always readable.
	es, err := j.Read(testCtx(t), total-1, 0)
	if err != nil {
		t.Fatalf("Read(%d): %v", total-1, err)
	}
	if diff := cmp.Diff([]uint64{total}, seqs(es)); diff != "" {
		t.Errorf("Read(%d) (-want +got):\n%s", total-1, diff)
	}
	if got := j.Last(); got != total {
		t.Errorf("Last() = %d, want %d", got, total)
	}
}

func TestJournalEvictionByBytes(t *testing.T) {
	// A ring big enough that only the byte bound evicts.
	const ev = 1000
	j := newTestJournal(100, 3500) // holds three 1000-byte entries
	for i := 1; i <= 5; i++ {
		j.Append(sizedEntry(t, fmt.Sprintf("small-%d", i), ev))
		checkBytes(t, j)
	}
	ctx := testCtx(t)

	expectGap := func(after, oldest uint64) {
		t.Helper()
		_, err := j.Read(ctx, after, 0)
		var gap *GapError
		if !errors.As(err, &gap) {
			t.Fatalf("Read(%d) error = %v, want *GapError", after, err)
		}
		if diff := cmp.Diff(GapError{After: after, Oldest: oldest}, *gap); diff != "" {
			t.Errorf("Read(%d) GapError (-want +got):\n%s", after, diff)
		}
	}
	expectHeld := func(after uint64, wantIDs ...string) {
		t.Helper()
		es, err := j.Read(ctx, after, 0)
		if err != nil {
			t.Fatalf("Read(%d): %v", after, err)
		}
		var got []string
		for _, e := range es {
			if e.Note != nil {
				got = append(got, "note:"+e.Note.Kind)
				continue
			}
			got = append(got, e.ID)
		}
		if diff := cmp.Diff(wantIDs, got); diff != "" {
			t.Errorf("Read(%d) entries (-want +got):\n%s", after, diff)
		}
	}

	expectGap(0, 3)
	expectGap(1, 3)
	expectHeld(2, "small-3", "small-4", "small-5")

	// An entry bigger than the whole budget evicts everything else but is
	// itself kept.
	if got := j.Append(sizedEntry(t, "huge", 10*3500)); got != 6 {
		t.Fatalf("Append(huge) = %d, want 6", got)
	}
	checkBytes(t, j)
	expectGap(4, 6)
	expectHeld(5, "huge")

	// The next small entry pushes the huge one out.
	j.Append(sizedEntry(t, "small-7", ev))
	checkBytes(t, j)
	expectGap(5, 7)
	expectHeld(6, "small-7")

	// Entries without payload count their fixed overhead only.
	j.Append(entry{Note: &note{Kind: "restarting"}})
	checkBytes(t, j)
	expectHeld(6, "small-7", "note:restarting")
}

func TestJournalUnboundedBytes(t *testing.T) {
	// maxBytes <= 0 means no byte bound: only the count evicts.
	for _, maxBytes := range []int{0, -1} {
		j := newTestJournal(10, maxBytes)
		for i := 1; i <= 10; i++ {
			j.Append(sizedEntry(t, fmt.Sprint(i), 1<<20))
		}
		es, err := j.Read(testCtx(t), 0, 0)
		if err != nil {
			t.Fatalf("maxBytes %d: Read: %v", maxBytes, err)
		}
		if diff := cmp.Diff(seqRange(1, 10), seqs(es)); diff != "" {
			t.Errorf("maxBytes %d: held (-want +got):\n%s", maxBytes, diff)
		}
		checkBytes(t, j)
	}
}

func TestJournalReadAheadIsBadPosition(t *testing.T) {
	tests := []struct {
		name    string
		entries int
		close   bool
		after   uint64
	}{
		{name: "empty", entries: 0, after: 1},
		{name: "empty far", entries: 0, after: 1 << 40},
		{name: "one past newest", entries: 3, after: 4},
		{name: "far past newest", entries: 3, after: 100},
		{name: "closed", entries: 3, close: true, after: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newTestJournal(8, 0)
			for range tt.entries {
				j.Append(textEntry("x"))
			}
			if tt.close {
				j.Close()
			}
			es, err := j.Read(testCtx(t), tt.after, 0)
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("Read(%d) = %v, %v; want an error wrapping ErrBadPosition", tt.after, seqs(es), err)
			}
			if es != nil {
				t.Errorf("Read(%d) returned entries %v with the error", tt.after, seqs(es))
			}
			if want := fmt.Sprintf("position %d", tt.after); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
			want := fmt.Sprintf("journal: position %d is ahead of the newest event %d: bad journal position", tt.after, tt.entries)
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			var gap *GapError
			if errors.As(err, &gap) {
				t.Errorf("ErrBadPosition case returned a GapError: %v", err)
			}
		})
	}
}

func TestJournalBlockedReadWakesOnAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newTestJournal(8, 0)
		j.Append(textEntry("before-1"))
		j.Append(textEntry("before-2"))

		type result struct {
			es  []entry
			err error
		}
		done := make(chan result, 1)
		go func() {
			es, err := j.Read(t.Context(), 2, 0)
			done <- result{es, err}
		}()
		synctest.Wait() // the reader is now blocked waiting for an entry
		select {
		case r := <-done:
			t.Fatalf("Read returned before any new entry: %v, %v", seqs(r.es), r.err)
		default:
		}

		want := entry{ID: "wake up", Note: &note{Kind: "wake up"}}
		if got := j.Append(want); got != 3 {
			t.Fatalf("Append = %d, want 3", got)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("Read: %v", r.err)
		}
		if len(r.es) != 1 || r.es[0].Seq != 3 || r.es[0].Note != want.Note {
			t.Fatalf("Read = %v, want exactly the appended entry 3", seqs(r.es))
		}
	})
}

func TestJournalBlockedReadWakesOnAppendRealTime(t *testing.T) {
	// The same without the synctest bubble: several readers parked on an
	// empty journal all get the first entry.
	j := newTestJournal(8, 0)
	ctx := testCtx(t)
	const readers = 4
	results := make(chan []entry, readers)
	errs := make(chan error, readers)
	started := make(chan struct{}, readers)
	for range readers {
		go func() {
			started <- struct{}{}
			es, err := j.Read(ctx, 0, 0)
			if err != nil {
				errs <- err
				return
			}
			results <- es
		}()
	}
	for range readers {
		<-started
	}
	e := entry{ID: "first", Note: &note{Kind: "first"}}
	j.Append(e)
	for range readers {
		select {
		case es := <-results:
			if len(es) < 1 || es[0].Seq != 1 || es[0].Note != e.Note {
				t.Errorf("reader got %v, want entry 1 first", seqs(es))
			}
		case err := <-errs:
			t.Errorf("reader: %v", err)
		case <-ctx.Done():
			t.Fatal("readers did not wake on Append")
		}
	}
}

func TestJournalReadContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newTestJournal(8, 0)
		j.Append(textEntry("x"))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := j.Read(ctx, 1, 0)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Read after cancel = %v, want context.Canceled", err)
		}
	})
}

func TestJournalReadContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newTestJournal(8, 0)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		_, err := j.Read(ctx, 0, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read = %v, want context.DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Errorf("Read returned after %v (bubble time), want 1m", waited)
		}
	})
}

func TestJournalReadCanceledContextStillReturnsHeldEntries(t *testing.T) {
	// Entries already held are returned without looking at ctx.
	j := newTestJournal(8, 0)
	j.Append(textEntry("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	es, err := j.Read(ctx, 0, 0)
	if err != nil || len(es) != 1 {
		t.Fatalf("Read with canceled ctx = %v, %v; want entry 1", seqs(es), err)
	}
	if _, err := j.Read(ctx, 1, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read at the end with canceled ctx = %v, want context.Canceled", err)
	}
}

func TestJournalClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newTestJournal(8, 0)
		for range 3 {
			j.Append(textEntry("x"))
		}
		// A reader parked at the end when Close comes.
		parked := make(chan error, 1)
		go func() {
			es, err := j.Read(t.Context(), 3, 0)
			if err == nil {
				err = fmt.Errorf("got entries %v", seqs(es))
			}
			parked <- err
		}()
		synctest.Wait()

		j.Close()
		if err := <-parked; !errors.Is(err, ErrClosed) {
			t.Errorf("parked reader after Close: %v, want ErrClosed", err)
		}

		// A reader behind drains what is left, then gets ErrClosed.
		ctx := t.Context()
		var got []uint64
		after := uint64(0)
		for {
			es, err := j.Read(ctx, after, 2)
			if errors.Is(err, ErrClosed) {
				break
			}
			if err != nil {
				t.Fatalf("Read(%d) after Close: %v", after, err)
			}
			got = append(got, seqs(es)...)
			after = es[len(es)-1].Seq
		}
		if diff := cmp.Diff(seqRange(1, 3), got); diff != "" {
			t.Errorf("drained after Close (-want +got):\n%s", diff)
		}

		// Appending to a closed journal is a no-op.
		if seq := j.Append(textEntry("late")); seq != 0 {
			t.Errorf("Append after Close = %d, want 0", seq)
		}
		if last := j.Last(); last != 3 {
			t.Errorf("Last() after Close = %d, want 3", last)
		}
		// Close is idempotent.
		j.Close()
		if _, err := j.Read(ctx, 3, 0); !errors.Is(err, ErrClosed) {
			t.Errorf("Read(3) after second Close = %v, want ErrClosed", err)
		}
	})
}

func TestJournalCloseEmpty(t *testing.T) {
	j := newTestJournal(8, 0)
	j.Close()
	if _, err := j.Read(testCtx(t), 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read of a closed empty journal = %v, want ErrClosed", err)
	}
	if seq := j.Append(textEntry("x")); seq != 0 {
		t.Errorf("Append after Close = %d, want 0", seq)
	}
}

// TestJournalConcurrent has N writers append M entries each while K readers
// read everything from 0 until the journal is closed. Every reader must see
// 1..N*M exactly once and in order, and every writer's entries in the order
// it appended them.
func TestJournalConcurrent(t *testing.T) {
	const (
		writers = 8
		perW    = 500
		readers = 4
		total   = writers * perW
	)
	j := newTestJournal(total, 0)
	ctx := testCtx(t)

	type seen struct {
		seqs []uint64
		ids  []string
		err  error
	}
	results := make([]seen, readers)
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			res := &results[r]
			after := uint64(0)
			for {
				es, err := j.Read(ctx, after, 64)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					res.err = err
					return
				}
				for _, e := range es {
					res.seqs = append(res.seqs, e.Seq)
					res.ids = append(res.ids, e.ID)
				}
				after = es[len(es)-1].Seq
			}
		})
	}

	start := make(chan struct{})
	var wwg sync.WaitGroup
	for w := range writers {
		wwg.Go(func() {
			<-start
			for i := range perW {
				if seq := j.Append(textEntry(fmt.Sprintf("%d/%d", w, i))); seq == 0 {
					t.Errorf("writer %d: Append returned 0 on an open journal", w)
					return
				}
			}
		})
	}
	close(start)
	wwg.Wait()
	if got := j.Last(); got != total {
		t.Errorf("Last() = %d, want %d", got, total)
	}
	j.Close()
	rwg.Wait()

	want := seqRange(1, total)
	for r, res := range results {
		if res.err != nil {
			t.Errorf("reader %d: %v", r, res.err)
			continue
		}
		if diff := cmp.Diff(want, res.seqs); diff != "" {
			t.Errorf("reader %d sequence numbers (-want +got):\n%s", r, diff)
			continue
		}
		next := make([]int, writers)
		for _, id := range res.ids {
			var w, i int
			if _, err := fmt.Sscanf(id, "%d/%d", &w, &i); err != nil {
				t.Fatalf("reader %d: bad id %q", r, id)
			}
			if i != next[w] {
				t.Errorf("reader %d: writer %d entry %d seen when %d was expected", r, w, i, next[w])
				break
			}
			next[w]++
		}
		for w, n := range next {
			if n != perW {
				t.Errorf("reader %d: saw %d entries of writer %d, want %d", r, n, w, perW)
			}
		}
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j := newTestJournal(1024, 1<<20)
	e := textEntry(strings.Repeat("x", 80))
	b.ReportAllocs()
	for b.Loop() {
		j.Append(e)
	}
}

func BenchmarkJournalRead(b *testing.B) {
	const held = 1024
	j := newTestJournal(held, 0)
	e := textEntry(strings.Repeat("x", 80))
	for range held {
		j.Append(e)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for after := uint64(0); after < held; {
			es, err := j.Read(ctx, after, 256)
			if err != nil {
				b.Fatal(err)
			}
			after = es[len(es)-1].Seq
		}
	}
}

// TestJournalEvictionByCount wraps a 4-slot ring several times; every entry
// still held must be readable with its own sequence number and payload.
func TestJournalEvictionByCount(t *testing.T) {
	const size = 4
	j := newTestJournal(size, 0)
	for i := 1; i <= 3*size+2; i++ {
		j.Append(textEntry(fmt.Sprintf("line %d", i)))
		checkBytes(t, j)
		oldest := uint64(1)
		if i > size {
			oldest = uint64(i - size + 1)
		}
		es, err := j.Read(testCtx(t), oldest-1, 0)
		if err != nil {
			t.Fatalf("after %d appends: Read(%d): %v", i, oldest-1, err)
		}
		if diff := cmp.Diff(seqRange(oldest, uint64(i)), seqs(es)); diff != "" {
			t.Fatalf("after %d appends: held sequence numbers (-want +got):\n%s", i, diff)
		}
		for _, e := range es {
			if string(e.Data) != fmt.Sprintf("line %d", e.Seq) {
				t.Fatalf("after %d appends: entry %d holds %+v", i, e.Seq, e)
			}
		}
	}
}

// TestJournalEvictedSlotsAreCleared checks an evicted entry is dropped from
// the ring, so that the journal does not keep its memory alive.
func TestJournalEvictedSlotsAreCleared(t *testing.T) {
	j := newTestJournal(4, 3*entryOverhead)
	for i := range 5 {
		j.Append(entry{ID: fmt.Sprint(i), Note: &note{}})
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	held := 0
	for i, e := range j.ring {
		switch {
		case e.Note != nil:
			held++
		case e.ID != "" || e.Seq != 0 || j.sizes[i] != 0:
			t.Errorf("evicted slot %d not cleared: %+v, size %d", i, e, j.sizes[i])
		}
	}
	if held != 3 || j.count != 3 {
		t.Errorf("held %d entries (count %d), want 3", held, j.count)
	}
}
