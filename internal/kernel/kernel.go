package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/kernelgate/kernelgate/internal/connfile"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/supervisor"
	"github.com/kernelgate/kernelgate/internal/zmqconn"
	"github.com/kernelgate/kernelgate/internal/zmqwire"
)

// Errors callers can test with errors.Is.
var (
	ErrNotFound       = errors.New("kernel not found")
	ErrNotReady       = errors.New("kernel is not ready")
	ErrDead           = errors.New("kernel is dead")
	ErrShutdown       = errors.New("kernel was shut down")
	ErrNoInputPending = errors.New("kernel is not waiting for input")
	ErrStartFailed    = errors.New("kernel failed to start")
)

// errConnect marks a launch whose process started but could not be
// connected to.
var errConnect = errors.New("connect to kernel")

// DiedError ends executions whose kernel died or restarted under them.
type DiedError struct{ Reason string }

func (e *DiedError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrDead) true for a DiedError.
func (e *DiedError) Is(target error) bool { return target == ErrDead }

// Info is a snapshot of a kernel for listings and status routes.
type Info struct {
	ID             string
	Owner          string
	SpecName       string
	Language       string
	State          State
	Pid            int
	Restarts       int
	Started        time.Time
	LastActivity   time.Time
	ExecutionCount int
}

// Kernel is one live kernel: a process, its socket set and its journal,
// across restarts. One owner goroutine (run) drives its life and is the only
// reader of the kernel's messages; the exported methods are safe for
// concurrent use.
type Kernel struct {
	id      string
	owner   string // set before the kernel is shared, then read-only
	spec    kernelspec.Spec
	cfg     Config
	log     *slog.Logger
	metrics Metrics
	ports   *connfile.Ports // shared by the manager's kernels
	journal *Journal
	session string // the gateway's Jupyter session id for requests it sends
	dir     string // runtime dir: connection files, ipc sockets, work dir
	// extraEnv is the start request's environment (guarded by mu): every
	// incarnation starts with it.
	extraEnv map[string]string

	cmds    chan command
	started chan struct{} // closed when the first incarnation is ready or failed
	done    chan struct{} // closed when run returns

	mu           sync.Mutex // guards the fields below
	startErr     error
	state        State
	conn         *zmqconn.Conn
	proc         *supervisor.Process
	execs        map[string]*Execution
	internal     map[string]func(*jmsg.Message) // gateway's own requests: reply callbacks
	pendingInput *jmsg.Message                  // the input_request awaiting a reply
	restarts     int
	startedAt    time.Time
	lastActivity time.Time
	execCount    int
	stopped      bool // shut down: no new work

	// Finished internal requests, so their late iopub idle is recognised.
	recentInternal map[string]struct{}
	recentOrder    [recentInternalCap]string
	recentNext     int
}

type cmdKind int

const (
	cmdRestart cmdKind = iota
	cmdShutdown
)

type command struct {
	kind  cmdKind
	reply chan error
}

// ID is the kernel's id.
func (k *Kernel) ID() string { return k.id }

// Journal is the kernel's event journal.
func (k *Kernel) Journal() *Journal { return k.journal }

// Done is closed once the kernel is shut down for good.
func (k *Kernel) Done() <-chan struct{} { return k.done }

// Info returns a snapshot of the kernel.
func (k *Kernel) Info() Info {
	k.mu.Lock()
	defer k.mu.Unlock()
	in := Info{
		ID: k.id, Owner: k.owner, SpecName: k.spec.Name, Language: k.spec.Language, State: k.state,
		Restarts: k.restarts, Started: k.startedAt, LastActivity: k.lastActivity,
		ExecutionCount: k.execCount,
	}
	if k.proc != nil {
		in.Pid = k.proc.Pid()
	}
	return in
}

// State is the kernel's current state.
func (k *Kernel) State() State {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state
}

func (k *Kernel) setState(ev stateEvent) State {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state = next(k.state, ev)
	return k.state
}

// Execute sends an execute_request and returns its tracker at once; the
// kernel queues requests in order. Outputs are read from the journal,
// starting at the returned Execution's After.
func (k *Kernel) Execute(ctx context.Context, req ExecuteRequest) (*Execution, error) {
	content := jmsg.ExecuteRequestContent{
		Code: req.Code, Silent: req.Silent, StoreHistory: req.StoreHistory,
		UserExpressions: req.UserExpressions, AllowStdin: req.AllowStdin,
		StopOnError: req.StopOnError,
	}
	if content.UserExpressions == nil {
		content.UserExpressions = map[string]string{}
	}
	m, err := jmsg.New(jmsg.ExecuteRequest, k.session, k.cfg.Username, nil, content)
	if err != nil {
		return nil, fmt.Errorf("build execute_request: %w", err)
	}
	k.mu.Lock()
	conn, err := k.usableLocked()
	if err != nil {
		k.mu.Unlock()
		return nil, err
	}
	e := newExecution(m.Header.MsgID, k.journal.Last())
	k.execs[e.ID] = e
	k.lastActivity = time.Now()
	k.mu.Unlock()
	if err := conn.Send(jmsg.Shell, m); err != nil {
		k.mu.Lock()
		delete(k.execs, e.ID)
		k.mu.Unlock()
		return nil, fmt.Errorf("kernel %s: %w", k.id, err)
	}
	return e, nil
}

// usableLocked returns the live connection, or why there is none.
func (k *Kernel) usableLocked() (*zmqconn.Conn, error) {
	switch {
	case k.stopped:
		return nil, ErrShutdown
	case k.state == Dead:
		return nil, ErrDead
	case k.conn == nil || k.state == Starting || k.state == Restarting:
		return nil, ErrNotReady
	}
	return k.conn, nil
}

// PendingInput returns the input_request the kernel is blocked on, if any.
func (k *Kernel) PendingInput() (*jmsg.Message, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pendingInput, k.pendingInput != nil
}

// Input answers the kernel's pending input_request with value; the blocked
// input() call returns it and the same execution continues.
func (k *Kernel) Input(value string) error {
	k.mu.Lock()
	req := k.pendingInput
	conn, err := k.usableLocked()
	if err == nil && req == nil {
		err = ErrNoInputPending
	}
	if err != nil {
		k.mu.Unlock()
		return err
	}
	k.pendingInput = nil
	exec := k.execs[req.ParentID()]
	k.mu.Unlock()
	m, err := jmsg.New(jmsg.InputReply, k.session, k.cfg.Username, &req.Header, jmsg.InputReplyContent{Value: value})
	if err != nil {
		return err
	}
	if err := conn.Send(jmsg.Stdin, m); err != nil {
		return fmt.Errorf("kernel %s: %w", k.id, err)
	}
	if exec != nil {
		exec.inputAnswered()
	}
	return nil
}

// Interrupt interrupts the running execution: SIGINT to the kernel's
// process group, or an interrupt_request for message-mode kernelspecs.
func (k *Kernel) Interrupt(ctx context.Context) error {
	k.mu.Lock()
	proc := k.proc
	_, err := k.usableLocked()
	k.mu.Unlock()
	if err != nil {
		return err
	}
	if k.interruptByMessage() {
		_, err := k.Call(ctx, jmsg.Control, jmsg.InterruptRequest, struct{}{})
		return err
	}
	if err := proc.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("interrupt kernel %s: %w", k.id, err)
	}
	return nil
}

// interruptByMessage reports whether interrupts go as interrupt_request:
// for message-mode kernelspecs, and for sandboxed kernels, which run in a
// session of their own that signals to our process group do not reach.
func (k *Kernel) interruptByMessage() bool {
	return k.spec.InterruptMode == "message" || k.cfg.Sandbox != nil
}

// Call sends a request of the gateway's own on shell or control and waits
// for its reply. Its iopub side effects (busy/idle) are not journaled.
func (k *Kernel) Call(ctx context.Context, ch jmsg.Channel, msgType string, content any) (*jmsg.Message, error) {
	m, err := jmsg.New(msgType, k.session, k.cfg.Username, nil, content)
	if err != nil {
		return nil, err
	}
	got := make(chan *jmsg.Message, 1)
	k.mu.Lock()
	conn, err := k.usableLocked()
	if err != nil {
		k.mu.Unlock()
		return nil, err
	}
	k.internal[m.Header.MsgID] = func(r *jmsg.Message) { got <- r }
	k.mu.Unlock()
	if err := conn.Send(ch, m); err != nil {
		k.mu.Lock()
		delete(k.internal, m.Header.MsgID)
		k.mu.Unlock()
		return nil, fmt.Errorf("kernel %s: %w", k.id, err)
	}
	select {
	case r := <-got:
		if r == nil {
			return nil, &DiedError{Reason: "kernel died before replying to " + msgType}
		}
		return r, nil
	case <-ctx.Done():
		k.mu.Lock()
		delete(k.internal, m.Header.MsgID)
		k.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Restart stops the kernel process and starts a fresh one (variables are
// lost); it returns once the new process is ready.
func (k *Kernel) Restart(ctx context.Context) error { return k.command(ctx, cmdRestart) }

// Shutdown stops the kernel for good: shutdown_request, then SIGTERM, then
// SIGKILL. It returns once the process is gone.
func (k *Kernel) Shutdown(ctx context.Context) error { return k.command(ctx, cmdShutdown) }

func (k *Kernel) command(ctx context.Context, kind cmdKind) error {
	c := command{kind: kind, reply: make(chan error, 1)}
	select {
	case k.cmds <- c:
	case <-k.done:
		if kind == cmdShutdown {
			return nil
		}
		return ErrShutdown
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// incarnation is one process of the kernel and its sockets.
type incarnation struct {
	proc   *supervisor.Process
	conn   *zmqconn.Conn
	cancel context.CancelFunc // stops the heartbeat
	hbDone chan struct{}
	hbLost chan struct{}
	// unconfine removes the sandbox's per-process state (cgroups).
	unconfine func()
	sandboxID string
}

// launch starts a kernel process and connects to it; the handshake happens
// in pump. A fresh key, fresh ports and fresh sockets every time: go-zeromq
// sockets do not survive their peer's restart.
func (k *Kernel) launch(ctx context.Context, n int) (*incarnation, error) {
	info, release, err := k.connInfo(n)
	if err != nil {
		return nil, err
	}
	defer release()
	path := filepath.Join(k.dir, fmt.Sprintf("connection-%d.json", n))
	if err := connfile.Write(path, info); err != nil {
		return nil, fmt.Errorf("write connection file: %w", err)
	}
	signer, err := zmqwire.NewSigner(info.SignatureScheme, []byte(info.Key))
	if err != nil {
		return nil, err
	}
	argv := k.spec.Command(path)
	unconfine := func() {}
	sandboxID := fmt.Sprintf("%s-%d", k.id[:13], n)
	if k.cfg.Sandbox != nil {
		if argv, unconfine, err = k.cfg.Sandbox.Wrap(sandboxID, k.spec.Name, argv, k.dir); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	k.mu.Lock()
	extra := k.extraEnv
	k.mu.Unlock()
	env := append(append(append([]string{}, k.cfg.Env...), envList(k.spec.Env)...), envList(extra)...)
	cmd := supervisor.Command(argv, filepath.Join(k.dir, "work"), env)
	release() // the kernel binds the ports now
	proc, err := supervisor.Start(ctx, cmd, supervisor.Options{
		Stdout:    &lineLogger{log: k.log, stream: "kernel stdout"},
		Stderr:    &lineLogger{log: k.log, stream: "kernel stderr"},
		TermGrace: k.cfg.TermGrace, KillGrace: k.cfg.KillGrace, PoliteGrace: k.cfg.PoliteGrace,
		// Orphans the kernel forked (pools, shells) must not outlive it.
		KillGroupOnExit: true,
	})
	if err != nil {
		unconfine()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	dialCtx, cancel := context.WithTimeout(ctx, k.cfg.StartTimeout)
	watchDone := make(chan struct{})
	go func() { // cancel the dial if the process dies first
		defer close(watchDone)
		select {
		case <-proc.Done():
			cancel()
		case <-dialCtx.Done():
		}
	}()
	conn, err := zmqconn.Dial(dialCtx, info, zmqconn.Options{Signer: signer, Limits: k.cfg.Limits, Logger: k.log})
	cancel()
	<-watchDone
	if err != nil {
		_ = proc.Stop(context.Background(), nil)
		unconfine()
		return nil, fmt.Errorf("%w: %s: %w", errConnect, k.describeExit(proc), err)
	}
	incCtx, incCancel := context.WithCancel(context.Background())
	inc := &incarnation{proc: proc, conn: conn, cancel: incCancel, hbDone: make(chan struct{}), hbLost: make(chan struct{}, 1), unconfine: unconfine, sandboxID: sandboxID}
	go k.heartbeat(incCtx, inc)
	return inc, nil
}

// deathReason explains a dead incarnation, exactly when the sandbox knows
// the cause (its memory limit), else from the exit status.
func (k *Kernel) deathReason(inc *incarnation) string {
	if oom, ok := k.cfg.Sandbox.(interface {
		MemoryLimitHit(id string) (string, bool)
	}); ok {
		if limit, hit := oom.MemoryLimitHit(inc.sandboxID); hit {
			return "kernel died: memory limit of " + limit + " exceeded (killed by the out-of-memory killer)"
		}
	}
	return "kernel died: " + k.describeExit(inc.proc)
}

// describeExit explains why a kernel process ended, with its stderr tail
// (where "No module named ipykernel" shows up).
func (k *Kernel) describeExit(p *supervisor.Process) string {
	st, ok := p.Exit()
	if !ok {
		return "kernel process is running"
	}
	s := "kernel process " + st.Describe()
	if tail := p.StderrTail(); len(tail) > 0 {
		s += "; stderr: " + string(tail)
	}
	return s
}

func (k *Kernel) connInfo(n int) (connfile.Info, func(), error) {
	if k.cfg.Transport == "ipc" {
		dir := filepath.Join(k.dir, fmt.Sprintf("i%d", n))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return connfile.Info{}, nil, err
		}
		info, err := connfile.NewIPC(dir)
		return info, func() {}, err
	}
	info, res, err := k.ports.NewTCP(k.cfg.IP)
	if err != nil {
		return connfile.Info{}, nil, err
	}
	return info, res.Release, nil
}

// heartbeat pings the kernel and reports it lost after several misses in a
// row. Heartbeats are answered by a C thread in ipykernel, so a kernel busy
// in user code still answers; one that does not is wedged or frozen.
func (k *Kernel) heartbeat(ctx context.Context, inc *incarnation) {
	defer close(inc.hbDone)
	if k.cfg.HeartbeatInterval <= 0 {
		return
	}
	t := time.NewTicker(k.cfg.HeartbeatInterval)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, k.cfg.HeartbeatTimeout)
		err := inc.conn.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			misses = 0
			continue
		}
		misses++
		k.log.Warn("kernel heartbeat missed", "kernel_id", k.id, "misses", misses, "err", err)
		if misses >= k.cfg.HeartbeatMisses {
			inc.hbLost <- struct{}{}
			return
		}
	}
}

// close stops the heartbeat and the sockets of an incarnation whose process
// is gone or stopping.
func (inc *incarnation) close() {
	inc.cancel()
	<-inc.hbDone
	inc.conn.Close()
	<-inc.proc.Done()
	inc.unconfine() // the process is gone: its cgroups can go too
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// newKernel prepares a kernel; run starts it.
func newKernel(id string, spec kernelspec.Spec, cfg Config, log *slog.Logger, m Metrics, ports *connfile.Ports) (*Kernel, error) {
	// A short dir name: ipc socket paths live under it, and a unix socket
	// path holds at most 107 bytes. The id's first 12 hex digits are unique
	// enough among one server's kernels; Mkdir (not MkdirAll) would report
	// a clash rather than share a dir.
	dir := filepath.Join(cfg.RuntimeDir, id[:13])
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create kernel dir: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		return nil, fmt.Errorf("create kernel dir: %w", err)
	}
	return &Kernel{
		id:       id,
		spec:     spec,
		cfg:      cfg,
		log:      log.With("kernel_id", id),
		metrics:  m,
		ports:    ports,
		journal:  NewJournal(cfg.JournalEvents, cfg.JournalBytes),
		session:  uuid.NewString(),
		dir:      dir,
		cmds:     make(chan command),
		started:  make(chan struct{}),
		done:     make(chan struct{}),
		state:    Starting,
		execs:    make(map[string]*Execution),
		internal: make(map[string]func(*jmsg.Message)),
	}, nil
}

// ExprResult is the value of one user expression as a MIME bundle, or the
// error evaluating it raised.
type ExprResult struct {
	Status    string                     `json:"status"`
	Data      map[string]json.RawMessage `json:"data"`
	Ename     string                     `json:"ename"`
	Evalue    string                     `json:"evalue"`
	Traceback []string                   `json:"traceback"`
}

// Evaluate evaluates expressions in the user's namespace through a silent
// execute of the gateway's own: no output, no execution count, nothing in
// the journal. The bootstrap helpers (variables, datasets) are called so.
func (k *Kernel) Evaluate(ctx context.Context, exprs map[string]string) (map[string]ExprResult, error) {
	// ipykernel answers "aborted" to requests that reach it while it
	// clears its queue after a stop_on_error failure (an interrupt, an
	// exception); the window closes on its next loop turn, so ask again.
	for attempt := 1; ; attempt++ {
		r, err := k.Call(ctx, jmsg.Shell, jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Silent: true, UserExpressions: exprs})
		if err != nil {
			return nil, err
		}
		var c struct {
			jmsg.ExecuteReplyContent
			UserExpressions map[string]ExprResult `json:"user_expressions"`
		}
		if err := r.Decode(&c); err != nil {
			return nil, fmt.Errorf("decode execute_reply: %w", err)
		}
		switch {
		case c.Status == "ok":
			return c.UserExpressions, nil
		case c.Status == "aborted" && attempt < 5:
			select {
			case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case c.Status == "aborted":
			return nil, errors.New("evaluate: the kernel aborted the request (it was clearing its queue after an error)")
		default:
			return nil, fmt.Errorf("evaluate: %s: %s", c.Ename, c.Evalue)
		}
	}
}
