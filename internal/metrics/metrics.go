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
	poolReady      *prometheus.GaugeVec
	poolHits       *prometheus.CounterVec
	poolMisses     *prometheus.CounterVec
	poolFailures   *prometheus.CounterVec
	channels       prometheus.Gauge
	channelDrops   *prometheus.CounterVec
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
		poolReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kernelgate_pool_ready_kernels",
			Help: "Warm-pool kernels ready to hand out, per kernelspec.",
		}, []string{"spec"}),
		poolHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kernelgate_pool_hits_total",
			Help: "Kernel starts served ready from the warm pool.",
		}, []string{"spec"}),
		poolMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kernelgate_pool_misses_total",
			Help: "Kernel starts of a pooled kernelspec that found no ready kernel and started one cold.",
		}, []string{"spec"}),
		poolFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kernelgate_pool_refill_failures_total",
			Help: "Warm-pool refills that failed to start a kernel (retried with backoff).",
		}, []string{"spec"}),
		channels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kernelgate_jupyter_channel_connections",
			Help: "Open Jupyter kernel channel WebSockets (/api/kernels/{id}/channels).",
		}),
		channelDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kernelgate_jupyter_channel_problems_total",
			Help: "Jupyter channel events that cost a client something: malformed frames dropped, slow clients disconnected, requests refused with an error reply.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.kernelsRunning, m.kernelStart, m.kernelDeaths, m.kernelRestarts,
		m.poolReady, m.poolHits, m.poolMisses, m.poolFailures, m.channels, m.channelDrops,
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

// PoolReady sets the number of warm-pool kernels ready for spec.
func (m *Metrics) PoolReady(spec string, n int) { m.poolReady.WithLabelValues(spec).Set(float64(n)) }

// PoolHit counts a start served from the warm pool.
func (m *Metrics) PoolHit(spec string) { m.poolHits.WithLabelValues(spec).Inc() }

// PoolMiss counts a start of a pooled spec that found the pool empty.
func (m *Metrics) PoolMiss(spec string) { m.poolMisses.WithLabelValues(spec).Inc() }

// PoolRefillFailed counts a failed warm-pool refill.
func (m *Metrics) PoolRefillFailed(spec string) { m.poolFailures.WithLabelValues(spec).Inc() }

// ChannelOpened and ChannelClosed count open Jupyter channel WebSockets.
func (m *Metrics) ChannelOpened() { m.channels.Inc() }

// ChannelClosed is ChannelOpened's pair.
func (m *Metrics) ChannelClosed() { m.channels.Dec() }

// ChannelProblem counts a malformed frame ("malformed"), a slow client cut
// off ("slow_client") or a refused request ("refused").
func (m *Metrics) ChannelProblem(kind string) { m.channelDrops.WithLabelValues(kind).Inc() }
