package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
)

// The core finds the pool's metrics by this interface; losing a method
// would silently turn them off.
var (
	_ kernel.Metrics     = (*Metrics)(nil)
	_ kernel.PoolMetrics = (*Metrics)(nil)
)

func TestMetrics_Exposed(t *testing.T) {
	m := New()
	m.KernelsRunning(3)
	m.KernelStarted("python3", 700*time.Millisecond)
	m.KernelDied()
	m.KernelRestarted()
	m.KernelRestarted()
	m.PoolReady("python3", 2)
	m.PoolHit("python3")
	m.PoolHit("python3")
	m.PoolMiss("python3")
	m.PoolRefillFailed("python3")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"kernelgate_kernels_running 3",
		`kernelgate_kernel_start_seconds_bucket{spec="python3",le="1"} 1`,
		`kernelgate_kernel_start_seconds_bucket{spec="python3",le="0.5"} 0`,
		"kernelgate_kernel_deaths_total 1",
		"kernelgate_kernel_restarts_total 2",
		`kernelgate_pool_ready_kernels{spec="python3"} 2`,
		`kernelgate_pool_hits_total{spec="python3"} 2`,
		`kernelgate_pool_misses_total{spec="python3"} 1`,
		`kernelgate_pool_refill_failures_total{spec="python3"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Two instances do not share a registry (no globals).
	if strings.Contains(scrape(t, New()), "kernelgate_kernels_running 3") {
		t.Fatal("a fresh registry saw another instance's value")
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
