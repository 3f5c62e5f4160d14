package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetrics_Exposed(t *testing.T) {
	m := New()
	m.KernelsRunning(3)
	m.KernelStarted("python3", 700*time.Millisecond)
	m.KernelDied()
	m.KernelRestarted()
	m.KernelRestarted()
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
