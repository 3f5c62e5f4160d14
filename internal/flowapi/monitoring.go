package flowapi

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// monitoring serves /ws/monitoring/{client_id}: the server-monitor panel's
// socket. It answers ping and request_monitoring_data at once (the original
// sampled CPU for a second per request) and pings a client silent for 60 s.
func (h *HTTP) monitoring(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 10)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel, which ends the reader
	defer cancel()
	clientID := r.PathValue("client_id")
	send := func(m Msg) bool {
		wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
		defer wcancel()
		raw, _ := json.Marshal(m)
		return c.Write(wctx, websocket.MessageText, raw) == nil
	}
	if !send(Msg{"type": "connected", "message": "Connected to monitoring WebSocket", "client_id": clientID}) {
		return
	}
	type incoming struct {
		data []byte
		err  error
	}
	msgs := make(chan incoming)
	wg.Go(func() { // the reader; it ends with the connection or ctx
		for {
			_, data, err := c.Read(ctx)
			select {
			case msgs <- incoming{data, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	idle := time.NewTimer(60 * time.Second)
	defer idle.Stop()
	for {
		select {
		case <-idle.C:
			if !send(Msg{"type": "ping", "timestamp": now()}) {
				return
			}
			idle.Reset(60 * time.Second)
		case in := <-msgs:
			if in.err != nil {
				return
			}
			idle.Reset(60 * time.Second)
			var m struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(in.data, &m) != nil {
				if !send(Msg{"type": "error", "error": "Invalid JSON format"}) {
					return
				}
				continue
			}
			switch m.Type {
			case "ping":
				if !send(Msg{"type": "pong", "timestamp": now()}) {
					return
				}
			case "request_monitoring_data":
				if !send(Msg{"type": "monitoring", "timestamp": now(), "data": h.monitoringData()}) {
					return
				}
			}
		}
	}
}

func (h *HTTP) monitoringData() Msg {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Msg{
		"status":        "running",
		"server_uptime": time.Since(h.started).Seconds(),
		"go_version":    runtime.Version(),
		"memory":        Msg{"heap_alloc": ms.HeapAlloc, "sys": ms.Sys},
		"process":       Msg{"pid": os.Getpid(), "goroutines": runtime.NumGoroutine()},
		"kernel":        Msg{"running": h.kernels()},
	}
}
