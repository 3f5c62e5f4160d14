// Package app is the composition root: it builds the kernel manager, the
// metrics registry and the HTTP server from a config.Config, runs them, and
// shuts them down in order (stop accepting, stop kernels, return).
package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/kernelgate/kernelgate/internal/auth"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/console"
	"github.com/kernelgate/kernelgate/internal/flowapi"
	"github.com/kernelgate/kernelgate/internal/jupyterapi"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/metrics"
	"github.com/kernelgate/kernelgate/internal/notebook"
	"github.com/kernelgate/kernelgate/internal/sandbox"
	"github.com/kernelgate/kernelgate/internal/supervisor"
)

// NewLogger builds the process logger from the config.
func NewLogger(c config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Specs discovers the kernelspecs, adds the built-in Python one when none
// is named like it, points bare "python3" argv at the configured interpreter,
// and preflights the default spec so that a missing ipykernel is one clear
// sentence at startup rather than a kernel that dies on every start.
func Specs(ctx context.Context, c config.Config, log *slog.Logger) (map[string]kernelspec.Spec, error) {
	specs, err := kernelspec.Find(kernelspec.SearchDirs(c.SpecSearch))
	if err != nil {
		log.Warn("some kernelspecs are broken", "err", err)
	}
	if specs == nil {
		specs = map[string]kernelspec.Spec{}
	}
	if _, ok := specs["python3"]; !ok {
		specs["python3"] = kernelspec.Default(c.Python)
	}
	for name, s := range specs {
		specs[name] = s.WithInterpreter(c.Python)
	}
	def, ok := specs[c.KernelSpec]
	if !ok {
		return nil, fmt.Errorf("default kernelspec %q not found", c.KernelSpec)
	}
	if py, ok := def.Python(); ok {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := supervisor.Probe(pctx, kernelspec.PreflightArgv(py), c.Kernel.Env)
		if err != nil {
			return nil, kernelspec.PreflightError(py, out, err)
		}
	}
	return specs, nil
}

// newManager builds the kernel manager with its runtime directory and
// sandbox; confinement says how kernels are confined, for /readyz.
func newManager(ctx context.Context, c config.Config, log *slog.Logger, m kernel.Metrics) (mgr *kernel.Manager, confinement string, err error) {
	specs, err := Specs(ctx, c, log)
	if err != nil {
		return nil, "", err
	}
	if err := c.ApplyKernelSpecs(specs); err != nil { // per-kernelspec settings, Python policies
		return nil, "", err
	}
	if err := os.MkdirAll(c.Kernel.RuntimeDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create runtime dir: %w", err)
	}
	// The sandbox bind-mounts kernel dirs by path: no symlinks on the way.
	dir, err := filepath.EvalSymlinks(c.Kernel.RuntimeDir)
	if err != nil {
		return nil, "", fmt.Errorf("runtime dir: %w", err)
	}
	c.Kernel.RuntimeDir = dir
	confinement = "sandbox off (--sandbox none): kernels run unconfined"
	if mode := c.SandboxMode(); mode != "none" {
		// A clashing id range is a configuration error, not a machine
		// limit: it stops the server rather than falling back unconfined.
		if err := sandbox.CheckIDRange(c.SandboxPolicy); err != nil {
			return nil, "", err
		}
		sb, err := sandbox.New(c.SandboxPolicy)
		switch {
		case err == nil:
			c.Kernel.Sandbox = sb
			confinement = sb.Status()
			log.Info(confinement)
		case mode == "bwrap":
			return nil, "", fmt.Errorf("--sandbox bwrap, but kernels cannot be sandboxed here: %w", err)
		default:
			confinement = "WARNING: kernels run WITHOUT a sandbox, this machine cannot confine them: " + err.Error()
			log.Warn(confinement)
		}
	}
	mgr, err = kernel.NewManager(c.Kernel, specs, c.KernelSpec, log, m)
	return mgr, confinement, err
}

// Serve runs the HTTP server until ctx ends, then shuts down gracefully:
// stop accepting, stop every kernel (in parallel, with the stop ladder),
// remove the runtime dir. ready, if not nil, receives the bound address.
func Serve(ctx context.Context, c config.Config, log *slog.Logger, ready func(addr string)) error {
	met := metrics.New()
	mgr, confinement, err := newManager(ctx, c, log, met)
	if err != nil {
		return err
	}
	defer os.RemoveAll(c.Kernel.RuntimeDir)

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		mgr.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	var shuttingDown atomic.Bool
	mux := http.NewServeMux()
	authn, err := authenticator(c, log)
	if err != nil {
		mgr.Close(context.Background())
		return err
	}
	handler, err := withAdmins(c, mux, mgr) // GET /api/admin/kernels; auth.IsAdmin for every handler
	if err != nil {
		mgr.Close(context.Background())
		return err
	}
	// The notebook page at / (for browsers) logs a /?token= visit in
	// with a cookie that authn then accepts.
	var login *auth.CookieLogin
	if authn != nil {
		if login, err = auth.NewCookieLogin(auth.CookieTTL); err != nil {
			mgr.Close(context.Background())
			return err
		}
		authn = login.Wrap(authn)
	}
	page, err := notebook.New(login)
	if err != nil {
		mgr.Close(context.Background())
		return fmt.Errorf("notebook page: %w", err)
	}
	page.Register(mux)
	// One per-user limiter for every API: a user has one budget.
	limits := ratelimit.New(c.Rates, nil)
	sessions := flowapi.NewSessions(c.Flow, mgr, limits, log)
	ws := flowapi.NewWS(c.Flow, sessions, auth.User, log)
	flowHTTP := flowapi.NewHTTP(c.Flow, sessions, auth.User, func() int { return len(mgr.List()) })
	flowHTTP.Page = page
	flowHTTP.Register(mux, ws)
	c.Jupyter.AllowedOrigins = c.Flow.AllowedOrigins
	jupyter := jupyterapi.New(c.Jupyter, mgr, auth.User, auth.IsAdmin, limits, met, log)
	jupyter.Register(mux)
	sctxRun, stopSessions := context.WithCancel(context.Background())
	sessionsDone := make(chan error, 1)
	go func() { sessionsDone <- sessions.Run(sctxRun) }()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if shuttingDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "shutting down\n")
			return
		}
		io.WriteString(w, "ready\n"+confinement+"\n"+mgr.PoolStatus()+"\n")
	})
	mux.Handle("GET /metrics", met.Handler())
	srv := &http.Server{
		// Probes and the old frontend's status dot stay open; they say nothing.
		Handler: auth.BrowserGuard(auth.MiddlewareWith(handler, authn,
			// Jupyter clients expect 403 on their channels; browsers get a sign-in form.
			jupyterapi.RefuseUpgrades(page.SignIn(auth.Refuse)),
			"/healthz", "/readyz", "/health", "/ping"),
			c.Flow.AllowedOrigins, authn == nil),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("kernelgate listening", "url", "http://"+addr)
	if ready != nil {
		ready(addr)
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	shuttingDown.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", serr)
	}
	if err == nil {
		err = <-serveErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	ws.Close() // hijacked connections are not closed by Shutdown
	jupyter.Close()
	stopSessions()
	<-sessionsDone
	if cerr := mgr.Close(sctx); cerr != nil {
		log.Warn("kernels did not stop within the shutdown timeout", "err", cerr)
	}
	log.Info("kernelgate stopped")
	return err
}

// authenticator builds what checks callers from the config: static tokens
// and JWTs (tried in that order, so a failing JWT reports its own reason),
// or nil for no authentication.
func authenticator(c config.Config, log *slog.Logger) (auth.Authenticator, error) {
	var all auth.Any
	tokens, err := loadTokens(c)
	if err != nil {
		return nil, err
	}
	if tokens != nil {
		all = append(all, tokens)
		log.Info("authentication on: static tokens", "tokens", tokens.Len())
	}
	if c.JWT.Enabled() {
		j, err := auth.NewJWT(c.JWT)
		if err != nil {
			return nil, err
		}
		all = append(all, j)
		log.Info("authentication on: JWT", "algorithms", j.Algorithms(), "user_claim", j.UserClaim(),
			"issuer", c.JWT.Issuer, "audience", c.JWT.Audience, "leeway", auth.JWTLeeway)
	}
	if len(all) == 0 {
		log.Info("no authentication: kernelgate accepts only local connections", "addr", c.Addr)
		return nil, nil
	}
	return all, nil
}

// loadTokens builds the token set from the config, or nil when no token is
// configured.
func loadTokens(c config.Config) (*auth.Tokens, error) {
	if c.Token == "" && c.TokenFile == "" {
		return nil, nil
	}
	tokens := auth.NewTokens()
	if c.TokenFile != "" {
		f, err := os.Open(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		if tokens, err = auth.ParseTokens(f); err != nil {
			return nil, err
		}
	}
	if c.Token != "" {
		if err := tokens.Add("default", c.Token); err != nil {
			return nil, fmt.Errorf("KERNELGATE_TOKEN: %w", err)
		}
	}
	if tokens.Len() == 0 {
		return nil, errors.New("token file has no tokens")
	}
	return tokens, nil
}

// RunCode starts a fresh kernel, runs code in it with its outputs on the
// terminal, and shuts the kernel down. It reports whether the code ran
// without error.
func RunCode(ctx context.Context, c config.Config, log *slog.Logger, code string, in io.Reader, out, errw io.Writer) (bool, error) {
	c.Kernel.Pool = kernel.PoolConfig{} // one kernel, used at once: a warm pool would only cost
	mgr, _, err := newManager(ctx, c, log, nil)
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(c.Kernel.RuntimeDir)
	defer mgr.Close(context.Background())
	k, err := mgr.Start(ctx, kernel.StartOptions{})
	if err != nil {
		return false, err
	}
	return console.Run(ctx, k, code, in, out, errw)
}
