package supervisor

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExitStatus describes how a process ended.
type ExitStatus struct {
	// Code is the exit status, or -1 when the process was killed by a
	// signal (or its status is unknown).
	Code int
	// Signal is the signal that killed the process, or 0 if it exited.
	Signal syscall.Signal
	// CoreDumped reports whether the kernel wrote a core dump.
	CoreDumped bool
}

// Success reports whether the process exited with status 0.
func (e ExitStatus) Success() bool { return e.Signal == 0 && e.Code == 0 }

// String returns a terse description such as "exited with status 3" or
// "killed by SIGKILL".
func (e ExitStatus) String() string {
	switch {
	case e.Signal != 0:
		return "killed by " + signalName(e.Signal)
	case e.Code >= 0:
		return fmt.Sprintf("exited with status %d", e.Code)
	default:
		return "exit status unknown"
	}
}

// Describe returns a human explanation suitable for telling a user why their
// kernel died, e.g. "killed by SIGKILL, likely out of memory". It assumes the
// death was unexpected: a SIGKILL sent by Stop is also reported as a likely
// out-of-memory kill, so callers should not use Describe for processes they
// stopped themselves.
func (e ExitStatus) Describe() string {
	switch {
	case e.Signal != 0:
		s := e.String()
		switch e.Signal {
		case syscall.SIGKILL:
			// The kernel OOM killer (and cgroup memory limits) are by
			// far the most common source of an unexplained SIGKILL.
			s += ", likely out of memory"
		case syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE, syscall.SIGABRT:
			s += " (" + e.Signal.String() + "), a crash"
		}
		if e.CoreDumped {
			s += ", core dumped"
		}
		return s
	case e.Code == 0:
		return "exited normally"
	case e.Code > 128 && e.Code < 128+65:
		// Shells and many wrappers report a child killed by signal N as
		// status 128+N; say so, since the bare number is cryptic.
		sig := syscall.Signal(e.Code - 128)
		s := fmt.Sprintf("exited with status %d (a wrapped process was killed by %s", e.Code, signalName(sig))
		if sig == syscall.SIGKILL {
			s += ", likely out of memory"
		}
		return s + ")"
	default:
		return e.String()
	}
}

// ExitError is returned (wrapped) by Probe when the command ran but did not
// exit successfully. Use errors.As to get at the status.
type ExitError struct {
	Status ExitStatus
}

func (e *ExitError) Error() string { return e.Status.String() }

// signalName returns "SIGKILL" style names, falling back to the number.
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}
