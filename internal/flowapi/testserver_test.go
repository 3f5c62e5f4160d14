package flowapi

import (
	"context"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/kerneltest"
)

// TestServer is a real AdeloopFlow server backed by real ipykernels, for
// the tests of this package, internal and external (flowapi_test sees the
// identifiers exported here). The user is the X-Test-User header, else
// "tester".
type TestServer struct {
	URL      string
	Sessions *Sessions
}

// NewTestServer starts one with the default rate limits; mutate adjusts
// its config, log may be nil.
func NewTestServer(t *testing.T, log *slog.Logger, mutate func(*Config)) *TestServer {
	return NewTestServerRates(t, log, ratelimit.DefaultRates(), mutate)
}

// NewTestServerRates is NewTestServer with the given per-user rates.
func NewTestServerRates(t *testing.T, log *slog.Logger, rates ratelimit.Rates, mutate func(*Config)) *TestServer {
	t.Helper()
	mgr := kerneltest.NewManager(t, nil)
	cfg := DefaultConfig()
	cfg.DetachedTTL = time.Minute
	if mutate != nil {
		mutate(&cfg)
	}
	user := func(r *http.Request) string {
		if u := r.Header.Get("X-Test-User"); u != "" {
			return u
		}
		return "tester"
	}
	sessions := NewSessions(cfg, mgr, ratelimit.New(rates, nil), log)
	ws := NewWS(cfg, sessions, user, log)
	mux := http.NewServeMux()
	NewHTTP(cfg, sessions, user, func() int { return len(mgr.List()) }).Register(mux, ws)
	srv := httptest.NewServer(mux)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sessions.Run(ctx) }()
	t.Cleanup(func() {
		ws.Close()
		srv.Close()
		stop()
		<-done
	})
	return &TestServer{URL: srv.URL, Sessions: sessions}
}
