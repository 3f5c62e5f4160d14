// Package metrics defines kernelgate's Prometheus collectors on an injected
// registry (no globals) and implements the small interfaces the domain
// packages declare, so the core never imports Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector.
type Metrics struct {
	reg            *prometheus.Registry
	kernelsRunning prometheus.Gauge
	kernelStart    *prometheus.HistogramVec
	kernelDeaths   prometheus.Counter
	kernelRestarts prometheus.Counter
}

// New registers kernelgate's collectors (and the Go and process
// collectors) on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		kernelsRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kernelgate_kernels_running",
			Help: "Kernels currently managed (starting, running or restarting).",
		}),
		kernelStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kernelgate_kernel_start_seconds",
			Help:    "Time from launch to a kernel ready to execute.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30},
		}, []string{"spec"}),
		kernelDeaths: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kernelgate_kernel_deaths_total",
			Help: "Kernel processes that died without being asked to (exit, signal, lost heartbeat, failed start).",
		}),
		kernelRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kernelgate_kernel_restarts_total",
			Help: "Kernel restarts, automatic or requested.",
		}),
	}
	reg.MustRegister(m.kernelsRunning, m.kernelStart, m.kernelDeaths, m.kernelRestarts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// KernelStarted records how long a kernel took to become ready.
func (m *Metrics) KernelStarted(spec string, took time.Duration) {
	m.kernelStart.WithLabelValues(spec).Observe(took.Seconds())
}

// KernelsRunning sets the number of managed kernels.
func (m *Metrics) KernelsRunning(n int) { m.kernelsRunning.Set(float64(n)) }

// KernelDied counts a kernel death.
func (m *Metrics) KernelDied() { m.kernelDeaths.Inc() }

// KernelRestarted counts a kernel restart.
func (m *Metrics) KernelRestarted() { m.kernelRestarts.Inc() }
