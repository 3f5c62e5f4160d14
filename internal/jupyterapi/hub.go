package jupyterapi

import (
	"sync"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

// originCap bounds the request ids a kernel's hub remembers for routing
// replies. A request older than the last originCap sent on the kernel is
// long answered (or its client long gone).
const originCap = 8192

// hub is the routing state of one kernel's channel connections: which
// client session sent each request (so its replies and input requests go
// back to it, as the ZMQ identity routes them in Jupyter Server), the live
// connection of each session, and the journal position of sessions that
// disconnected, so a reconnect with the same session_id gets what it
// missed.
type hub struct {
	k          *kernel.Kernel
	maxOffline int

	mu         sync.Mutex
	origin     map[string]string // request msg_id → session_id
	originRing [originCap]string
	originNext int
	conns      map[string]*conn  // session_id → its live connection
	saved      map[string]uint64 // session_id → position when it disconnected
	savedOrder []string
}

func newHub(k *kernel.Kernel, maxOffline int) *hub {
	return &hub{k: k, maxOffline: max(maxOffline, 1), origin: make(map[string]string),
		conns: make(map[string]*conn), saved: make(map[string]uint64)}
}

// sent records that session sent the request msgID. It reports false for
// an id already in use: its replies could not be told apart.
func (h *hub) sent(msgID, session string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.origin[msgID]; ok {
		return false
	}
	if old := h.originRing[h.originNext]; old != "" {
		delete(h.origin, old)
	}
	h.originRing[h.originNext] = msgID
	h.originNext = (h.originNext + 1) % originCap
	h.origin[msgID] = session
	return true
}

// forSession reports whether a kernel message on ch goes to session:
// iopub goes to everyone, the rest only to the session that sent the
// request it answers.
func (h *hub) forSession(ch jmsg.Channel, m *jmsg.Message, session string) bool {
	if ch == jmsg.IOPub {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.origin[m.ParentID()] == session
}

// attach registers c as its session's connection and returns the journal
// position it starts from: where the session's previous connection
// stopped, or the journal's end for a new session. A live connection of
// the same session is replaced (closed, and waited for), as Jupyter Server
// replaces a stale one.
func (h *hub) attach(c *conn) uint64 {
	for {
		h.mu.Lock()
		old := h.conns[c.session]
		if old == nil {
			h.conns[c.session] = c
			pos, ok := h.saved[c.session]
			if ok {
				delete(h.saved, c.session)
			} else {
				pos = h.k.Journal().Last()
			}
			h.mu.Unlock()
			return pos
		}
		h.mu.Unlock()
		old.replace()
		<-old.done
	}
}

// detach unregisters c and keeps its position for a reconnect.
func (h *hub) detach(c *conn, pos uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[c.session] != c {
		return
	}
	delete(h.conns, c.session)
	if _, ok := h.saved[c.session]; !ok {
		h.savedOrder = append(h.savedOrder, c.session)
	}
	h.saved[c.session] = pos
	for len(h.saved) > h.maxOffline && len(h.savedOrder) > 0 {
		delete(h.saved, h.savedOrder[0])
		h.savedOrder = h.savedOrder[1:]
	}
	// Forget order entries of sessions that came back.
	if len(h.savedOrder) > 4*h.maxOffline {
		keep := h.savedOrder[:0]
		for _, s := range h.savedOrder {
			if _, ok := h.saved[s]; ok {
				keep = append(keep, s)
			}
		}
		h.savedOrder = keep
	}
}

func (h *hub) connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// hub returns the kernel's hub, creating it (and its watcher, which drops
// it when the kernel is gone) on first use.
func (a *API) hub(k *kernel.Kernel) (*hub, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, false
	}
	if h, ok := a.hubs[k.ID()]; ok {
		return h, true
	}
	h := newHub(k, a.cfg.MaxOfflineSessions)
	a.hubs[k.ID()] = h
	a.wg.Go(func() {
		select {
		case <-k.Done():
		case <-a.ctx.Done():
		}
		a.mu.Lock()
		delete(a.hubs, k.ID())
		a.mu.Unlock()
	})
	return h, true
}

func (a *API) connections(kernelID string) int {
	a.mu.Lock()
	h := a.hubs[kernelID]
	a.mu.Unlock()
	if h == nil {
		return 0
	}
	return h.connections()
}
