package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The tests exercise real processes by re-executing the test binary, as
// os/exec's own tests do: when helperEnv is set, TestMain runs the named
// helper behaviour instead of the tests.
const (
	helperEnv    = "SUPERVISOR_TEST_HELPER"
	helperArgEnv = "SUPERVISOR_TEST_ARG"
)

// testTimeout bounds every wait in the tests. It is far longer than any
// correct behaviour needs, so it only fires on real failures.
const testTimeout = 20 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode, os.Getenv(helperArgEnv))
		os.Exit(100) // helpers must not return
	}
	// Become a child subreaper: orphaned grandchildren are then reparented
	// to this process instead of PID 1 (which, in containers, often never
	// reaps), so the tests can reap them and prove with kill(pid, 0) ==
	// ESRCH that they are really gone.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Exit codes the helpers use to report which step of the Stop ladder
// reached them.
const (
	exitPolite = 7  // SIGUSR1 or stdin EOF: the polite step worked
	exitTerm   = 15 // SIGTERM handler ran: the polite step did not suffice
)

func runHelper(mode, arg string) {
	switch mode {
	case "sleep": // sleep forever; default signal dispositions
		fmt.Printf("ready %d\n", os.Getpid())
		sleepForever()

	case "ignoreterm": // ignore SIGTERM, then sleep forever
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("ready %d\n", os.Getpid())
		sleepForever()

	case "polite": // SIGUSR1 => exit 7, SIGTERM => exit 15
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1, syscall.SIGTERM)
		fmt.Println("ready")
		if <-c == syscall.SIGUSR1 {
			os.Exit(exitPolite)
		}
		os.Exit(exitTerm)

	case "stdin": // stdin EOF => exit 7, SIGTERM => exit 15
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		go func() {
			<-c
			os.Exit(exitTerm)
		}()
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(exitPolite)

	case "exit": // exit with status arg
		code, err := strconv.Atoi(arg)
		if err != nil {
			os.Exit(101)
		}
		os.Exit(code)

	case "killself": // die by signal arg ("KILL" or "SEGV")
		sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "SEGV": syscall.SIGSEGV}[arg]
		if sig == 0 {
			os.Exit(102)
		}
		// The Go runtime turns a user-sent SIGSEGV into a panic-like
		// crash with exit status 2; restore the default action with a raw
		// rt_sigaction so the process really dies by the signal. An
		// all-zero struct sigaction is SIG_DFL with no flags and no mask.
		// (SIGKILL's action cannot be changed, nor does it need to be.)
		var act [4]uintptr
		if sig != syscall.SIGKILL {
			if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
				os.Exit(103)
			}
		}
		_ = syscall.Kill(os.Getpid(), sig)
		sleepForever()

	case "fork": // start a SIGTERM-ignoring grandchild in our group, print its pid, then act per arg
		gc := exec.Command(os.Args[0])
		gc.Env = helperEnviron("ignoreterm", "")
		// The grandchild inherits our stderr: it then holds the
		// supervisor's stderr pipe open, as orphaned kernel helpers do.
		gc.Stderr = os.Stderr
		out, err := gc.StdoutPipe()
		if err != nil {
			os.Exit(104)
		}
		if err := gc.Start(); err != nil {
			os.Exit(105)
		}
		// Wait until the grandchild ignores SIGTERM before reporting.
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
			os.Exit(106)
		}
		fmt.Printf("pid %d\n", gc.Process.Pid)
		switch arg {
		case "exit":
			os.Exit(0)
		default:
			sleepForever() // dies on SIGTERM (default action)
		}

	case "stderr": // write arg bytes of filler to stderr, then an error line, exit 1
		n, _ := strconv.Atoi(arg)
		line := strings.Repeat("x", 99) + "\n"
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(line)
		}
		os.Stderr.WriteString(b.String()[:n])
		os.Stderr.WriteString("ModuleNotFoundError: No module named 'ipykernel'\n")
		os.Exit(1)

	case "echo": // one line to stdout, then one to stderr, exit 0
		os.Stdout.WriteString("out1\n")
		os.Stderr.WriteString("err1\n")
		os.Exit(0)

	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(107)
	}
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// helperEnviron returns the environment that makes the test binary run the
// given helper.
func helperEnviron(mode, arg string) []string {
	return append(os.Environ(), helperEnv+"="+mode, helperArgEnv+"="+arg,
		// Under -race, a process exiting with status 0 otherwise sleeps a
		// second to let other goroutines report races.
		"GORACE=atexit_sleep_ms=0")
}

func helperCmd(mode, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = helperEnviron(mode, arg)
	return cmd
}

// lineReader reads the helper's stdout line by line, never blocking past
// testTimeout.
type lineReader struct {
	f *os.File
	r *bufio.Reader
}

func (lr *lineReader) next(t *testing.T) string {
	t.Helper()
	if err := lr.f.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatalf("SetReadDeadline: %v", err)
	}
	line, err := lr.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading helper stdout: %v (got %q)", err, line)
	}
	return strings.TrimSpace(line)
}

// expect reads lines until one starts with prefix and returns the rest.
func (lr *lineReader) expect(t *testing.T, prefix string) string {
	t.Helper()
	for {
		if line := lr.next(t); strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(strings.TrimPrefix(line, prefix))
		}
	}
}

// startHelper starts a helper with its stdout piped back to the test, and
// registers a cleanup that makes sure it is gone.
func startHelper(t *testing.T, cmd *exec.Cmd, opts Options) (*Process, *lineReader) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("StdoutPipe: %v", err)
	}
	p, err := Start(t.Context(), cmd, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		// A cancelled ctx makes Stop go straight to SIGKILL.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.Stop(ctx, nil)
	})
	return p, &lineReader{f: out.(*os.File), r: bufio.NewReader(out)}
}

// waitDone waits for the process to be reaped and returns its status.
func waitDone(t *testing.T, p *Process) ExitStatus {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(testTimeout):
		t.Fatalf("pid %d did not exit within %v", p.Pid(), testTimeout)
	}
	st, ok := p.Exit()
	if !ok {
		t.Fatalf("Exit() reports still running after Done was closed")
	}
	return st
}

// waitGone polls, with a deadline, until pid no longer exists. Orphans are
// reparented to this (subreaper) process, so reap pid if it is our zombie.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err := unix.Kill(pid, 0); err == unix.ESRCH {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still exists after %v", pid, testTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isAlive reports whether pid exists and is not a zombie.
func isAlive(pid int) bool {
	if unix.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
