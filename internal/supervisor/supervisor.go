// Package supervisor manages the lifecycle of a single child process: it
// starts the child in its own process group, reaps it with exactly one
// waiter goroutine, reports how it died, and stops it with an escalating
// ladder (a caller-supplied polite step, then SIGTERM, then SIGKILL) that
// never leaves the child or anything it forked behind.
//
// The package is deliberately generic: it knows nothing about what the child
// is (a Jupyter kernel, a probe interpreter, ...). Protocol-level shutdown
// requests are plugged in through the polite function given to Stop.
//
// # Why a process group
//
// Kernels routinely fork helpers (multiprocessing pools, language servers,
// shells started from a notebook). Those helpers outlive their parent unless
// somebody kills them, and they keep inherited pipes open. Putting the child
// in its own process group lets Signal and Stop address the whole tree with
// kill(-pgid, sig), and lets Stop sweep up orphans after the leader died.
// A descendant that deliberately leaves the group (setsid, setpgid) escapes
// this; containing those needs cgroups, which is out of scope here.
//
// # Pid reuse
//
// A pid may be recycled as soon as the process has been reaped. The waiter
// therefore first observes the exit with waitid(WNOWAIT), which leaves the
// child as an unreaped zombie, marks the Process as exited under its mutex,
// optionally sweeps the process group while the zombie still pins the pid
// and pgid, and only then reaps it with cmd.Wait. Signal checks that mark
// under the same mutex before calling kill, so it can never hit a recycled
// pid. See Signal and KillGroup for the residual races.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Default grace periods used when the corresponding Options field is zero.
const (
	DefaultTermGrace   = 2 * time.Second
	DefaultKillGrace   = 2 * time.Second
	DefaultPoliteGrace = 3 * time.Second

	// DefaultWaitDelay bounds how long the waiter keeps draining the
	// child's stdout/stderr pipes after the child exited. Without it an
	// orphaned grandchild that inherited a pipe would keep Done open for as
	// long as the grandchild lives. Used when cmd.WaitDelay is zero.
	DefaultWaitDelay = 2 * time.Second

	// DefaultStderrTail is how many trailing bytes of stderr are kept for
	// StderrTail when Options.StderrTailSize is zero.
	DefaultStderrTail = 8 << 10
)

// ErrExited is returned by Signal when the process has already exited (and
// may have been reaped), so signalling it is no longer safe or meaningful.
var ErrExited = errors.New("supervisor: process already exited")

// ErrNotStopped is wrapped by Stop when the process is still running after
// the whole ladder, including the SIGKILL grace, has been exhausted. That
// normally means the process is stuck in uninterruptible sleep (state D).
var ErrNotStopped = errors.New("supervisor: process did not exit after SIGKILL")

// Options configures Start.
type Options struct {
	// Stdout and Stderr receive the child's output. A nil writer leaves the
	// corresponding cmd field untouched (so nil on both sides means the
	// output is discarded, as with os/exec). Regardless of the writer, the
	// last StderrTailSize bytes of stderr are kept for StderrTail so callers
	// can explain startup failures ("No module named ipykernel"). If the
	// resulting stdout and stderr writers are the same value, the child gets
	// one pipe for both (as with exec's CombinedOutput) and the tail
	// includes stdout.
	Stdout, Stderr io.Writer

	// TermGrace is how long Stop waits after SIGTERM before SIGKILL
	// (default DefaultTermGrace).
	TermGrace time.Duration
	// KillGrace is how long Stop waits after SIGKILL for the exit to be
	// observed before giving up with ErrNotStopped (default DefaultKillGrace).
	KillGrace time.Duration
	// PoliteGrace bounds the polite step of Stop: the polite function and
	// the subsequent wait for exit share this one deadline
	// (default DefaultPoliteGrace).
	PoliteGrace time.Duration

	// StderrTailSize is the number of trailing stderr bytes kept for
	// StderrTail (default DefaultStderrTail).
	StderrTailSize int

	// KillGroupOnExit makes the waiter SIGKILL the remaining members of the
	// process group whenever the leader exits, not only when it exits
	// during Stop. The sweep happens while the leader is still an unreaped
	// zombie, so the pgid cannot have been recycled.
	KillGroupOnExit bool
}

func (o *Options) setDefaults() {
	if o.TermGrace <= 0 {
		o.TermGrace = DefaultTermGrace
	}
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.PoliteGrace <= 0 {
		o.PoliteGrace = DefaultPoliteGrace
	}
	if o.StderrTailSize <= 0 {
		o.StderrTailSize = DefaultStderrTail
	}
}

// Process is a started child process. All methods are safe for concurrent
// use.
type Process struct {
	cmd  *exec.Cmd
	pid  int // also the pgid: the child is its own group leader
	opts Options
	tail *tailBuffer

	// exitc is closed exactly once, by the waiter, as soon as the leader is
	// known to have exited (before reaping and before the output pipes are
	// drained). The Stop ladder waits on it, so the grace periods measure
	// the process, not the draining of its pipes.
	exitc chan struct{}
	// done is closed exactly once, by the single waiter goroutine, after the
	// child has been reaped and its output pipes drained (which cmd.WaitDelay
	// bounds).
	done chan struct{}

	// mu guards every field below it. The waiter also holds it while
	// sweeping the group, and Signal/KillGroup hold it while calling kill,
	// so that "not yet reaped" checks stay true for the duration of the
	// syscall.
	mu sync.Mutex
	// exiting is set by the waiter once the leader is known to have exited
	// (it is a zombie or already reaped). After that the leader pid must
	// not be signalled any more.
	exiting bool
	// exited and status are set by the waiter right before closing done.
	exited bool
	status ExitStatus
	// stopRequested is set by Stop; the waiter then sweeps the process
	// group when the leader exits.
	stopRequested bool
	// groupSwept records that the waiter already SIGKILLed the group while
	// the leader was a zombie, so Stop need not repeat it racily.
	groupSwept bool
	// stopping is non-nil while a Stop call is running the ladder; it is
	// closed when that call finishes. Concurrent Stop calls wait on it
	// instead of running a second ladder (and a second polite step).
	stopping chan struct{}
}

// Start starts cmd as the leader of a new process group and returns a
// Process that supervises it.
//
// Start sets cmd.SysProcAttr.Setpgid (unless the caller asked for Setsid,
// which already makes the child a group leader) and Pdeathsig=SIGKILL.
// Pdeathsig is belt and braces only and is NOT relied upon: Linux delivers it
// when the forking OS thread exits, not when this process exits, and the Go
// runtime may retire threads; nor does it reach grandchildren. Callers must
// still Stop every Process they start.
//
// ctx only bounds starting: if it is already done, Start fails without
// starting anything, and if it ends while the child is being started, the
// child is killed and an error returned. Once Start has returned, ctx has no
// effect on the process; use Stop. (For the same reason, cmd should be made
// with exec.Command, not exec.CommandContext.)
//
// Exactly one waiter goroutine is started; it calls cmd.Wait and closes
// Done. If cmd.WaitDelay is zero it is set to DefaultWaitDelay so that
// grandchildren holding the output pipes cannot keep Done open.
func Start(ctx context.Context, cmd *exec.Cmd, opts Options) (*Process, error) {
	if cmd == nil {
		return nil, errors.New("supervisor: nil command")
	}
	if cmd.Process != nil {
		return nil, errors.New("supervisor: command already started")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("supervisor: start %s: %w", cmd.Path, err)
	}
	opts.setDefaults()

	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if !cmd.SysProcAttr.Setsid {
		// Setsid already creates a new group; setpgid after setsid would
		// fail with EPERM.
		cmd.SysProcAttr.Setpgid = true
		cmd.SysProcAttr.Pgid = 0
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	tail := newTailBuffer(opts.StderrTailSize)
	if opts.Stdout != nil {
		cmd.Stdout = opts.Stdout
	}
	if opts.Stderr != nil {
		cmd.Stderr = opts.Stderr
	}
	switch {
	case cmd.Stderr == nil:
		cmd.Stderr = tail
	case sameWriter(cmd.Stdout, cmd.Stderr):
		// Keep them identical so os/exec still uses a single pipe for
		// both streams and their interleaving is preserved; the tail
		// then includes stdout too.
		w := io.MultiWriter(cmd.Stderr, tail)
		cmd.Stdout, cmd.Stderr = w, w
	default:
		cmd.Stderr = io.MultiWriter(cmd.Stderr, tail)
	}
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = DefaultWaitDelay
	}

	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("supervisor: start %s: %w", cmd.Path, err)
	}
	p := &Process{
		cmd:   cmd,
		pid:   cmd.Process.Pid,
		opts:  opts,
		tail:  tail,
		exitc: make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.wait()

	if err := ctx.Err(); err != nil {
		// Starting took long enough for ctx to end: honour it, but never
		// leave the half-wanted child behind.
		_ = p.Stop(ctx, nil)
		return nil, fmt.Errorf("supervisor: start %s: %w", cmd.Path, err)
	}
	return p, nil
}

// wait is the single waiter goroutine.
func (p *Process) wait() {
	// Observe the exit without reaping, so the pid (and pgid) stay pinned
	// by the zombie while we mark the process as exiting and sweep its
	// group. If this fails (e.g. SIGCHLD is ignored and the kernel auto-
	// reaps), we degrade to marking after cmd.Wait: Signal keeps working
	// meanwhile, with the residual race documented there.
	zombie := waitZombie(p.pid)
	if zombie {
		p.markExiting()
	}

	// The error is deliberately ignored: the exit status lives in
	// ProcessState, and ErrWaitDelay/copy errors only concern the output.
	_ = p.cmd.Wait()

	if !zombie {
		p.markExiting()
	}
	st := ExitStatus{Code: -1}
	if ps := p.cmd.ProcessState; ps != nil {
		st = statusFromWait(ps.Sys())
	}
	p.mu.Lock()
	p.exited = true
	p.status = st
	p.mu.Unlock()
	close(p.done)
}

// markExiting records that the leader has exited, sweeps the group if asked
// to, and wakes the Stop ladder. Called exactly once, by the waiter.
func (p *Process) markExiting() {
	p.mu.Lock()
	p.exiting = true
	if p.stopRequested || p.opts.KillGroupOnExit {
		_ = p.killGroupLocked()
		p.groupSwept = true
	}
	p.mu.Unlock()
	close(p.exitc)
}

// sameWriter reports whether a and b are the same non-nil writer, without
// panicking on writers whose dynamic type is not comparable.
func sameWriter(a, b io.Writer) bool {
	if a == nil || b == nil {
		return false
	}
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta.Comparable() && a == b
}

// waitZombie blocks until pid has exited, leaving it unreaped (WNOWAIT). It
// reports whether the exit was observed that way.
func waitZombie(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			return true
		}
		if err != unix.EINTR {
			return false
		}
	}
}

func statusFromWait(sys any) ExitStatus {
	ws, ok := sys.(syscall.WaitStatus)
	if !ok {
		return ExitStatus{Code: -1}
	}
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}
	case ws.Signaled():
		return ExitStatus{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	default:
		return ExitStatus{Code: -1}
	}
}

// Pid returns the process id of the child, which is also its process group
// id.
func (p *Process) Pid() int { return p.pid }

// Done returns a channel that is closed once the child has exited, been
// reaped and its output drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exit reports how the child exited. The boolean is false while the child is
// still running (or not yet fully reaped).
func (p *Process) Exit() (ExitStatus, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.exited
}

// StderrTail returns the last bytes (at most Options.StderrTailSize) the
// child wrote to stderr. It is complete only after Done is closed.
func (p *Process) StderrTail() string { return p.tail.String() }

// Signal sends sig to the child's whole process group (kill(-pgid, sig)). It
// returns ErrExited once the leader has exited, so it never signals a
// recycled pid: the check and the kill happen under the mutex that the
// waiter must take before reaping.
//
// Residual race: if something other than the waiter reaps the child (for
// example SIGCHLD set to SIG_IGN, or foreign wait(-1) calls in the same
// process), the exit cannot be observed before reaping and a recycled pgid
// could in principle be signalled.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exiting {
		return ErrExited
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrExited
		}
		return fmt.Errorf("supervisor: signal %s to group %d: %w", signalName(sig), p.pid, err)
	}
	return nil
}

// KillGroup sends SIGKILL to every process in the child's process group,
// including the leader if it is still running. It is meant for callers that
// want to clean up processes the child forked after the child exited on its
// own (Stop and Options.KillGroupOnExit do this automatically). An empty
// group is not an error.
//
// Residual race: after the leader has been reaped, Linux keeps the pgid
// number allocated only while some group member is alive. If none is, the
// number can be recycled, and a new process that makes itself a group leader
// under that very number would be hit. The window is small and requires pid
// wrap-around, but callers should prefer Options.KillGroupOnExit, which
// sweeps before reaping.
func (p *Process) KillGroup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killGroupLocked()
}

func (p *Process) killGroupLocked() error {
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("supervisor: kill group %d: %w", p.pid, err)
	}
	return nil
}

// Stop stops the child and everything in its process group, escalating:
//
//  1. if polite is non-nil, it is run with a context bounded by PoliteGrace
//     (for example, to send a protocol-level shutdown request), and Stop then
//     waits for the exit within that same PoliteGrace deadline; a polite
//     error skips straight to the next step;
//  2. SIGTERM to the group, then wait up to TermGrace;
//  3. SIGKILL to the group, then wait up to KillGrace.
//
// When ctx ends at any point, Stop skips straight to step 3: a cancelled
// Stop still never leaves a process behind. Once the leader has exited, the
// remaining group members (orphans the child forked) are SIGKILLed too.
//
// Stop returns nil once Done is closed (also when ctx was cancelled but the
// kill succeeded), and an error wrapping ErrNotStopped if the child survived
// SIGKILL for KillGrace. The grace periods measure the child's exit; after
// it, Stop additionally waits for Done, which cmd.WaitDelay bounds.
//
// Stop is safe to call concurrently and repeatedly: only one ladder (and one
// polite call) runs at a time; concurrent callers wait for it, and still
// escalate to SIGKILL if their own ctx ends first. After the process has
// exited, Stop just sweeps the group and returns nil.
//
// polite runs on its own goroutine so that a polite function ignoring its
// context cannot stall Stop; it should still honour ctx, or it leaks.
func (p *Process) Stop(ctx context.Context, polite func(context.Context) error) error {
	for {
		p.mu.Lock()
		p.stopRequested = true
		if p.stopping == nil {
			ch := make(chan struct{})
			p.stopping = ch
			p.mu.Unlock()

			err := p.ladder(ctx, polite)

			p.mu.Lock()
			p.stopping = nil
			p.mu.Unlock()
			close(ch)
			return err
		}
		ch := p.stopping
		p.mu.Unlock()

		// Another Stop is running the ladder: follow it.
		select {
		case <-p.exitc:
			return p.finishStop()
		case <-ch:
			// The leader finished; loop to return its outcome or, if it
			// gave up, run the ladder ourselves.
			if p.hasExited() {
				return p.finishStop()
			}
			continue
		case <-ctx.Done():
		}
		// Our own ctx ended while another caller is still being polite.
		_ = p.Signal(syscall.SIGKILL)
		if p.waitFor(nil, p.opts.KillGrace) {
			return p.finishStop()
		}
		return fmt.Errorf("supervisor: stop pid %d: %w (%w)", p.pid, ErrNotStopped, ctx.Err())
	}
}

// ladder runs the escalation steps. It is only run by one Stop at a time.
func (p *Process) ladder(ctx context.Context, polite func(context.Context) error) error {
	if p.hasExited() {
		return p.finishStop()
	}

	if polite != nil && ctx.Err() == nil {
		if p.politeStep(ctx, polite) {
			return p.finishStop()
		}
	}

	if ctx.Err() == nil {
		_ = p.Signal(syscall.SIGTERM) // ErrExited is fine: waitFor sees it
		if p.waitFor(ctx.Done(), p.opts.TermGrace) {
			return p.finishStop()
		}
	}

	if !p.hasExited() {
		_ = p.Signal(syscall.SIGKILL)
		// Deliberately not bounded by ctx: ctx is likely already done and
		// we must still see the process go.
		if !p.waitFor(nil, p.opts.KillGrace) {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("supervisor: stop pid %d: %w (%w)", p.pid, ErrNotStopped, err)
			}
			return fmt.Errorf("supervisor: stop pid %d: %w", p.pid, ErrNotStopped)
		}
	}
	return p.finishStop()
}

// politeStep runs polite and waits for the exit, all within PoliteGrace. It
// reports whether the process exited.
func (p *Process) politeStep(ctx context.Context, polite func(context.Context) error) bool {
	pctx, cancel := context.WithTimeout(ctx, p.opts.PoliteGrace)
	defer cancel()

	errc := make(chan error, 1) // buffered: the goroutine never blocks on send
	go func() { errc <- polite(pctx) }()

	select {
	case <-p.exitc:
		return true
	case <-pctx.Done():
		return p.hasExited()
	case err := <-errc:
		if err != nil {
			// The polite request failed; the child will not go on its
			// own, so do not burn the rest of PoliteGrace waiting.
			return p.hasExited()
		}
	}
	select {
	case <-p.exitc:
		return true
	case <-pctx.Done():
		return p.hasExited()
	}
}

// finishStop runs once the leader has exited during Stop: wait for Done
// (bounded by cmd.WaitDelay) and make sure nothing the child forked
// survives. The waiter normally swept the group already while the leader was
// a zombie; if the leader exited before Stop was requested it did not, and
// we sweep now (see KillGroup for the residual race).
func (p *Process) finishStop() error {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.groupSwept {
		p.groupSwept = true
		_ = p.killGroupLocked()
	}
	return nil
}

// waitFor waits up to d for the leader to exit, or until cancel (may be
// nil) is closed. It reports whether the leader exited.
func (p *Process) waitFor(cancel <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exitc:
		return true
	case <-t.C:
		return p.hasExited()
	case <-cancel:
		return p.hasExited()
	}
}

// hasExited reports whether the waiter has observed the leader's exit.
func (p *Process) hasExited() bool {
	select {
	case <-p.exitc:
		return true
	default:
		return false
	}
}

// Command builds the *exec.Cmd that Start expects from an argv, a working
// directory and a complete environment, so callers need not import os/exec.
func Command(argv []string, dir string, env []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd
}
