package flowapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/journal"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

// Config is the AdeloopFlow section of the server configuration.
type Config struct {
	// DetachedTTL is how long a session with no connection keeps its kernel,
	// so that a client can reconnect and resume.
	DetachedTTL time.Duration
	// CancelGrace is how long a cancelled execution may take to stop after
	// the interrupt before its kernel is restarted (state lost).
	CancelGrace time.Duration
	// ExecutionTimeout stops a cell that runs longer, and caps what a
	// request may ask for itself (interrupt, then a
	// restart after CancelGrace); 0 means no limit.
	ExecutionTimeout time.Duration
	// InputTimeout stops a cell whose input() waits longer for an answer;
	// 0 means no limit.
	InputTimeout time.Duration
	// MaxQueuedCells bounds the cells waiting behind the running one.
	MaxQueuedCells int
	// MaxMessageBytes bounds one client message.
	MaxMessageBytes int64
	// JournalMessages and JournalBytes bound each session's replay buffer.
	JournalMessages int
	JournalBytes    int
	// AllowedOrigins are Origin host patterns (path.Match syntax) allowed
	// to open WebSockets besides the server's own host.
	AllowedOrigins []string
	Cell           CellOptions
	MaxStateRows   int    // rows per DataFrame in variables and dataframe_variables
	PlotlyJSFile   string // served at /static/plotly.js for figure HTML
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		DetachedTTL:     10 * time.Minute,
		CancelGrace:     2 * time.Second,
		MaxQueuedCells:  64,
		MaxMessageBytes: 16 << 20,
		JournalMessages: 4096,
		JournalBytes:    32 << 20,
		// path.Match patterns: brackets must be escaped to match literally.
		AllowedOrigins: []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`},
		MaxStateRows:   20,
		PlotlyJSFile:   "/usr/share/python3-plotly/plotly.js", // from Debian's python3-plotly
	}
}

// Kernels is what sessions need from the core.
type Kernels interface {
	Start(ctx context.Context, opts kernel.StartOptions) (*kernel.Kernel, error)
}

// out is one journaled server message: the message, and its encoding with
// "seq" set, made once when it is journaled.
type out struct {
	seq uint64
	msg Msg
	raw []byte
}

// ExecuteRequest is one cell to run.
type ExecuteRequest struct {
	CellID    string
	Code      string
	Datasets  json.RawMessage // a JSON array of {name, data}, or empty
	Variables json.RawMessage // a JSON object of names to set first (variableContext), or empty
	Streaming bool
	Timeout   time.Duration // the request's own limit; 0 for the server's
}

// timeout is the limit a cell runs under: its own, bounded by the
// server's maximum (0: none).
func (c Config) timeout(asked time.Duration) time.Duration {
	switch {
	case asked <= 0:
		return c.ExecutionTimeout
	case c.ExecutionTimeout > 0 && asked > c.ExecutionTimeout:
		return c.ExecutionTimeout
	}
	return asked
}

// Session is one user's kernel with the AdeloopFlow state around it: the
// queue of cells, and a journal of every message sent about it, so a client
// that reconnects resumes where it was. A session outlives its connections
// by Config.DetachedTTL.
type Session struct {
	id, user string
	cfg      Config
	kernels  Kernels
	limits   *ratelimit.Limiter // shared by all sessions of the server, and with the other APIs
	log      *slog.Logger
	journal  *journal.Journal[out]
	cells    chan ExecuteRequest

	ctx    context.Context // ends when the session closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // the cell worker and cancel watchers

	startMu sync.Mutex // serialises starting the kernel, so a session never starts two

	mu        sync.Mutex // guards the fields below
	k         *kernel.Kernel
	running   *runningCell
	queued    map[string]bool // ids of the cells in the queue
	cancelled map[string]bool // queued cells cancelled by id: skipped when dequeued
	attached  int
	detached  time.Time // when attached last dropped to 0
}

type runningCell struct {
	cellID    string
	ex        *kernel.Execution // nil while the cell is being prepared
	cancelled bool              // cancelled (while being prepared: never execute it); the audit line says so
}

func newSession(id, user string, cfg Config, kernels Kernels, limits *ratelimit.Limiter, log *slog.Logger) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		id: id, user: user, cfg: cfg, kernels: kernels, limits: limits,
		log:      log.With("session_id", id),
		journal:  journal.New(cfg.JournalMessages, cfg.JournalBytes, outSize, stampOut),
		cells:    make(chan ExecuteRequest, cfg.MaxQueuedCells),
		ctx:      ctx,
		cancel:   cancel,
		detached: time.Now(),
	}
	s.wg.Go(s.work)
	return s
}

func outSize(o *out) int { return len(o.raw) + 64 }

// stampOut numbers a message and encodes it once, so every connection and
// every resume sends the same bytes.
func stampOut(o *out, seq uint64) {
	o.seq = seq
	o.msg["seq"] = seq
	raw, err := json.Marshal(o.msg)
	if err != nil {
		// Only Go values and valid kernel JSON go in; say so rather than drop.
		raw, _ = json.Marshal(Msg{"type": "error", "seq": seq, "error": "kernelgate could not encode a message: " + err.Error()})
	}
	o.raw = raw
}

// ID is the session's id, which clients know as kernel_id.
func (s *Session) ID() string { return s.id }

// emit journals a message for every connection, present and future.
func (s *Session) emit(m Msg) { s.journal.Append(out{msg: m}) }

// Enqueue queues a cell behind the running one.
func (s *Session) Enqueue(req ExecuteRequest) error {
	select {
	case <-s.ctx.Done():
		return errSessionClosed
	default:
	}
	s.mu.Lock()
	if s.queued == nil {
		s.queued = make(map[string]bool)
	}
	s.queued[req.CellID] = true
	s.mu.Unlock()
	select {
	case s.cells <- req:
		return nil
	default:
		s.mu.Lock()
		delete(s.queued, req.CellID)
		s.mu.Unlock()
		return fmt.Errorf("%w: %d cells are already queued in this session; wait for some to finish", errQueueFull, cap(s.cells))
	}
}

var (
	errSessionClosed = errors.New("session is closed")
	errQueueFull     = errors.New("cell queue is full")
)

// work runs the cells one at a time, in order.
func (s *Session) work() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case req := <-s.cells:
			s.mu.Lock()
			skip := s.cancelled[req.CellID]
			delete(s.cancelled, req.CellID)
			delete(s.queued, req.CellID)
			s.mu.Unlock()
			if skip {
				continue // whoever cancelled it was already answered
			}
			s.runCell(req)
		}
	}
}

// kernel returns the session's kernel, starting it on first use.
func (s *Session) kernel(ctx context.Context) (*kernel.Kernel, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	s.mu.Lock()
	k := s.k
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	if err := s.limits.KernelStart(ctx, s.user); err != nil {
		return nil, err
	}
	k, err := s.kernels.Start(ctx, kernel.StartOptions{Owner: s.user})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.k = k
	s.mu.Unlock()
	after := k.Journal().Last()
	s.wg.Go(func() { s.watchLifecycle(k, after) })
	return k, nil
}

// watchLifecycle tells the clients about the kernel's deaths and restarts,
// whether or not a cell is running, so nobody is left guessing why their
// variables are gone.
func (s *Session) watchLifecycle(k *kernel.Kernel, after uint64) {
	for {
		evs, err := k.Journal().Read(s.ctx, after, 256)
		if err != nil {
			return // the session or the kernel ended
		}
		for _, e := range evs {
			after = e.Seq
			if e.Life != nil {
				s.emit(Msg{"type": "kernel_status", "kernel_id": s.id, "event": e.Life.Kind, "state": string(e.Life.State),
					"reason": e.Life.Reason, "state_lost": e.Life.StateLost})
			}
		}
	}
}

// Kernel returns the session's kernel if it has been started.
func (s *Session) Kernel() (*kernel.Kernel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.k, s.k != nil
}

func (s *Session) runCell(req ExecuteRequest) {
	run := &runningCell{cellID: req.CellID}
	audit := newCellAudit(run)
	defer s.logCell(audit)
	s.mu.Lock()
	s.running = run
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}()
	s.emit(Msg{"type": "execution_start", "cell_id": req.CellID, "kernel_id": s.id})
	k, err := s.kernel(s.ctx)
	if err != nil {
		audit.kernelFailed(err)
		s.emit(Msg{"type": "error", "cell_id": req.CellID, "is_last": true, "error": "the kernel could not start: " + err.Error()})
		return
	}
	if len(req.Datasets) > 0 {
		s.prepare(k, req.CellID, "loading datasets", bootstrap.LoadDatasetsExpr(req.Datasets))
	}
	if len(req.Variables) > 0 {
		s.prepare(k, req.CellID, "setting variables", bootstrap.SetVariablesExpr(req.Variables))
	}
	// Under mu, so that a Cancel either sees the execution or the flag.
	s.mu.Lock()
	if run.cancelled {
		s.mu.Unlock()
		s.emit(Msg{"type": "error", "cell_id": req.CellID, "is_last": true, "error": "the cell was cancelled before its code ran"})
		return
	}
	// The variables summary rides on the execute_request as a user
	// expression: the kernel evaluates it right after the code, in the same
	// request, which saves a round trip per cell (it is not evaluated when
	// the cell fails; flowState then asks for it).
	ex, err := k.Execute(s.ctx, kernel.ExecuteRequest{Code: req.Code, StoreHistory: true, AllowStdin: true, StopOnError: true,
		UserExpressions: map[string]string{stateExprKey: bootstrap.FlowStateExpr(s.cfg.MaxStateRows, 200)}})
	run.ex = ex
	s.mu.Unlock()
	if err != nil {
		s.emit(Msg{"type": "error", "cell_id": req.CellID, "is_last": true, "error": "the cell could not be sent to the kernel: " + err.Error()})
		return
	}

	if limit := s.cfg.timeout(req.Timeout); limit > 0 {
		s.wg.Go(func() {
			t := time.NewTimer(limit)
			defer t.Stop()
			select {
			case <-ex.Done():
			case <-s.ctx.Done():
			case <-t.C:
				audit.timedOut.Store(true)
				s.emit(Msg{"type": "error", "cell_id": req.CellID, "error": fmt.Sprintf(
					"timed out after %s: the cell ran past its execution timeout and is being stopped", limit)})
				s.Cancel(req.CellID)
			}
		})
	}
	cell := NewCell(req.CellID, req.Streaming, s.cfg.Cell)
	audit.cell = cell
	f := cellFollower{journal: k.Journal(), id: ex.ID, after: ex.After, done: ex.Done(), cell: cell, emit: s.emit,
		onInput: func(m *jmsg.Message) {
			if s.cfg.InputTimeout > 0 {
				s.expireInput(k, ex, req.CellID, m.Header.MsgID)
			}
		},
		pendingInput: k.PendingInput,
	}
	err = f.follow(s.ctx)
	if f.lost > 0 {
		s.log.Warn("a cell's output outran its follower; messages were dropped", "cell_id", req.CellID, "lost", f.lost)
	}
	if err != nil && s.ctx.Err() != nil {
		audit.status = auditLost
		return // the session is closing
	}
	end := CellEnd{}
	_, reply, xerr := ex.Result()
	switch {
	case err != nil:
		end.Lost = "kernelgate lost track of the cell: " + err.Error()
	case xerr != nil:
		end.Lost = xerr.Error()
	default:
		end.Reply = reply
		end.State = stateFromReply(reply)
		if end.State == nil {
			end.State = s.flowState(k)
		}
	}
	audit.ended(end)
	for _, m := range cell.Finish(end) {
		s.emit(m)
	}
}

// expireInput stops the cell if the prompt promptID is still unanswered
// after InputTimeout: an abandoned input() must not hold the kernel forever.
func (s *Session) expireInput(k *kernel.Kernel, ex *kernel.Execution, cellID, promptID string) {
	s.wg.Go(func() {
		t := time.NewTimer(s.cfg.InputTimeout)
		defer t.Stop()
		select {
		case <-ex.Done():
		case <-s.ctx.Done():
		case <-t.C:
			if p, waiting := k.PendingInput(); waiting && p.Header.MsgID == promptID {
				s.emit(Msg{"type": "error", "cell_id": cellID, "error": fmt.Sprintf(
					"input() got no answer within %s; the cell is being stopped", s.cfg.InputTimeout)})
				s.Cancel(cellID)
			}
		}
	})
}

// prepare runs a helper before the cell's code (loading datasets, setting
// variables); each problem it reports is sent as an error naming it, and
// the cell still runs.
func (s *Session) prepare(k *kernel.Kernel, cellID, what, expr string) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	res, err := k.Evaluate(ctx, map[string]string{"r": expr})
	if err != nil {
		s.emit(Msg{"type": "error", "cell_id": cellID, "error": what + " failed: " + err.Error()})
		return
	}
	r := res["r"]
	if r.Status != "ok" {
		s.emit(Msg{"type": "error", "cell_id": cellID, "error": fmt.Sprintf("%s failed: %s: %s", what, r.Ename, r.Evalue)})
		return
	}
	var report struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(r.Data["application/json"], &report) == nil {
		for _, e := range report.Errors {
			s.emit(Msg{"type": "error", "cell_id": cellID, "error": e})
		}
	}
}

// stateExprKey names the variables summary among a cell's user expressions.
const stateExprKey = "__kernelgate_state"

// stateFromReply returns the variables summary evaluated with the cell, or
// nil when the reply has none (the cell failed).
func stateFromReply(reply jmsg.ExecuteReplyContent) *FlowState {
	raw, ok := reply.UserExpressions[stateExprKey]
	if !ok {
		return nil
	}
	var r kernel.ExprResult
	if json.Unmarshal(raw, &r) != nil || r.Status != "ok" {
		return nil
	}
	var st FlowState
	if json.Unmarshal(r.Data["application/json"], &st) != nil {
		return nil
	}
	return &st
}

// flowState reads the variables summaries after a cell; nil if that fails
// (the cell's own result is still sent).
func (s *Session) flowState(k *kernel.Kernel) *FlowState {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	res, err := k.Evaluate(ctx, map[string]string{"state": bootstrap.FlowStateExpr(s.cfg.MaxStateRows, 200)})
	if err != nil || res["state"].Status != "ok" {
		s.log.Warn("variables summary failed", "err", err, "ename", res["state"].Ename, "evalue", res["state"].Evalue)
		return nil
	}
	var st FlowState
	if err := json.Unmarshal(res["state"].Data["application/json"], &st); err != nil {
		return nil
	}
	return &st
}

// ProvideInput answers the running cell's pending input() with value.
func (s *Session) ProvideInput(value string) error {
	k, ok := s.Kernel()
	if !ok {
		return kernel.ErrNoInputPending
	}
	return k.Input(value)
}

// Cancel stops cells: with an empty cellID every queued cell is dropped
// and the running one interrupted; with a cellID only that cell is (dropped
// if queued, interrupted if running). A running cell that is still running
// CancelGrace after the interrupt (stuck in C code, say) has its kernel
// restarted, and the client is told its state was lost. Cancel returns at
// once.
func (s *Session) Cancel(cellID string) {
	if cellID == "" {
		for dropped := true; dropped; {
			select {
			case req := <-s.cells:
				s.mu.Lock()
				delete(s.queued, req.CellID)
				delete(s.cancelled, req.CellID)
				s.mu.Unlock()
				s.emit(Msg{"type": "execution_cancelled", "cell_id": req.CellID, "message": "Execution cancelled before it started"})
			default:
				dropped = false
			}
		}
	}
	s.mu.Lock()
	run, k := s.running, s.k
	if run != nil && run.ex == nil && (cellID == "" || cellID == run.cellID) {
		run.cancelled = true // still being prepared: its code will not be sent
		s.mu.Unlock()
		return
	}
	if cellID != "" && (run == nil || run.cellID != cellID) {
		if s.queued[cellID] { // the worker skips it when its turn comes
			if s.cancelled == nil {
				s.cancelled = make(map[string]bool)
			}
			s.cancelled[cellID] = true
		}
		s.mu.Unlock()
		return
	}
	var ex *kernel.Execution
	if run != nil {
		ex, run.cancelled = run.ex, true
	}
	s.mu.Unlock()
	if ex == nil || k == nil {
		return
	}
	if err := k.Interrupt(s.ctx); err != nil {
		s.emit(Msg{"type": "error", "cell_id": run.cellID, "error": "interrupt failed: " + err.Error()})
	}
	s.wg.Go(func() {
		t := time.NewTimer(s.cfg.CancelGrace)
		defer t.Stop()
		select {
		case <-ex.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.log.Warn("cell ignored the interrupt; restarting its kernel", "cell_id", run.cellID)
		s.emit(Msg{"type": "error", "cell_id": run.cellID, "error": fmt.Sprintf(
			"the cell did not stop within %s of the interrupt, so its kernel is being restarted; its variables will be gone", s.cfg.CancelGrace)})
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		if err := k.Restart(ctx); err != nil {
			s.emit(Msg{"type": "error", "cell_id": run.cellID, "error": "restarting the stuck kernel failed: " + err.Error()})
		}
	})
}

// Reset restarts the kernel with an empty namespace, dropping queued cells.
func (s *Session) Reset(ctx context.Context) error {
	s.Cancel("")
	k, ok := s.Kernel()
	if !ok {
		return nil
	}
	return k.Restart(ctx)
}

// Read returns the session's messages after position after.
func (s *Session) Read(ctx context.Context, after uint64) ([]out, error) {
	return s.journal.Read(ctx, after, 256)
}

// Last is the newest message's sequence number.
func (s *Session) Last() uint64 { return s.journal.Last() }

func (s *Session) attach() {
	s.mu.Lock()
	s.attached++
	s.mu.Unlock()
}

func (s *Session) detach() {
	s.mu.Lock()
	s.attached--
	if s.attached == 0 {
		s.detached = time.Now()
	}
	s.mu.Unlock()
}

// idleSince reports when the session lost its last connection, or false
// while a connection is attached.
func (s *Session) idleSince() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detached, s.attached == 0
}

// close stops the worker and shuts the kernel down.
func (s *Session) close(ctx context.Context) {
	s.cancel()
	s.wg.Wait()
	s.journal.Close()
	if k, ok := s.Kernel(); ok {
		if err := k.Shutdown(ctx); err != nil {
			s.log.Warn("shut down session kernel", "err", err)
		}
	}
}

// Sessions owns every AdeloopFlow session, keyed by user and id, and culls
// those that stayed without a connection for Config.DetachedTTL.
type Sessions struct {
	cfg     Config
	kernels Kernels
	limits  *ratelimit.Limiter // per-user rate limits, shared with the WS and HTTP handlers and the other APIs
	log     *slog.Logger

	mu     sync.Mutex // guards byKey and closed
	byKey  map[sessionKey]*Session
	closed bool
}

type sessionKey struct{ user, id string }

// NewSessions returns an empty session table. limits (nil: none) is the
// server's one per-user limiter.
func NewSessions(cfg Config, kernels Kernels, limits *ratelimit.Limiter, log *slog.Logger) *Sessions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sessions{cfg: cfg, kernels: kernels, limits: limits, log: log, byKey: make(map[sessionKey]*Session)}
}

// Open returns the user's session with this id, creating it when id is new
// (or empty, which makes a fresh anonymous session).
func (ss *Sessions) Open(user, id string) (*Session, error) {
	if id == "" {
		id = "kg-" + uuid.NewString()
	}
	if len(id) > 200 {
		return nil, errors.New("kernel_id is longer than 200 characters")
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, errSessionClosed
	}
	key := sessionKey{user, id}
	if s, ok := ss.byKey[key]; ok {
		return s, nil
	}
	s := newSession(id, user, ss.cfg, ss.kernels, ss.limits, ss.log)
	ss.byKey[key] = s
	return s, nil
}

// Lookup returns an existing session of the user.
func (ss *Sessions) Lookup(user, id string) (*Session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byKey[sessionKey{user, id}]
	return s, ok
}

// Run culls detached sessions until ctx ends, then closes every session.
func (ss *Sessions) Run(ctx context.Context) error {
	t := time.NewTicker(ss.cfg.DetachedTTL/10 + time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ss.closeAll()
			return nil
		case <-t.C:
			ss.cull(time.Now())
		}
	}
}

func (ss *Sessions) cull(now time.Time) {
	var stale []*Session
	ss.mu.Lock()
	for key, s := range ss.byKey {
		if since, idle := s.idleSince(); idle && now.Sub(since) > ss.cfg.DetachedTTL {
			delete(ss.byKey, key)
			stale = append(stale, s)
		}
	}
	ss.mu.Unlock()
	for _, s := range stale {
		ss.log.Info("closing a session nobody reconnected to", "session_id", s.id, "ttl", ss.cfg.DetachedTTL)
		s.close(context.Background())
	}
}

func (ss *Sessions) closeAll() {
	ss.mu.Lock()
	ss.closed = true
	all := make([]*Session, 0, len(ss.byKey))
	for _, s := range ss.byKey {
		all = append(all, s)
	}
	ss.byKey = map[sessionKey]*Session{}
	ss.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() { s.close(context.Background()) })
	}
	wg.Wait()
}

// Stream coalescing bounds: a merged stream_output carries at most
// coalesceMaxBytes of text, and merges only messages already read in one
// journal batch (at most coalesceMaxEvents), so a quiet line is never held
// back waiting for company.
const (
	coalesceMaxBytes  = 64 << 10
	coalesceMaxEvents = 256
)

// cellFollower folds one execution's kernel events into the session's wire
// messages. It reads the kernel journal directly rather than through
// Kernel.Follow, for two reasons. Under a flood, consecutive stream messages
// of one stream already waiting in a batch go out as one wire message
// (fewer encodings, fewer session journal entries). And when it falls out of
// the kernel journal (a GapError: the ring dropped events it had not read),
// it does not give up on the execution: it reports the loss through the
// Cell, skips to the oldest event still held and carries on until the
// execution is done, so the cell still ends with its real reply and the
// execution timeout keeps applying to it.
type cellFollower struct {
	journal      *kernel.Journal
	id           string              // the execute_request's msg_id
	after        uint64              // journal position read so far
	done         <-chan struct{}     // closed when the execution has ended and its last event is journaled
	cell         *Cell               // folds messages into wire messages
	emit         func(Msg)           // journals a wire message
	onInput      func(*jmsg.Message) // called for each input_request of the execution
	pendingInput func() (*jmsg.Message, bool)

	lost      uint64 // events dropped by the journal before they were read
	promptIDs map[string]bool
}

// follow reads until the execution is done and every event of it is read,
// or ctx ends.
func (f *cellFollower) follow(ctx context.Context) error {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-f.done:
		case <-rctx.Done():
		}
		cancel()
	})
	defer wg.Wait()
	defer cancel()
	for {
		evs, err := f.journal.Read(rctx, f.after, coalesceMaxEvents)
		if err == nil {
			f.deliver(evs)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f.skipGap(err) {
			continue
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, kernel.ErrJournalClosed) {
			break // the execution is done: read what is left below
		}
		return err
	}
	// Done closes only after the execution's last event was journaled, so
	// reading up to the current end finds all of them.
	for last := f.journal.Last(); f.after < last; {
		evs, err := f.journal.Read(ctx, f.after, coalesceMaxEvents)
		if f.skipGap(err) {
			continue
		}
		if err != nil {
			return err
		}
		f.deliver(evs)
	}
	return nil
}

// skipGap handles a GapError: the events between the position and the
// oldest still held are gone. It reports the loss once through the cell,
// moves past it, and re-offers a prompt of the execution that may have been
// among the lost events (the kernel still waits on it).
func (f *cellFollower) skipGap(err error) bool {
	var gap *kernel.GapError
	if !errors.As(err, &gap) {
		return false
	}
	n := gap.Oldest - 1 - f.after
	f.lost += n
	f.after = gap.Oldest - 1
	for _, m := range f.cell.Gap(n) {
		f.emit(m)
	}
	if p, ok := f.pendingInput(); ok && p.ParentID() == f.id {
		f.observe(p)
	}
	return true
}

// deliver folds a batch: runs of stream messages of one stream are merged
// (up to coalesceMaxBytes), everything else goes through one by one, in
// order.
func (f *cellFollower) deliver(evs []kernel.Event) {
	for _, u := range coalesce(evs, f.id, coalesceMaxBytes) {
		if u.msg != nil {
			f.observe(u.msg)
			continue
		}
		for _, m := range f.cell.ObserveStream(u.stream, u.texts...) {
			f.emit(m)
		}
	}
	if len(evs) > 0 {
		f.after = evs[len(evs)-1].Seq
	}
}

func (f *cellFollower) observe(m *jmsg.Message) {
	if m.Type() == jmsg.InputRequest {
		// A prompt re-offered after a gap may also still be in the journal.
		if f.promptIDs[m.Header.MsgID] {
			return
		}
		if f.promptIDs == nil {
			f.promptIDs = map[string]bool{}
		}
		f.promptIDs[m.Header.MsgID] = true
	}
	for _, w := range f.cell.Observe(m) {
		f.emit(w)
	}
	if m.Type() == jmsg.InputRequest && f.onInput != nil {
		f.onInput(m)
	}
}

// foldUnit is one step of folding a batch: a kernel message, or a run of
// stream texts of one stream.
type foldUnit struct {
	msg    *jmsg.Message
	stream string
	texts  []string
}

// coalesce picks the events of execution id out of a journal batch (other
// executions' messages and lifecycle events are skipped: the session's
// lifecycle watcher reports those) and merges each run of consecutive
// stream messages of the same stream into one unit of at most maxBytes of
// text (a single larger message stays whole). Nothing else is merged or
// reordered.
func coalesce(evs []kernel.Event, id string, maxBytes int) []foldUnit {
	var out []foldUnit
	open := -1 // index in out of the run that may still grow
	size := 0
	for _, e := range evs {
		if e.Life != nil || e.Msg.ParentID() != id {
			continue
		}
		if e.Msg.Type() != jmsg.Stream {
			out = append(out, foldUnit{msg: e.Msg})
			open = -1
			continue
		}
		var sc jmsg.StreamContent
		if e.Msg.Decode(&sc) != nil {
			continue // as Observe would: an undecodable stream message is dropped
		}
		name := "stdout"
		if sc.Name == "stderr" {
			name = "stderr"
		}
		if open >= 0 && out[open].stream == name && size+len(sc.Text) <= maxBytes {
			out[open].texts = append(out[open].texts, sc.Text)
			size += len(sc.Text)
			continue
		}
		out = append(out, foldUnit{stream: name, texts: []string{sc.Text}})
		open, size = len(out)-1, len(sc.Text)
	}
	return out
}
