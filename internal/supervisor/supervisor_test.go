package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestExitStatusText(t *testing.T) {
	tests := []struct {
		st       ExitStatus
		str      string
		describe string
	}{
		{ExitStatus{Code: 0}, "exited with status 0", "exited normally"},
		{ExitStatus{Code: 3}, "exited with status 3", "exited with status 3"},
		{ExitStatus{Code: -1, Signal: syscall.SIGKILL}, "killed by SIGKILL", "killed by SIGKILL, likely out of memory"},
		{ExitStatus{Code: -1, Signal: syscall.SIGSEGV}, "killed by SIGSEGV", "killed by SIGSEGV (segmentation fault), a crash"},
		{ExitStatus{Code: -1, Signal: syscall.SIGABRT, CoreDumped: true}, "killed by SIGABRT", "killed by SIGABRT (aborted), a crash, core dumped"},
		{ExitStatus{Code: -1, Signal: syscall.SIGTERM}, "killed by SIGTERM", "killed by SIGTERM"},
		{ExitStatus{Code: 137}, "exited with status 137", "exited with status 137 (a wrapped process was killed by SIGKILL, likely out of memory)"},
		{ExitStatus{Code: -1}, "exit status unknown", "exit status unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if got := tt.st.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.st.Describe(); got != tt.describe {
				t.Errorf("Describe() = %q, want %q", got, tt.describe)
			}
		})
	}
}

func TestExitReporting(t *testing.T) {
	tests := []struct {
		mode, arg   string
		want        ExitStatus
		str         string
		describeHas string
	}{
		{"exit", "0", ExitStatus{Code: 0}, "exited with status 0", "exited normally"},
		{"exit", "3", ExitStatus{Code: 3}, "exited with status 3", "exited with status 3"},
		{"killself", "KILL", ExitStatus{Code: -1, Signal: syscall.SIGKILL}, "killed by SIGKILL", "likely out of memory"},
		{"killself", "SEGV", ExitStatus{Code: -1, Signal: syscall.SIGSEGV}, "killed by SIGSEGV", "a crash"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"_"+tt.arg, func(t *testing.T) {
			p, err := Start(t.Context(), helperCmd(tt.mode, tt.arg), Options{})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			got := waitDone(t, p)
			// Whether a core was dumped depends on the host's limits.
			if diff := cmp.Diff(tt.want, got, cmp.FilterPath(func(p cmp.Path) bool {
				return p.String() == "CoreDumped"
			}, cmp.Ignore())); diff != "" {
				t.Errorf("exit status mismatch (-want +got):\n%s", diff)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if d := got.Describe(); !strings.Contains(d, tt.describeHas) {
				t.Errorf("Describe() = %q, want it to contain %q", d, tt.describeHas)
			}
		})
	}
}

func TestStartSetsUpProcessGroup(t *testing.T) {
	cmd := helperCmd("sleep", "")
	p, lr := startHelper(t, cmd, Options{})
	lr.expect(t, "ready")

	if pgid, err := unix.Getpgid(p.Pid()); err != nil || pgid != p.Pid() {
		t.Errorf("Getpgid(%d) = %d, %v; want the child to lead its own group", p.Pid(), pgid, err)
	}
	if cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Errorf("Pdeathsig = %v, want SIGKILL", cmd.SysProcAttr.Pdeathsig)
	}
	if st, ok := p.Exit(); ok {
		t.Errorf("Exit() = %v, true while the child is running", st)
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the child is running")
	default:
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("Signal(0) to a running child = %v, want nil", err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Run("cancelled ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		cmd := helperCmd("sleep", "")
		if _, err := Start(ctx, cmd, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Start with cancelled ctx = %v, want context.Canceled", err)
		}
		if cmd.Process != nil {
			t.Errorf("Start with cancelled ctx started pid %d", cmd.Process.Pid)
		}
	})
	t.Run("missing binary", func(t *testing.T) {
		_, err := Start(t.Context(), exec.Command("/nonexistent/kernel"), Options{})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Start(/nonexistent) = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("already started", func(t *testing.T) {
		p, err := Start(t.Context(), helperCmd("exit", "0"), Options{})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitDone(t, p)
		if _, err := Start(t.Context(), p.cmd, Options{}); err == nil {
			t.Error("second Start of the same cmd succeeded")
		}
	})
}

func TestStopPolite(t *testing.T) {
	errRefused := errors.New("shutdown request refused")
	tests := []struct {
		name   string
		mode   string
		opts   Options
		polite func(p *Process, stdin io.Closer) func(context.Context) error
		want   int // helper exit code: exitPolite or exitTerm
	}{
		{
			name: "SIGUSR1 makes it exit",
			mode: "polite",
			opts: Options{PoliteGrace: time.Minute, TermGrace: time.Minute},
			polite: func(p *Process, _ io.Closer) func(context.Context) error {
				return func(context.Context) error { return p.Signal(syscall.SIGUSR1) }
			},
			want: exitPolite,
		},
		{
			name: "closing stdin makes it exit",
			mode: "stdin",
			opts: Options{PoliteGrace: time.Minute, TermGrace: time.Minute},
			polite: func(_ *Process, stdin io.Closer) func(context.Context) error {
				return func(context.Context) error { return stdin.Close() }
			},
			want: exitPolite,
		},
		{
			// PoliteGrace is a minute: only skipping the rest of the
			// polite step on error lets this finish promptly.
			name: "polite error escalates to SIGTERM at once",
			mode: "polite",
			opts: Options{PoliteGrace: time.Minute, TermGrace: time.Minute},
			polite: func(*Process, io.Closer) func(context.Context) error {
				return func(context.Context) error { return errRefused }
			},
			want: exitTerm,
		},
		{
			name: "ignored polite request escalates after PoliteGrace",
			mode: "polite",
			opts: Options{PoliteGrace: 100 * time.Millisecond, TermGrace: time.Minute},
			polite: func(*Process, io.Closer) func(context.Context) error {
				return func(context.Context) error { return nil }
			},
			want: exitTerm,
		},
		{
			name: "nil polite goes to SIGTERM",
			mode: "polite",
			opts: Options{PoliteGrace: time.Minute, TermGrace: time.Minute},
			want: exitTerm,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := helperCmd(tt.mode, "")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatalf("StdinPipe: %v", err)
			}
			p, lr := startHelper(t, cmd, tt.opts)
			lr.expect(t, "ready")

			var polite func(context.Context) error
			if tt.polite != nil {
				polite = tt.polite(p, stdin)
			}
			start := time.Now()
			if err := p.Stop(t.Context(), polite); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if elapsed := time.Since(start); elapsed > testTimeout {
				t.Errorf("Stop took %v", elapsed)
			}
			st := waitDone(t, p)
			if diff := cmp.Diff(ExitStatus{Code: tt.want}, st); diff != "" {
				t.Errorf("exit status mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStopIgnoredSIGTERM(t *testing.T) {
	p, lr := startHelper(t, helperCmd("ignoreterm", ""), Options{TermGrace: 100 * time.Millisecond})
	lr.expect(t, "ready")

	if err := p.Stop(t.Context(), nil); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned nil before Done was closed")
	}
	st, _ := p.Exit()
	if st.Signal != syscall.SIGKILL {
		t.Errorf("exit = %v, want killed by SIGKILL", st)
	}
	if err := unix.Kill(p.Pid(), 0); err != unix.ESRCH {
		t.Errorf("kill(%d, 0) after Stop = %v, want ESRCH", p.Pid(), err)
	}
}

// TestGrandchild covers orphans: a child forks a grandchild into its process
// group; the grandchild ignores SIGTERM and holds the child's stderr pipe.
func TestGrandchild(t *testing.T) {
	tests := []struct {
		name    string
		childDo string // "sleep": wait to be stopped; "exit": exit on its own
		opts    Options
		// after runs once the child's grandchild pid is known; it ends
		// with the child reaped.
		after     func(t *testing.T, p *Process)
		wantAlive bool
	}{
		{
			name:    "Stop kills the group",
			childDo: "sleep",
			opts:    Options{TermGrace: time.Minute},
			after: func(t *testing.T, p *Process) {
				if err := p.Stop(t.Context(), nil); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				// The child itself died of the SIGTERM; the grandchild
				// ignored it, so only the orphan sweep can kill it.
				if st, _ := p.Exit(); st.Signal != syscall.SIGTERM {
					t.Errorf("child exit = %v, want killed by SIGTERM", st)
				}
			},
		},
		{
			name:    "Stop after natural exit sweeps orphans",
			childDo: "exit",
			after: func(t *testing.T, p *Process) {
				waitDone(t, p)
				if err := p.Stop(t.Context(), nil); err != nil {
					t.Fatalf("Stop: %v", err)
				}
			},
		},
		{
			name:    "KillGroupOnExit",
			childDo: "exit",
			opts:    Options{KillGroupOnExit: true},
			after:   func(t *testing.T, p *Process) { waitDone(t, p) },
		},
		{
			name:    "KillGroup by caller",
			childDo: "exit",
			after: func(t *testing.T, p *Process) {
				waitDone(t, p)
				if err := p.KillGroup(); err != nil {
					t.Fatalf("KillGroup: %v", err)
				}
			},
		},
		{
			// Control: proves the test can see a surviving orphan, and
			// that Done still closes although the orphan holds stderr.
			name:      "natural exit leaves the orphan",
			childDo:   "exit",
			after:     func(t *testing.T, p *Process) { waitDone(t, p) },
			wantAlive: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := helperCmd("fork", tt.childDo)
			// The grandchild keeps stderr open; do not wait long for it.
			cmd.WaitDelay = 100 * time.Millisecond
			p, lr := startHelper(t, cmd, tt.opts)
			gpid, err := strconv.Atoi(lr.expect(t, "pid"))
			if err != nil {
				t.Fatalf("parsing grandchild pid: %v", err)
			}
			t.Cleanup(func() {
				_ = unix.Kill(gpid, unix.SIGKILL)
				waitGone(t, gpid)
			})
			if pgid, err := unix.Getpgid(gpid); err != nil || pgid != p.Pid() {
				t.Fatalf("grandchild pgid = %d, %v; want %d", pgid, err, p.Pid())
			}

			tt.after(t, p)

			if tt.wantAlive {
				if !isAlive(gpid) {
					t.Errorf("grandchild %d died although nothing killed it", gpid)
				}
				return
			}
			waitGone(t, gpid)
		})
	}
}

func TestStopContextCancelled(t *testing.T) {
	// Generous graces: finishing well within them proves Stop skipped to
	// SIGKILL.
	opts := Options{PoliteGrace: time.Minute, TermGrace: time.Minute}
	const fast = 30 * time.Second

	t.Run("already cancelled", func(t *testing.T) {
		p, lr := startHelper(t, helperCmd("ignoreterm", ""), opts)
		lr.expect(t, "ready")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var called atomic.Bool
		start := time.Now()
		err := p.Stop(ctx, func(context.Context) error { called.Store(true); return nil })
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if d := time.Since(start); d > fast {
			t.Errorf("Stop took %v", d)
		}
		if called.Load() {
			t.Error("polite ran although ctx was already cancelled")
		}
		if st, _ := p.Exit(); st.Signal != syscall.SIGKILL {
			t.Errorf("exit = %v, want killed by SIGKILL", st)
		}
	})

	t.Run("cancelled during polite step", func(t *testing.T) {
		p, lr := startHelper(t, helperCmd("ignoreterm", ""), opts)
		lr.expect(t, "ready")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		entered := make(chan struct{})
		polite := func(pctx context.Context) error {
			close(entered)
			<-pctx.Done()
			return pctx.Err()
		}
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- p.Stop(ctx, polite) }()
		select {
		case <-entered:
		case <-time.After(testTimeout):
			t.Fatal("polite was never called")
		}
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Stop: %v", err)
			}
		case <-time.After(fast):
			t.Fatal("Stop did not return promptly after ctx was cancelled")
		}
		if d := time.Since(start); d > fast {
			t.Errorf("Stop took %v", d)
		}
		if st, _ := p.Exit(); st.Signal != syscall.SIGKILL {
			t.Errorf("exit = %v, want killed by SIGKILL", st)
		}
	})

	t.Run("deadline during SIGTERM wait", func(t *testing.T) {
		p, lr := startHelper(t, helperCmd("ignoreterm", ""), opts)
		lr.expect(t, "ready")
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := p.Stop(ctx, nil); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if d := time.Since(start); d > fast {
			t.Errorf("Stop took %v", d)
		}
		if st, _ := p.Exit(); st.Signal != syscall.SIGKILL {
			t.Errorf("exit = %v, want killed by SIGKILL", st)
		}
	})

	t.Run("follower cancelled while leader is polite", func(t *testing.T) {
		p, lr := startHelper(t, helperCmd("ignoreterm", ""), opts)
		lr.expect(t, "ready")
		entered := make(chan struct{})
		polite := func(pctx context.Context) error {
			close(entered)
			<-pctx.Done()
			return pctx.Err()
		}
		leader := make(chan error, 1)
		go func() { leader <- p.Stop(t.Context(), polite) }()
		select {
		case <-entered:
		case <-time.After(testTimeout):
			t.Fatal("polite was never called")
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := p.Stop(ctx, nil); err != nil {
			t.Fatalf("follower Stop: %v", err)
		}
		select {
		case err := <-leader:
			if err != nil {
				t.Fatalf("leader Stop: %v", err)
			}
		case <-time.After(fast):
			t.Fatal("leader Stop did not return after the follower killed the child")
		}
		if st, _ := p.Exit(); st.Signal != syscall.SIGKILL {
			t.Errorf("exit = %v, want killed by SIGKILL", st)
		}
	})
}

func TestStopConcurrentAndRepeated(t *testing.T) {
	p, lr := startHelper(t, helperCmd("polite", ""), Options{PoliteGrace: time.Minute, TermGrace: time.Minute})
	lr.expect(t, "ready")

	var calls atomic.Int32
	polite := func(context.Context) error {
		calls.Add(1)
		return p.Signal(syscall.SIGUSR1)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = p.Stop(t.Context(), polite) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Stop #%d: %v", i, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("polite called %d times, want exactly 1", got)
	}
	if st, _ := p.Exit(); st.Code != exitPolite {
		t.Errorf("exit = %v, want status %d (stopped by the polite step)", st, exitPolite)
	}
	// Stopping a stopped process is a no-op.
	if err := p.Stop(t.Context(), polite); err != nil {
		t.Errorf("repeated Stop: %v", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("repeated Stop called polite again (%d calls)", got)
	}
}

func TestSignalAfterExit(t *testing.T) {
	p, err := Start(t.Context(), helperCmd("exit", "0"), Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitDone(t, p)
	for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
		if err := p.Signal(sig); !errors.Is(err, ErrExited) {
			t.Errorf("Signal(%v) after exit = %v, want ErrExited", sig, err)
		}
	}

	// Even while an orphan keeps the process group populated (so that
	// kill(-pgid) itself would succeed), Signal refuses once the leader
	// has exited: its pid is no longer ours to signal.
	cmd := helperCmd("fork", "exit")
	cmd.WaitDelay = 100 * time.Millisecond
	p, lr := startHelper(t, cmd, Options{})
	gpid, err := strconv.Atoi(lr.expect(t, "pid"))
	if err != nil {
		t.Fatalf("parsing grandchild pid: %v", err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(gpid, unix.SIGKILL)
		waitGone(t, gpid)
	})
	waitDone(t, p)
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, ErrExited) {
		t.Errorf("Signal after exit with a live orphan = %v, want ErrExited", err)
	}
	if !isAlive(gpid) {
		t.Errorf("Signal after exit reached orphan %d", gpid)
	}
}

func TestStderrTail(t *testing.T) {
	const msg = "ModuleNotFoundError: No module named 'ipykernel'\n"
	tests := []struct {
		name     string
		filler   int
		tailSize int // Options.StderrTailSize
		wantLen  int
	}{
		{"short output kept whole", 100, 0, 100 + len(msg)},
		{"long output bounded to 8 KiB", 100 << 10, 0, DefaultStderrTail},
		{"custom bound", 10 << 10, 64, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var full countingWriter
			p, err := Start(t.Context(), helperCmd("stderr", strconv.Itoa(tt.filler)), Options{
				Stderr:         &full,
				StderrTailSize: tt.tailSize,
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if st := waitDone(t, p); st.Code != 1 {
				t.Errorf("exit = %v, want status 1", st)
			}
			tail := p.StderrTail()
			if len(tail) != tt.wantLen {
				t.Errorf("len(StderrTail()) = %d, want %d", len(tail), tt.wantLen)
			}
			if !strings.HasSuffix(tail, msg[max(0, len(msg)-tt.wantLen):]) {
				t.Errorf("StderrTail() ends %q, want the final error line", tail[max(0, len(tail)-80):])
			}
			if got, want := full.n.Load(), int64(tt.filler+len(msg)); got != want {
				t.Errorf("Options.Stderr got %d bytes, want all %d", got, want)
			}
		})
	}
}

type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(b []byte) (int, error) {
	w.n.Add(int64(len(b)))
	return len(b), nil
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		writes []string
		want   string
	}{
		{nil, ""},
		{[]string{"ab"}, "ab"},
		{[]string{"abcd"}, "abcd"},
		{[]string{"abcdef"}, "cdef"},
		{[]string{"ab", "cd", "ef"}, "cdef"},
		{[]string{"abc", "defghij"}, "ghij"},
		{[]string{"a", "b", "c", "d", "e"}, "bcde"},
	}
	for _, tt := range tests {
		tb := newTailBuffer(4)
		for _, w := range tt.writes {
			if n, err := tb.Write([]byte(w)); n != len(w) || err != nil {
				t.Errorf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if got := tb.String(); got != tt.want {
			t.Errorf("writes %q: tail = %q, want %q", tt.writes, got, tt.want)
		}
	}
}

func TestProbe(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		out, err := Probe(t.Context(), []string{exePath(t)}, helperEnviron("echo", ""))
		if err != nil {
			t.Fatalf("Probe: %v (output %q)", err, out)
		}
		// One shared pipe preserves the order of the two streams.
		if got, want := string(out), "out1\nerr1\n"; got != want {
			t.Errorf("output = %q, want %q", got, want)
		}
	})

	t.Run("failure reports exit code and output", func(t *testing.T) {
		out, err := Probe(t.Context(), []string{exePath(t)}, helperEnviron("stderr", "10"))
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Status.Code != 1 {
			t.Fatalf("Probe error = %v, want *ExitError with status 1", err)
		}
		if !strings.Contains(string(out), "No module named 'ipykernel'") {
			t.Errorf("output %q lacks the error message", out)
		}
		if !strings.Contains(err.Error(), "exited with status 1") {
			t.Errorf("error %q does not name the exit status", err)
		}
	})

	t.Run("timeout kills the probe and its group", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		// The fork helper's grandchild ignores SIGTERM and would hold the
		// output pipe open if it survived.
		out, err := Probe(ctx, []string{exePath(t)}, helperEnviron("fork", "sleep"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Probe error = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > testTimeout {
			t.Errorf("Probe took %v after its deadline", d)
		}
		var gpid int
		if _, err := fmt.Sscanf(string(out), "pid %d", &gpid); err != nil {
			t.Fatalf("no grandchild pid in output %q: %v", out, err)
		}
		waitGone(t, gpid)
	})

	t.Run("bad command", func(t *testing.T) {
		if _, err := Probe(t.Context(), nil, nil); err == nil {
			t.Error("Probe(nil) succeeded")
		}
		if _, err := Probe(t.Context(), []string{"/nonexistent/python3"}, nil); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Probe(/nonexistent) = %v, want fs.ErrNotExist", err)
		}
	})
}

func exePath(t *testing.T) string {
	t.Helper()
	return helperCmd("", "").Path
}

// TestNoGoroutineLeak runs every lifecycle path and checks that the waiter,
// polite and copying goroutines are all gone afterwards.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()

	func() {
		// Natural exit.
		p, err := Start(t.Context(), helperCmd("exit", "0"), Options{})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		waitDone(t, p)
		// Polite stop with concurrent callers.
		p, lr := startHelper(t, helperCmd("polite", ""), Options{})
		lr.expect(t, "ready")
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				_ = p.Stop(t.Context(), func(context.Context) error { return p.Signal(syscall.SIGUSR1) })
			})
		}
		wg.Wait()
		// Polite step abandoned by cancellation, ending in SIGKILL.
		p, lr = startHelper(t, helperCmd("ignoreterm", ""), Options{})
		lr.expect(t, "ready")
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_ = p.Stop(ctx, func(pctx context.Context) error { <-pctx.Done(); return nil })
		cancel()
		// Probe timeout.
		pctx, pcancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, _ = Probe(pctx, []string{exePath(t)}, helperEnviron("sleep", ""))
		pcancel()
	}()

	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
