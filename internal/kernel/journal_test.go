package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
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

// testStreamEvent is an iopub stream event whose text is text.
func testStreamEvent(t testing.TB, text string) Event {
	t.Helper()
	m, err := jmsg.New(jmsg.Stream, "session", "user", nil, jmsg.StreamContent{Name: "stdout", Text: text})
	if err != nil {
		t.Fatalf("jmsg.New: %v", err)
	}
	return Event{Channel: jmsg.IOPub, Msg: m}
}

// testSizedEvent is an event whose eventSize is exactly size (>= 128).
func testSizedEvent(t testing.TB, tag string, size int) Event {
	t.Helper()
	n := size - 128
	if n < len(tag)+2 {
		t.Fatalf("testSizedEvent(%q, %d): size too small", tag, size)
	}
	// A JSON string of exactly n bytes: quotes, the tag, then padding.
	content := `"` + tag + strings.Repeat("x", n-len(tag)-2) + `"`
	e := Event{Channel: jmsg.IOPub, Msg: &jmsg.Message{Header: jmsg.Header{MsgID: tag}, Content: json.RawMessage(content)}}
	if got := eventSize(&e); got != size {
		t.Fatalf("testSizedEvent(%q, %d): eventSize = %d", tag, size, got)
	}
	return e
}

func seqs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
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
func checkBytes(t *testing.T, j *Journal) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	want := 0
	for s := j.next - uint64(j.count); s < j.next; s++ {
		i := int((s - 1) % uint64(len(j.ring)))
		if j.ring[i].Seq != s {
			t.Errorf("ring slot %d holds seq %d, want %d", i, j.ring[i].Seq, s)
		}
		want += eventSize(&j.ring[i])
	}
	if j.bytes != want {
		t.Errorf("journal bytes = %d, want %d (sum of held event sizes)", j.bytes, want)
	}
}

func TestJournalSequenceNumbers(t *testing.T) {
	j := NewJournal(16, 0)
	if got := j.Last(); got != 0 {
		t.Fatalf("Last() of an empty journal = %d, want 0", got)
	}
	stamp := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []uint64
	for i := range 5 {
		e := testStreamEvent(t, fmt.Sprint(i))
		if i == 2 {
			e.Time = stamp
		}
		e.Seq = 999 // must be overwritten
		got = append(got, j.Append(e))
	}
	if diff := cmp.Diff(seqRange(1, 5), got); diff != "" {
		t.Errorf("Append sequence numbers (-want +got):\n%s", diff)
	}
	if got := j.Last(); got != 5 {
		t.Errorf("Last() = %d, want 5", got)
	}
	evs, err := j.Read(testCtx(t), 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(seqRange(1, 5), seqs(evs)); diff != "" {
		t.Errorf("stored sequence numbers (-want +got):\n%s", diff)
	}
	for i, e := range evs {
		switch {
		case i == 2 && !e.Time.Equal(stamp):
			t.Errorf("event %d: Time = %v, want the caller's %v", e.Seq, e.Time, stamp)
		case e.Time.IsZero():
			t.Errorf("event %d: Time not stamped", e.Seq)
		}
	}
}

func TestJournalSequenceNumbersSingleSlot(t *testing.T) {
	// maxEvents < 1 is clamped to 1; numbering still increases.
	for _, max := range []int{-3, 0, 1} {
		j := NewJournal(max, 0)
		for want := uint64(1); want <= 3; want++ {
			if got := j.Append(testStreamEvent(t, "x")); got != want {
				t.Fatalf("NewJournal(%d): Append #%d = %d", max, want, got)
			}
		}
		evs, err := j.Read(testCtx(t), 2, 0)
		if err != nil {
			t.Fatalf("NewJournal(%d): Read(2): %v", max, err)
		}
		if diff := cmp.Diff([]uint64{3}, seqs(evs)); diff != "" {
			t.Errorf("NewJournal(%d): Read(2) (-want +got):\n%s", max, diff)
		}
	}
}

func TestJournalRead(t *testing.T) {
	j := NewJournal(32, 0)
	for i := 1; i <= 10; i++ {
		j.Append(testStreamEvent(t, fmt.Sprintf("line %d", i)))
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
			evs, err := j.Read(testCtx(t), tt.after, tt.max)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, seqs(evs)); diff != "" {
				t.Errorf("sequence numbers (-want +got):\n%s", diff)
			}
			for _, e := range evs {
				var c jmsg.StreamContent
				if err := e.Msg.Decode(&c); err != nil {
					t.Fatalf("event %d: %v", e.Seq, err)
				}
				if want := fmt.Sprintf("line %d", e.Seq); c.Text != want {
					t.Errorf("event %d: text %q, want %q", e.Seq, c.Text, want)
				}
				if e.Channel != jmsg.IOPub {
					t.Errorf("event %d: channel %q, want iopub", e.Seq, e.Channel)
				}
			}
		})
	}
}

func TestJournalLifecycleEvents(t *testing.T) {
	j := NewJournal(8, 0)
	j.Append(testStreamEvent(t, "a"))
	life := &Lifecycle{Kind: LifeDied, Reason: "kernel died: killed by SIGKILL", StateLost: true, State: Dead}
	if got := j.Append(Event{Life: life}); got != 2 {
		t.Fatalf("Append(lifecycle) = %d, want 2", got)
	}
	evs, err := j.Read(testCtx(t), 1, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(evs) != 1 || evs[0].Msg != nil || evs[0].Life == nil {
		t.Fatalf("Read(1) = %+v, want the lifecycle event", evs)
	}
	if diff := cmp.Diff(*life, *evs[0].Life); diff != "" {
		t.Errorf("lifecycle (-want +got):\n%s", diff)
	}
	checkBytes(t, j)
}

// TestJournalEvictionByCountGap wraps a small ring several times and checks
// the GapError readers that fell behind get.
func TestJournalEvictionByCountGap(t *testing.T) {
	const size = 4
	j := NewJournal(size, 0)
	const total = 3*size + 2 // the ring wraps three times
	for i := 1; i <= total; i++ {
		if got := j.Append(testStreamEvent(t, fmt.Sprint(i))); got != uint64(i) {
			t.Fatalf("Append #%d = %d", i, got)
		}
	}
	const oldest = total - size + 1 // 11
	for _, after := range []uint64{0, 1, 5, oldest - 2} {
		t.Run(fmt.Sprintf("after=%d", after), func(t *testing.T) {
			evs, err := j.Read(testCtx(t), after, 0)
			var gap *GapError
			if !errors.As(err, &gap) {
				t.Fatalf("Read(%d) = %v, %v; want a *GapError", after, seqs(evs), err)
			}
			if diff := cmp.Diff(GapError{After: after, Oldest: oldest}, *gap); diff != "" {
				t.Errorf("GapError (-want +got):\n%s", diff)
			}
			want := fmt.Sprintf("journal: events %d..%d are gone (oldest held is %d)", after+1, oldest-1, oldest)
			if gap.Error() != want {
				t.Errorf("Error() = %q, want %q", gap.Error(), want)
			}
			if errors.Is(err, ErrBadPosition) || errors.Is(err, ErrJournalClosed) {
				t.Errorf("GapError %v must not match ErrBadPosition or ErrJournalClosed", err)
			}
		})
	}
	// The newest event is always readable.
	evs, err := j.Read(testCtx(t), total-1, 0)
	if err != nil {
		t.Fatalf("Read(%d): %v", total-1, err)
	}
	if diff := cmp.Diff([]uint64{total}, seqs(evs)); diff != "" {
		t.Errorf("Read(%d) (-want +got):\n%s", total-1, diff)
	}
	if got := j.Last(); got != total {
		t.Errorf("Last() = %d, want %d", got, total)
	}
}

func TestJournalEvictionByBytes(t *testing.T) {
	// A ring big enough that only the byte bound evicts.
	const ev = 1000
	j := NewJournal(100, 3500) // holds three 1000-byte events
	for i := 1; i <= 5; i++ {
		j.Append(testSizedEvent(t, fmt.Sprintf("small-%d", i), ev))
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
		evs, err := j.Read(ctx, after, 0)
		if err != nil {
			t.Fatalf("Read(%d): %v", after, err)
		}
		var got []string
		for _, e := range evs {
			if e.Life != nil {
				got = append(got, "life:"+e.Life.Kind)
				continue
			}
			got = append(got, e.Msg.Header.MsgID)
		}
		if diff := cmp.Diff(wantIDs, got); diff != "" {
			t.Errorf("Read(%d) events (-want +got):\n%s", after, diff)
		}
	}

	expectGap(0, 3)
	expectGap(1, 3)
	expectHeld(2, "small-3", "small-4", "small-5")

	// An event bigger than the whole budget evicts everything else but is
	// itself kept.
	if got := j.Append(testSizedEvent(t, "huge", 10*3500)); got != 6 {
		t.Fatalf("Append(huge) = %d, want 6", got)
	}
	checkBytes(t, j)
	expectGap(4, 6)
	expectHeld(5, "huge")

	// The next small event pushes the huge one out.
	j.Append(testSizedEvent(t, "small-7", ev))
	checkBytes(t, j)
	expectGap(5, 7)
	expectHeld(6, "small-7")

	// Lifecycle events (no payload) count their fixed overhead only.
	j.Append(Event{Life: &Lifecycle{Kind: LifeRestarting}})
	checkBytes(t, j)
	expectHeld(6, "small-7", "life:"+LifeRestarting)
}

func TestJournalUnboundedBytes(t *testing.T) {
	// maxBytes <= 0 means no byte bound: only the count evicts.
	j := NewJournal(10, 0)
	for i := 1; i <= 10; i++ {
		j.Append(testSizedEvent(t, fmt.Sprint(i), 1<<20))
	}
	evs, err := j.Read(testCtx(t), 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(seqRange(1, 10), seqs(evs)); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	checkBytes(t, j)
}

func TestJournalReadAheadIsBadPosition(t *testing.T) {
	tests := []struct {
		name   string
		events int
		close  bool
		after  uint64
	}{
		{name: "empty", events: 0, after: 1},
		{name: "empty far", events: 0, after: 1 << 40},
		{name: "one past newest", events: 3, after: 4},
		{name: "far past newest", events: 3, after: 100},
		{name: "closed", events: 3, close: true, after: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJournal(8, 0)
			for range tt.events {
				j.Append(testStreamEvent(t, "x"))
			}
			if tt.close {
				j.Close()
			}
			evs, err := j.Read(testCtx(t), tt.after, 0)
			if !errors.Is(err, ErrBadPosition) {
				t.Fatalf("Read(%d) = %v, %v; want an error wrapping ErrBadPosition", tt.after, seqs(evs), err)
			}
			if evs != nil {
				t.Errorf("Read(%d) returned events %v with the error", tt.after, seqs(evs))
			}
			if want := fmt.Sprintf("position %d", tt.after); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
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
		j := NewJournal(8, 0)
		j.Append(testStreamEvent(t, "before-1"))
		j.Append(testStreamEvent(t, "before-2"))

		type result struct {
			evs []Event
			err error
		}
		done := make(chan result, 1)
		go func() {
			evs, err := j.Read(t.Context(), 2, 0)
			done <- result{evs, err}
		}()
		synctest.Wait() // the reader is now blocked waiting for an event
		select {
		case r := <-done:
			t.Fatalf("Read returned before any new event: %v, %v", seqs(r.evs), r.err)
		default:
		}

		want := testStreamEvent(t, "wake up")
		if got := j.Append(want); got != 3 {
			t.Fatalf("Append = %d, want 3", got)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("Read: %v", r.err)
		}
		if len(r.evs) != 1 || r.evs[0].Seq != 3 || r.evs[0].Msg != want.Msg {
			t.Fatalf("Read = %v, want exactly the appended event 3", seqs(r.evs))
		}
	})
}

func TestJournalBlockedReadWakesOnAppendRealTime(t *testing.T) {
	// The same without the synctest bubble: several readers parked on an
	// empty journal all get the first event.
	j := NewJournal(8, 0)
	ctx := testCtx(t)
	const readers = 4
	results := make(chan []Event, readers)
	errs := make(chan error, readers)
	started := make(chan struct{}, readers)
	for range readers {
		go func() {
			started <- struct{}{}
			evs, err := j.Read(ctx, 0, 0)
			if err != nil {
				errs <- err
				return
			}
			results <- evs
		}()
	}
	for range readers {
		<-started
	}
	e := testStreamEvent(t, "first")
	j.Append(e)
	for range readers {
		select {
		case evs := <-results:
			if len(evs) < 1 || evs[0].Seq != 1 || evs[0].Msg != e.Msg {
				t.Errorf("reader got %v, want event 1 first", seqs(evs))
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
		j := NewJournal(8, 0)
		j.Append(testStreamEvent(t, "x"))
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
		j := NewJournal(8, 0)
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

func TestJournalReadCanceledContextStillReturnsHeldEvents(t *testing.T) {
	// Events already held are returned without looking at ctx.
	j := NewJournal(8, 0)
	j.Append(testStreamEvent(t, "x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	evs, err := j.Read(ctx, 0, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Read with canceled ctx = %v, %v; want event 1", seqs(evs), err)
	}
	if _, err := j.Read(ctx, 1, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read at the end with canceled ctx = %v, want context.Canceled", err)
	}
}

func TestJournalClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := NewJournal(8, 0)
		for range 3 {
			j.Append(testStreamEvent(t, "x"))
		}
		// A reader parked at the end when Close comes.
		parked := make(chan error, 1)
		go func() {
			evs, err := j.Read(t.Context(), 3, 0)
			if err == nil {
				err = fmt.Errorf("got events %v", seqs(evs))
			}
			parked <- err
		}()
		synctest.Wait()

		j.Close()
		if err := <-parked; !errors.Is(err, ErrJournalClosed) {
			t.Errorf("parked reader after Close: %v, want ErrJournalClosed", err)
		}

		// A reader behind drains what is left, then gets ErrJournalClosed.
		ctx := t.Context()
		var got []uint64
		after := uint64(0)
		for {
			evs, err := j.Read(ctx, after, 2)
			if errors.Is(err, ErrJournalClosed) {
				break
			}
			if err != nil {
				t.Fatalf("Read(%d) after Close: %v", after, err)
			}
			got = append(got, seqs(evs)...)
			after = evs[len(evs)-1].Seq
		}
		if diff := cmp.Diff(seqRange(1, 3), got); diff != "" {
			t.Errorf("drained after Close (-want +got):\n%s", diff)
		}

		// Appending to a closed journal is a no-op.
		if seq := j.Append(testStreamEvent(t, "late")); seq != 0 {
			t.Errorf("Append after Close = %d, want 0", seq)
		}
		if last := j.Last(); last != 3 {
			t.Errorf("Last() after Close = %d, want 3", last)
		}
		// Close is idempotent.
		j.Close()
		if _, err := j.Read(ctx, 3, 0); !errors.Is(err, ErrJournalClosed) {
			t.Errorf("Read(3) after second Close = %v, want ErrJournalClosed", err)
		}
	})
}

func TestJournalCloseEmpty(t *testing.T) {
	j := NewJournal(8, 0)
	j.Close()
	if _, err := j.Read(testCtx(t), 0, 0); !errors.Is(err, ErrJournalClosed) {
		t.Fatalf("Read of a closed empty journal = %v, want ErrJournalClosed", err)
	}
	if seq := j.Append(testStreamEvent(t, "x")); seq != 0 {
		t.Errorf("Append after Close = %d, want 0", seq)
	}
}

// TestJournalConcurrent has N writers append M events each while K readers
// read everything from 0 until the journal is closed. Every reader must see
// 1..N*M exactly once and in order, and every writer's events in the order
// it appended them.
func TestJournalConcurrent(t *testing.T) {
	const (
		writers = 8
		perW    = 500
		readers = 4
		total   = writers * perW
	)
	j := NewJournal(total, 0)
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
				evs, err := j.Read(ctx, after, 64)
				if errors.Is(err, ErrJournalClosed) {
					return
				}
				if err != nil {
					res.err = err
					return
				}
				for _, e := range evs {
					res.seqs = append(res.seqs, e.Seq)
					res.ids = append(res.ids, e.Msg.Header.MsgID)
				}
				after = evs[len(evs)-1].Seq
			}
		})
	}

	start := make(chan struct{})
	var wwg sync.WaitGroup
	for w := range writers {
		wwg.Go(func() {
			<-start
			for i := range perW {
				m := &jmsg.Message{Header: jmsg.Header{MsgID: fmt.Sprintf("%d/%d", w, i)}, Content: json.RawMessage(`{}`)}
				if seq := j.Append(Event{Channel: jmsg.IOPub, Msg: m}); seq == 0 {
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
				t.Errorf("reader %d: writer %d event %d seen when %d was expected", r, w, i, next[w])
				break
			}
			next[w]++
		}
		for w, n := range next {
			if n != perW {
				t.Errorf("reader %d: saw %d events of writer %d, want %d", r, n, w, perW)
			}
		}
	}
}

func BenchmarkJournalAppend(b *testing.B) {
	j := NewJournal(1024, 1<<20)
	e := testStreamEvent(b, strings.Repeat("x", 80))
	b.ReportAllocs()
	for b.Loop() {
		j.Append(e)
	}
}

func BenchmarkJournalRead(b *testing.B) {
	const held = 1024
	j := NewJournal(held, 0)
	e := testStreamEvent(b, strings.Repeat("x", 80))
	for range held {
		j.Append(e)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for after := uint64(0); after < held; {
			evs, err := j.Read(ctx, after, 256)
			if err != nil {
				b.Fatal(err)
			}
			after = evs[len(evs)-1].Seq
		}
	}
}

// TestJournalEvictionByCount wraps a 4-slot ring several times; every event
// still held must be readable with its own sequence number and message.
func TestJournalEvictionByCount(t *testing.T) {
	const size = 4
	j := NewJournal(size, 0)
	for i := 1; i <= 3*size+2; i++ {
		j.Append(testStreamEvent(t, fmt.Sprintf("line %d", i)))
		checkBytes(t, j)
		oldest := uint64(1)
		if i > size {
			oldest = uint64(i - size + 1)
		}
		evs, err := j.Read(testCtx(t), oldest-1, 0)
		if err != nil {
			t.Fatalf("after %d appends: Read(%d): %v", i, oldest-1, err)
		}
		if diff := cmp.Diff(seqRange(oldest, uint64(i)), seqs(evs)); diff != "" {
			t.Fatalf("after %d appends: held sequence numbers (-want +got):\n%s", i, diff)
		}
		for _, e := range evs {
			var c jmsg.StreamContent
			if e.Msg == nil || e.Msg.Decode(&c) != nil || c.Text != fmt.Sprintf("line %d", e.Seq) {
				t.Fatalf("after %d appends: event %d holds %+v", i, e.Seq, e)
			}
		}
	}
}
