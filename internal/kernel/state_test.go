package kernel

import (
	"fmt"
	"testing"
)

var testStates = []State{Starting, Idle, Busy, Restarting, Dead}

var testEvents = []stateEvent{evLaunch, evReady, evBusy, evIdle, evRestart, evDied}

// evName names a state event in test output. (A helper rather than a
// String method, so state.go stays free to add one.)
func evName(ev stateEvent) string {
	switch ev {
	case evLaunch:
		return "evLaunch"
	case evReady:
		return "evReady"
	case evBusy:
		return "evBusy"
	case evIdle:
		return "evIdle"
	case evRestart:
		return "evRestart"
	case evDied:
		return "evDied"
	}
	return fmt.Sprintf("stateEvent(%d)", int(ev))
}

// TestNextTable is the whole state machine: every state × every event.
func TestNextTable(t *testing.T) {
	want := map[State]map[stateEvent]State{
		Starting: {
			evLaunch:  Starting,
			evReady:   Idle,
			evBusy:    Starting, // a status before the handshake is done does not count
			evIdle:    Starting,
			evRestart: Restarting,
			evDied:    Dead,
		},
		Idle: {
			evLaunch:  Starting,
			evReady:   Idle,
			evBusy:    Busy,
			evIdle:    Idle,
			evRestart: Restarting,
			evDied:    Dead,
		},
		Busy: {
			evLaunch:  Starting,
			evReady:   Busy,
			evBusy:    Busy,
			evIdle:    Idle,
			evRestart: Restarting,
			evDied:    Dead,
		},
		Restarting: {
			evLaunch:  Restarting, // the new process starts as part of the restart
			evReady:   Idle,
			evBusy:    Restarting, // a late status from the old process
			evIdle:    Restarting,
			evRestart: Restarting,
			evDied:    Dead,
		},
		Dead: {
			evLaunch:  Starting,
			evReady:   Dead,
			evBusy:    Dead, // a late status never revives a dead kernel
			evIdle:    Dead,
			evRestart: Restarting,
			evDied:    Dead,
		},
	}
	n := 0
	for _, s := range testStates {
		for _, ev := range testEvents {
			w, ok := want[s][ev]
			if !ok {
				t.Fatalf("table misses %s × %s", s, evName(ev))
			}
			n++
			t.Run(fmt.Sprintf("%s/%s", s, evName(ev)), func(t *testing.T) {
				if got := next(s, ev); got != w {
					t.Errorf("next(%s, %s) = %s, want %s", s, evName(ev), got, w)
				}
			})
		}
	}
	if n != len(testStates)*len(testEvents) {
		t.Fatalf("checked %d transitions, want %d", n, len(testStates)*len(testEvents))
	}
}

func TestNextLateStatusNeverRevives(t *testing.T) {
	for _, s := range []State{Dead, Starting, Restarting} {
		for _, ev := range []stateEvent{evBusy, evIdle} {
			if got := next(s, ev); got != s {
				t.Errorf("late %s moved %s to %s; want it unchanged", evName(ev), s, got)
			}
		}
	}
}

func TestNextRestartFromAnything(t *testing.T) {
	for _, s := range append(testStates, State("bogus")) {
		if got := next(s, evRestart); got != Restarting {
			t.Errorf("next(%s, evRestart) = %s, want restarting", s, got)
		}
		if got := next(s, evDied); got != Dead {
			t.Errorf("next(%s, evDied) = %s, want dead", s, got)
		}
	}
}

func TestNextUnknownEventKeepsState(t *testing.T) {
	for _, s := range testStates {
		for _, ev := range []stateEvent{-1, evDied + 1, 99} {
			if got := next(s, ev); got != s {
				t.Errorf("next(%s, %s) = %s, want unchanged", s, evName(ev), got)
			}
		}
	}
}

func TestNextRestartSequence(t *testing.T) {
	// A full automatic restart as the kernel drives it: busy kernel dies,
	// restart begins, a late busy/idle from the old process arrives, the new
	// process launches and becomes ready.
	steps := []struct {
		ev   stateEvent
		want State
	}{
		{evLaunch, Starting},
		{evReady, Idle},
		{evBusy, Busy},
		{evDied, Dead},
		{evIdle, Dead},
		{evRestart, Restarting},
		{evBusy, Restarting},
		{evLaunch, Restarting},
		{evIdle, Restarting},
		{evReady, Idle},
		{evBusy, Busy},
		{evIdle, Idle},
	}
	s := State("")
	for i, st := range steps {
		s = next(s, st.ev)
		if s != st.want {
			t.Fatalf("step %d (%s): state %s, want %s", i, evName(st.ev), s, st.want)
		}
	}
}
