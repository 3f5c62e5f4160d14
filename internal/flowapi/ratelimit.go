package flowapi

import (
	"net/http"

	"github.com/kernelgate/kernelgate/internal/ratelimit"
)

// overLimit answers 429 with Retry-After and the error envelope when the
// session's user is over the limit of kind, and reports whether it did.
func (h *HTTP) overLimit(w http.ResponseWriter, s *Session, kind ratelimit.Kind) bool {
	err := h.sessions.limits.Allow(s.user, kind)
	if err == nil {
		return false
	}
	rl := err.(*ratelimit.Error)
	w.Header().Set("Retry-After", rl.RetryAfterHeader())
	errorEnvelope(w, http.StatusTooManyRequests, rl.Error())
	return true
}

// overLimit tells the client, without closing the socket, when its user is
// over the limit of kind, and reports whether it did: the message is then
// dropped.
func (c *wsConn) overLimit(kind ratelimit.Kind) bool {
	err := c.h.sessions.limits.Allow(c.user, kind)
	if err == nil {
		return false
	}
	rl := err.(*ratelimit.Error)
	c.send(Msg{"type": "error", "error": rl.Error(), "retry_after": rl.RetryAfterSeconds()})
	return true
}
