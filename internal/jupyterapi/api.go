package jupyterapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// Config is the Jupyter API section of the server configuration.
type Config struct {
	// MaxMessageBytes bounds one WebSocket message from a client. Jupyter
	// messages (widget state, a pasted dataset) are often past the 32 KiB
	// default of WebSocket libraries; Jupyter Server (Tornado) allows 10 MiB.
	MaxMessageBytes int64
	// PingInterval keeps idle WebSockets alive through proxies that cut
	// silent connections (often after 30 or 60 s).
	PingInterval time.Duration
	// WriteTimeout bounds a write to a client; a client that cannot take a
	// message in that time is disconnected rather than slowing the kernel.
	WriteTimeout time.Duration
	// KernelReadyTimeout bounds how long a client's message waits for a
	// kernel that is starting or restarting (Jupyter's kernel_info_timeout).
	KernelReadyTimeout time.Duration
	// AllowedOrigins are the Origin host patterns allowed to open WebSockets
	// besides the server's own host.
	AllowedOrigins []string
	// AllowedEnv names the variables a start request's env may set besides
	// KERNEL_* ones (Jupyter Server's gateway client sends KERNEL_USERNAME
	// and friends).
	AllowedEnv []string
	// MaxOfflineSessions bounds the journal positions kept for clients that
	// disconnected, per kernel.
	MaxOfflineSessions int
	// CullIdleTimeout shuts down kernels started through this API that are
	// idle with no connection for this long (0: never). CullInterval is how
	// often they are checked.
	CullIdleTimeout time.Duration
	CullInterval    time.Duration
}

// DefaultConfig returns the defaults documented in docs/jupyter.md.
func DefaultConfig() Config {
	return Config{
		MaxMessageBytes:    64 << 20,
		PingInterval:       25 * time.Second,
		WriteTimeout:       10 * time.Second,
		KernelReadyTimeout: 60 * time.Second,
		MaxOfflineSessions: 64,
		CullIdleTimeout:    time.Hour,
		CullInterval:       time.Minute,
	}
}

// Kernels is what the API needs of the kernel manager.
type Kernels interface {
	Start(ctx context.Context, opts kernel.StartOptions) (*kernel.Kernel, error)
	Get(id string) (*kernel.Kernel, error)
	List() []*kernel.Kernel
	Shutdown(ctx context.Context, id string) error
	Specs() (map[string]kernelspec.Spec, string)
}

// Limiter rate-limits a user's kernel starts, executions and messages
// (ratelimit.Limiter, the one the whole server shares); nil allows
// everything. The error it returns is shown to the client.
type Limiter interface {
	KernelStart(ctx context.Context, user string) error
	Execution(user string) error
	Message(user string) error
}

// Metrics is what the API reports; the metrics package implements it.
type Metrics interface {
	ChannelOpened()
	ChannelClosed()
	ChannelProblem(kind string) // "malformed", "slow_client", "refused"
}

type nopMetrics struct{}

func (nopMetrics) ChannelOpened()        {}
func (nopMetrics) ChannelClosed()        {}
func (nopMetrics) ChannelProblem(string) {}

// API serves the Jupyter Server kernel API. Close ends its WebSocket
// connections and waits for their goroutines.
type API struct {
	cfg     Config
	kernels Kernels
	user    func(*http.Request) string
	admin   func(*http.Request) bool
	limits  Limiter
	metrics Metrics
	log     *slog.Logger
	started time.Time

	ctx    context.Context // ends every connection on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // connections and hub watchers

	mu          sync.Mutex // guards hubs, closed and startedHere
	hubs        map[string]*hub
	closed      bool
	startedHere map[string]struct{} // kernels started through this API, for the culler
	sessions    *sessions
}

// New returns the API. user names the caller of a request; admin, when not
// nil, says whether the caller may list every user's kernels; limits and
// metrics may be nil.
func New(cfg Config, kernels Kernels, user func(*http.Request) string, admin func(*http.Request) bool, limits Limiter, m Metrics, log *slog.Logger) *API {
	if m == nil {
		m = nopMetrics{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := DefaultConfig()
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = def.MaxMessageBytes
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = def.PingInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
	if cfg.KernelReadyTimeout <= 0 {
		cfg.KernelReadyTimeout = def.KernelReadyTimeout
	}
	if admin == nil {
		admin = func(*http.Request) bool { return false }
	}
	if cfg.CullInterval <= 0 {
		cfg.CullInterval = def.CullInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &API{cfg: cfg, kernels: kernels, user: user, admin: admin, limits: limits, metrics: m, log: log,
		started: time.Now(), ctx: ctx, cancel: cancel, hubs: make(map[string]*hub),
		startedHere: make(map[string]struct{}), sessions: newSessions()}
	if cfg.CullIdleTimeout > 0 {
		a.wg.Go(a.cull)
	}
	return a
}

// Close ends every WebSocket connection and waits for the goroutines.
func (a *API) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

// track counts a connection in the API's wait group, unless the API is
// closed: Add never races with Close's Wait.
func (a *API) track() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.wg.Add(1)
	return true
}

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api", a.version)
	mux.HandleFunc("GET /api/{$}", a.version)
	mux.HandleFunc("GET /api/status", a.status)
	mux.HandleFunc("GET /api/kernelspecs", a.listSpecs)
	mux.HandleFunc("GET /api/kernelspecs/{name}", a.getSpec)
	mux.HandleFunc("GET /kernelspecs/{name}/{file}", a.specResource)
	mux.HandleFunc("GET /api/kernels", a.listKernels)
	mux.HandleFunc("POST /api/kernels", a.startKernel)
	mux.HandleFunc("GET /api/kernels/{id}", a.getKernel)
	mux.HandleFunc("DELETE /api/kernels/{id}", a.deleteKernel)
	mux.HandleFunc("POST /api/kernels/{id}/interrupt", a.interruptKernel)
	mux.HandleFunc("POST /api/kernels/{id}/restart", a.restartKernel)
	mux.HandleFunc("GET /api/kernels/{id}/channels", a.channels)
	mux.HandleFunc("GET /api/sessions", a.listSessions)
	mux.HandleFunc("POST /api/sessions", a.createSession)
	mux.HandleFunc("GET /api/sessions/{id}", a.getSession)
	mux.HandleFunc("PATCH /api/sessions/{id}", a.patchSession)
	mux.HandleFunc("DELETE /api/sessions/{id}", a.deleteSession)
}

// RefuseUpgrades wraps the server's refusal of unauthenticated requests
// with Jupyter's convention for its kernel channels: a WebSocket upgrade
// without a user gets 403 (@ws_authenticated), with Jupyter's error body.
func RefuseUpgrades(next func(http.ResponseWriter, *http.Request, error)) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && strings.HasPrefix(r.URL.Path, "/api/kernels/") {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		next(w, r, err)
	}
}

// errNotFound is the 404 for a kernel that does not exist or is another
// user's: the two are indistinguishable on purpose.
var errNotFound = errors.New("not found")

// ownKernel returns the caller's kernel with the given id. Another user's
// kernel is not found, exactly like a kernel that does not exist; admins
// may reach every kernel when adminOK.
func (a *API) ownKernel(r *http.Request, id string, adminOK bool) (*kernel.Kernel, error) {
	k, err := a.kernels.Get(id)
	if err != nil {
		return nil, errNotFound
	}
	if k.Info().Owner != a.user(r) && !(adminOK && a.admin(r)) {
		return nil, errNotFound
	}
	return k, nil
}

// kernelModel is Jupyter Server's kernel model.
type kernelModel struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	LastActivity   string `json:"last_activity"`
	ExecutionState string `json:"execution_state"`
	Connections    int    `json:"connections"`
	Reason         string `json:"reason,omitempty"`
}

// jupyterTime is the format Jupyter Server's gateway client parses
// (%Y-%m-%dT%H:%M:%S.%fZ: microseconds and Z required).
const jupyterTime = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(jupyterTime) }

func (a *API) model(k *kernel.Kernel) kernelModel {
	info := k.Info()
	last := info.LastActivity
	if last.IsZero() {
		last = info.Started
	}
	if last.IsZero() {
		last = time.Now()
	}
	m := kernelModel{ID: info.ID, Name: info.SpecName, LastActivity: formatTime(last),
		ExecutionState: string(info.State), Connections: a.connections(info.ID)}
	if info.State == kernel.Dead {
		m.Reason = "kernel died"
	}
	return m
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes Jupyter Server's error body: {"message", "reason"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "reason": nil})
}
