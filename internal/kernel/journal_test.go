package kernel

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// The journal itself is tested in package journal; these tests cover what
// the kernel adds: stamping Events and sizing them.

func TestNewJournalStampsEvents(t *testing.T) {
	j := NewJournal(16, 0)
	stamp := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	life := &Lifecycle{Kind: LifeDied, Reason: "kernel died: killed by SIGKILL", StateLost: true, State: Dead}
	before := time.Now()
	var got []uint64
	for i := range 5 {
		m, err := jmsg.New(jmsg.Stream, "session", "user", nil, jmsg.StreamContent{Name: "stdout", Text: "x"})
		if err != nil {
			t.Fatalf("jmsg.New: %v", err)
		}
		e := Event{Channel: jmsg.IOPub, Msg: m}
		switch i {
		case 2:
			e.Time = stamp
		case 4:
			e = Event{Life: life}
		}
		e.Seq = 999 // must be overwritten
		got = append(got, j.Append(e))
	}
	after := time.Now()
	want := []uint64{1, 2, 3, 4, 5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Append sequence numbers (-want +got):\n%s", diff)
	}
	evs, err := j.Read(t.Context(), 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(evs) != len(want) {
		t.Fatalf("Read = %d events, want %d", len(evs), len(want))
	}
	for i, e := range evs {
		if e.Seq != want[i] {
			t.Errorf("event %d: Seq = %d, want %d", i, e.Seq, want[i])
		}
		switch {
		case i == 2:
			if !e.Time.Equal(stamp) {
				t.Errorf("event %d: Time = %v, want the caller's %v", e.Seq, e.Time, stamp)
			}
		case e.Time.IsZero():
			t.Errorf("event %d: Time not stamped", e.Seq)
		case e.Time.Before(before) || e.Time.After(after):
			t.Errorf("event %d: Time = %v, want between %v and %v", e.Seq, e.Time, before, after)
		}
	}
	if evs[4].Life != life || evs[4].Msg != nil {
		t.Errorf("event 5 = %+v, want the lifecycle event", evs[4])
	}

	// The journal's errors are the kernel's.
	j.Close()
	if _, err := j.Read(t.Context(), 5, 0); !errors.Is(err, ErrJournalClosed) {
		t.Errorf("Read at the end after Close = %v, want ErrJournalClosed", err)
	}
	if _, err := j.Read(t.Context(), 6, 0); !errors.Is(err, ErrBadPosition) {
		t.Errorf("Read(6) = %v, want ErrBadPosition", err)
	}
	small := NewJournal(2, 0)
	for range 3 {
		small.Append(Event{Life: &Lifecycle{Kind: LifeRestarting}})
	}
	var gap *GapError
	if _, err := small.Read(t.Context(), 0, 0); !errors.As(err, &gap) || *gap != (GapError{After: 0, Oldest: 2}) {
		t.Errorf("Read(0) of a wrapped journal = %v, want GapError{0, 2}", err)
	}
}

func TestEventSize(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want int
	}{
		{name: "lifecycle", e: Event{Life: &Lifecycle{Kind: LifeRestarting, Reason: "a long reason that is not counted"}}, want: 128},
		{name: "empty message", e: Event{Channel: jmsg.IOPub, Msg: &jmsg.Message{}}, want: 128},
		{name: "content", e: Event{Msg: &jmsg.Message{Content: json.RawMessage(`{"a":1}`)}}, want: 128 + 7},
		{name: "metadata", e: Event{Msg: &jmsg.Message{Metadata: json.RawMessage(`{"m":true}`)}}, want: 128 + 10},
		{name: "buffers", e: Event{Msg: &jmsg.Message{Buffers: [][]byte{make([]byte, 100), nil, make([]byte, 5)}}}, want: 128 + 105},
		{name: "all", e: Event{Msg: &jmsg.Message{
			Header:   jmsg.Header{MsgID: "not counted"},
			Content:  json.RawMessage(`{"a":1}`),
			Metadata: json.RawMessage(`{}`),
			Buffers:  [][]byte{make([]byte, 1000)},
		}}, want: 128 + 7 + 2 + 1000},
	}
	for _, tt := range tests {
		if got := eventSize(&tt.e); got != tt.want {
			t.Errorf("%s: eventSize = %d, want %d", tt.name, got, tt.want)
		}
	}

	// NewJournal bounds by these sizes: 128+872 = 1000 bytes an event, so a
	// 2500-byte journal holds two.
	j := NewJournal(100, 2500)
	for range 4 {
		j.Append(Event{Msg: &jmsg.Message{Content: make(json.RawMessage, 872)}})
	}
	var gap *GapError
	if _, err := j.Read(t.Context(), 0, 0); !errors.As(err, &gap) || gap.Oldest != 3 {
		t.Errorf("Read(0) = %v, want a GapError with Oldest 3", err)
	}
}
