package flowapi

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

func streamEvent(t *testing.T, parent *jmsg.Header, name, text string) kernel.Event {
	t.Helper()
	m, err := jmsg.New(jmsg.Stream, "k", "k", parent, jmsg.StreamContent{Name: name, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return kernel.Event{Channel: jmsg.IOPub, Msg: m}
}

func otherEvent(t *testing.T, parent *jmsg.Header, typ string, content any) kernel.Event {
	t.Helper()
	m, err := jmsg.New(typ, "k", "k", parent, content)
	if err != nil {
		t.Fatal(err)
	}
	return kernel.Event{Channel: jmsg.IOPub, Msg: m}
}

// wire renders stream_output messages as "stream:content" and other
// messages by type, for comparing two foldings.
func wire(ms []Msg) (order []string, text map[string]string) {
	text = map[string]string{}
	for _, m := range ms {
		typ := m["type"].(string)
		if typ == "stream_output" && m["truncated"] == nil {
			s := m["stream"].(string)
			text[s] += m["content"].(string)
			if len(order) == 0 || order[len(order)-1] != s {
				order = append(order, s)
			}
			continue
		}
		order = append(order, typ)
	}
	return order, text
}

func TestCoalesce_KeepsOrderAndBytesAndNeverMixesStreams(t *testing.T) {
	req := jmsg.NewHeader(jmsg.ExecuteRequest, "c", "u")
	other := jmsg.NewHeader(jmsg.ExecuteRequest, "c", "u")
	var evs []kernel.Event
	for i := range 40 {
		evs = append(evs, streamEvent(t, &req, "stdout", fmt.Sprintf("out %d é\x1b[31m\n", i)))
		if i%7 == 3 {
			evs = append(evs, streamEvent(t, &req, "stderr", fmt.Sprintf("err %d\n", i)))
		}
		if i == 20 {
			evs = append(evs, otherEvent(t, &req, jmsg.DisplayData, jmsg.DisplayContent{Data: map[string]json.RawMessage{"text/plain": json.RawMessage(`"figure"`)}}))
			evs = append(evs, streamEvent(t, &other, "stdout", "not mine\n"))
			evs = append(evs, kernel.Event{Life: &kernel.Lifecycle{Kind: kernel.LifeRestarting}})
		}
	}
	units := coalesce(evs, req.MsgID, 64<<10)
	// Runs: stdout, (stderr, stdout)*, display, stdout...: never a unit of
	// both streams, never the other execution's text.
	for _, u := range units {
		for _, tx := range u.texts {
			if strings.Contains(tx, "not mine") {
				t.Fatal("another execution's output was merged in")
			}
			if (u.stream == "stderr") != strings.HasPrefix(tx, "err") {
				t.Fatalf("a %s unit holds %q", u.stream, tx)
			}
		}
	}
	if len(units) >= len(evs)/2 {
		t.Fatalf("%d units for %d events: nothing was merged", len(units), len(evs))
	}

	// Folding the units gives exactly what folding message by message does.
	one, merged := NewCell("c1", false, CellOptions{}), NewCell("c1", false, CellOptions{})
	var seq, co []Msg
	for _, e := range evs {
		if e.Life == nil && e.Msg.ParentID() == req.MsgID {
			seq = append(seq, one.Observe(e.Msg)...)
		}
	}
	for _, u := range units {
		if u.msg != nil {
			co = append(co, merged.Observe(u.msg)...)
		} else {
			co = append(co, merged.ObserveStream(u.stream, u.texts...)...)
		}
	}
	so, st := wire(seq)
	cot, ct := wire(co)
	if fmt.Sprint(so) != fmt.Sprint(cot) {
		t.Fatalf("order differs:\n one by one %v\n coalesced  %v", so, cot)
	}
	if st["stdout"] != ct["stdout"] || st["stderr"] != ct["stderr"] || st["stdout"] == "" || st["stderr"] == "" {
		t.Fatalf("bytes differ:\n%q\n%q", st, ct)
	}
	if len(co) >= len(seq) {
		t.Fatalf("coalesced folding sent %d messages, one by one %d", len(co), len(seq))
	}
	a := one.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}})
	b := merged.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok"}})
	if a[1]["stdout"] != b[1]["stdout"] || a[1]["stderr"] != b[1]["stderr"] {
		t.Fatal("final stdout/stderr differ")
	}
}

func TestCoalesce_BoundsAMergedChunk(t *testing.T) {
	req := jmsg.NewHeader(jmsg.ExecuteRequest, "c", "u")
	line := strings.Repeat("x", 1000) + "\n"
	var evs []kernel.Event
	for range 200 {
		evs = append(evs, streamEvent(t, &req, "stdout", line))
	}
	big := strings.Repeat("y", 100<<10)
	evs = append(evs, streamEvent(t, &req, "stdout", big))
	units := coalesce(evs, req.MsgID, 64<<10)
	total := 0
	for _, u := range units {
		n := 0
		for _, tx := range u.texts {
			n += len(tx)
		}
		if n > 64<<10 && len(u.texts) > 1 {
			t.Fatalf("a merged unit holds %d bytes", n)
		}
		total += n
	}
	if total != 200*len(line)+len(big) {
		t.Fatalf("units hold %d bytes, want %d", total, 200*len(line)+len(big))
	}
	if last := units[len(units)-1]; len(last.texts) != 1 || last.texts[0] != big {
		t.Fatal("a message larger than the bound was not kept whole and alone")
	}
}

// follower builds a cellFollower over j collecting what it emits.
func follower(j *kernel.Journal, id string, done <-chan struct{}, after uint64) (*cellFollower, func() []Msg) {
	var mu sync.Mutex
	var got []Msg
	f := &cellFollower{journal: j, id: id, after: after, done: done, cell: NewCell("c1", false, CellOptions{}),
		emit:         func(m Msg) { mu.Lock(); got = append(got, m); mu.Unlock() },
		pendingInput: func() (*jmsg.Message, bool) { return nil, false },
	}
	return f, func() []Msg { mu.Lock(); defer mu.Unlock(); return append([]Msg(nil), got...) }
}

func TestCellFollower_QuietLineIsNotHeld(t *testing.T) {
	req := jmsg.NewHeader(jmsg.ExecuteRequest, "c", "u")
	j := kernel.NewJournal(100, 0)
	done := make(chan struct{})
	f, got := follower(j, req.MsgID, done, 0)
	errc := make(chan error, 1)
	go func() { errc <- f.follow(t.Context()) }()
	for i := range 3 {
		j.Append(streamEvent(t, &req, "stdout", fmt.Sprintf("line %d\n", i)))
		// The execution is still running and nothing else comes: the line
		// must go out on its own.
		deadline := time.Now().Add(10 * time.Second)
		for len(got()) < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("line %d was held back", i)
			}
			time.Sleep(time.Millisecond)
		}
		if c := got()[i]["content"]; c != fmt.Sprintf("line %d\n", i) {
			t.Fatalf("message %d: %q", i, c)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestCellFollower_GapIsReportedAndTheEndStillFound(t *testing.T) {
	req := jmsg.NewHeader(jmsg.ExecuteRequest, "c", "u")
	j := kernel.NewJournal(10, 0) // a ring of 10: most of the flood below is gone before it is read
	for i := range 100 {
		j.Append(streamEvent(t, &req, "stdout", fmt.Sprintf("%d\n", i)))
	}
	j.Append(otherEvent(t, &req, jmsg.ExecuteResult, jmsg.DisplayContent{ExecutionCount: 1, Data: map[string]json.RawMessage{"text/plain": json.RawMessage(`"42"`)}}))
	done := make(chan struct{})
	close(done)
	f, got := follower(j, req.MsgID, done, 0)
	if err := f.follow(t.Context()); err != nil {
		t.Fatalf("follow: %v (a gap must not end the cell)", err)
	}
	if f.lost != 91 {
		t.Fatalf("lost %d, want 91", f.lost)
	}
	ms := got()
	if len(ms) != 1 || ms[0]["truncated"] != true || !strings.Contains(ms[0]["content"].(string), "91 of its messages were dropped") {
		t.Fatalf("want exactly the truncation notice, got %v", ms)
	}
	end := f.cell.Finish(CellEnd{Reply: jmsg.ExecuteReplyContent{Status: "ok", ExecutionCount: 1}})
	res := end[1]
	if res["status"] != "ok" || res["result"] != "42" || res["stream_truncated"] != true ||
		res["output_truncated"] != true || res["messages_lost"] != uint64(91) {
		t.Fatalf("final result %v", res)
	}
	if !strings.HasSuffix(res["stdout"].(string), "98\n99\n") {
		t.Fatalf("final stdout lost the end of the output: %q", res["stdout"])
	}
}

// newFloodSession is a session on a real kernel; with small, its journal
// holds so few events that a flood outruns any follower.
func newFloodSession(t *testing.T, small bool, mutate func(*Config)) *Session {
	t.Helper()
	kcfg := kernel.DefaultConfig()
	kcfg.RuntimeDir = t.TempDir()
	kcfg.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	if small {
		kcfg.JournalEvents = 64
		kcfg.JournalBytes = 1 << 20
	}
	mgr, err := kernel.NewManager(kcfg, map[string]kernelspec.Spec{"python3": kernelspec.Default("/usr/bin/python3")}, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.JournalMessages = 1 << 20 // the test reads the session journal after the fact
	cfg.JournalBytes = 256 << 20
	if mutate != nil {
		mutate(&cfg)
	}
	s := newSession("flood", "tester", cfg, mgr, ratelimit.New(ratelimit.DefaultRates(), nil), slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		s.close(context.Background())
		mgr.Close(context.Background())
	})
	return s
}

// cellResult runs a cell and returns every wire message about it, up to
// and including its execution_result.
func cellResult(t *testing.T, s *Session, id, code string) []Msg {
	t.Helper()
	after := s.Last()
	if err := s.Enqueue(ExecuteRequest{CellID: id, Code: code}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out []Msg
	for {
		batch, err := s.Read(ctx, after)
		if err != nil {
			t.Fatalf("cell %s: %v", id, err)
		}
		for _, o := range batch {
			after = o.seq
			if o.msg["cell_id"] != id {
				continue
			}
			out = append(out, o.msg)
			if o.msg["type"] == "execution_result" {
				return out
			}
		}
	}
}

func TestSession_FloodEndsWithItsRealReply(t *testing.T) {
	for _, small := range []bool{true, false} {
		t.Run(fmt.Sprintf("small journal %v", small), func(t *testing.T) { testFlood(t, small) })
	}
}

func testFlood(t *testing.T, small bool) {
	s := newFloodSession(t, small, nil)
	// ~32 MiB in many messages, far more than the kernel journal holds.
	ms := cellResult(t, s, "flood", "import sys\nline = 'x' * 127 + '\\n'\nfor _ in range(32 * 8192):\n    sys.stdout.write(line)\nprint('done')\n6 * 7")
	res := ms[len(ms)-1]
	if res["status"] != "ok" || res["result"] != "42" {
		t.Fatalf("the flooded cell ended %v / %v, want ok with its result 42 (error: %v)", res["status"], res["result"], res["error"])
	}
	if res["stream_truncated"] != true {
		t.Fatal("the final result does not say the stream was truncated")
	}
	streamed, notices := 0, 0
	for _, m := range ms {
		if m["type"] != "stream_output" || m["is_last"] == true {
			continue
		}
		if m["truncated"] == true {
			notices++
			continue
		}
		streamed += len(m["content"].(string))
	}
	if notices != 1 {
		t.Fatalf("%d truncation notices, want exactly 1", notices)
	}
	if streamed > DefaultMaxStreamBytes {
		t.Fatalf("streamed %d bytes, over the %d cap", streamed, DefaultMaxStreamBytes)
	}
	so := res["stdout"].(string)
	switch lost := res["messages_lost"]; {
	case lost == nil && !strings.HasSuffix(so, "x\ndone\n"):
		t.Fatalf("nothing was lost, yet the final stdout does not end with the cell's last line: ...%q", so[max(0, len(so)-100):])
	case lost != nil && (res["output_truncated"] != true ||
		// One notice cuts the stream: the gap's, or the stream cap's when
		// the cap came first (Gap then adds none; the result counts the loss).
		!strings.Contains(fmt.Sprint(ms), "messages were dropped") && !strings.Contains(fmt.Sprint(ms), "this cell printed more than")):
		t.Fatalf("%v messages were lost without saying so", lost)
	case !small && lost != nil:
		t.Fatalf("%v messages were lost with the default 64 MiB kernel journal", lost)
	case !small && !strings.Contains(fmt.Sprint(ms), "this cell printed more than"):
		t.Fatal("no stream-cap notice")
	}
	t.Logf("streamed %d bytes in %d wire messages; messages lost: %v", streamed, len(ms), res["messages_lost"])
	// The session carries on with the next cell.
	if ms := cellResult(t, s, "next", "print('after')"); ms[len(ms)-1]["stdout"] != "after\n" {
		t.Fatalf("next cell: %v", ms[len(ms)-1])
	}
}

func TestSession_TimeoutStillAppliesAfterAFlood(t *testing.T) {
	s := newFloodSession(t, true, func(c *Config) { c.ExecutionTimeout = 5 * time.Second })
	ms := cellResult(t, s, "flood", "import sys, time\nline = 'x' * 127 + '\\n'\nfor _ in range(32 * 8192):\n    sys.stdout.write(line)\ntime.sleep(600)")
	res := ms[len(ms)-1]
	errText := fmt.Sprint(res["error"])
	if res["status"] != "error" || !strings.Contains(fmt.Sprint(res["error_details"]), "KeyboardInterrupt") {
		t.Fatalf("the flooded cell ended %v (%s), want interrupted by its timeout", res["status"], errText)
	}
	timedOut := false
	for _, m := range ms {
		if m["type"] == "error" && strings.Contains(fmt.Sprint(m["error"]), "timed out after 5s") {
			timedOut = true
		}
	}
	if !timedOut {
		t.Fatal("no timeout message for the flooded cell")
	}
	if ms := cellResult(t, s, "next", "print('after')"); ms[len(ms)-1]["stdout"] != "after\n" {
		t.Fatalf("next cell: %v", ms[len(ms)-1])
	}
}
