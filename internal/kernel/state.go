package kernel

// State is where a kernel is in its life. Busy and idle come from the
// kernel's own iopub status messages; the rest from the gateway's view of
// the process.
type State string

// Kernel states, as Jupyter names them.
const (
	Starting   State = "starting"
	Idle       State = "idle"
	Busy       State = "busy"
	Restarting State = "restarting"
	Dead       State = "dead"
)

// stateEvent is something that moves a kernel between states.
type stateEvent int

const (
	evLaunch  stateEvent = iota // a process is being started
	evReady                     // handshake and bootstrap done
	evBusy                      // iopub status busy
	evIdle                      // iopub status idle
	evRestart                   // a restart (asked for or automatic) begins
	evDied                      // the process is gone
)

// next is the kernel state machine. It is pure so that every transition can
// be tested on its own; unknown pairs leave the state unchanged (a late
// status message from a dying kernel must not revive it).
func next(s State, ev stateEvent) State {
	switch ev {
	case evLaunch:
		if s == Restarting {
			return Restarting
		}
		return Starting
	case evReady:
		if s == Starting || s == Restarting {
			return Idle
		}
	case evBusy:
		if s == Idle || s == Busy {
			return Busy
		}
	case evIdle:
		if s == Idle || s == Busy {
			return Idle
		}
	case evRestart:
		return Restarting
	case evDied:
		return Dead
	}
	return s
}
