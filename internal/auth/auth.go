// Package auth authenticates HTTP and WebSocket requests and names the user
// each one acts for. kernelgate keeps users apart by that name (sessions and
// kernels are keyed by it), so it is set here, once, at the edge.
//
// Static tokens come from the environment or a file; a request presents one
// as "Authorization: Bearer <t>", "Authorization: token <t>" (Jupyter's
// form) or "?token=<t>" (browsers cannot set headers on WebSockets).
// Comparison is constant-time, and tokens never appear in logs or errors.
package auth

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Anonymous is the user of requests on a server without authentication,
// which only listens on loopback.
const Anonymous = "anonymous"

// ErrUnauthenticated is returned for a request without a valid credential.
var ErrUnauthenticated = errors.New("unauthenticated")

// Tokens maps static tokens to the users they authenticate.
type Tokens struct {
	byHash map[[32]byte]string // sha256(token) → user: equal-length compare, no token kept
}

// ParseTokens reads "user token" lines (blank lines and # comments skipped).
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{byHash: make(map[[32]byte]string)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("token file line %d: want \"user token\"", n)
		}
		if err := t.Add(f[0], f[1]); err != nil {
			return nil, fmt.Errorf("token file line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	return t, nil
}

// NewTokens returns an empty token set.
func NewTokens() *Tokens { return &Tokens{byHash: make(map[[32]byte]string)} }

// Add registers token for user.
func (t *Tokens) Add(user, token string) error {
	if len(token) < 16 {
		return errors.New("tokens must be at least 16 characters long")
	}
	if user == "" || user == Anonymous {
		return fmt.Errorf("user name %q is reserved or empty", user)
	}
	t.byHash[sha256.Sum256([]byte(token))] = user
	return nil
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.byHash) }

// Authenticate returns the user of the request's token.
func (t *Tokens) Authenticate(r *http.Request) (string, error) {
	tok := credential(r)
	if tok == "" {
		return "", fmt.Errorf("%w: no token (send \"Authorization: Bearer <token>\" or ?token=)", ErrUnauthenticated)
	}
	h := sha256.Sum256([]byte(tok))
	// Hashes have equal length; compare every entry so timing says nothing
	// about which one matched.
	user := ""
	for k, u := range t.byHash {
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			user = u
		}
	}
	if user == "" {
		return "", fmt.Errorf("%w: invalid token", ErrUnauthenticated)
	}
	return user, nil
}

func credential(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && (strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "token")) {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

type userKey struct{}

// User is the user a request acts for (Anonymous without authentication).
func User(r *http.Request) string {
	if u, ok := r.Context().Value(userKey{}).(string); ok {
		return u
	}
	return Anonymous
}

// Authenticator names the user of a request, or fails with an error
// wrapping ErrUnauthenticated. Tokens and the JWT verifier implement it.
type Authenticator interface {
	Authenticate(r *http.Request) (string, error)
}

// Any tries authenticators in order and accepts the first that succeeds;
// the error names the last failure.
type Any []Authenticator

// Authenticate implements Authenticator.
func (a Any) Authenticate(r *http.Request) (string, error) {
	err := fmt.Errorf("%w: no authenticator configured", ErrUnauthenticated)
	for _, x := range a {
		var user string
		if user, err = x.Authenticate(r); err == nil {
			return user, nil
		}
	}
	return "", err
}

// Middleware authenticates every request except those to open paths, and
// answers the others with Refuse (401 and a JSON error). A nil
// authenticator means no authentication (the server then listens on
// loopback only).
func Middleware(next http.Handler, tokens Authenticator, open ...string) http.Handler {
	return MiddlewareWith(next, tokens, Refuse, open...)
}

// Refusal answers a request that failed authentication; err says why.
type Refusal func(w http.ResponseWriter, r *http.Request, err error)

// MiddlewareWith is Middleware answering failures with refuse, so that
// an API can keep its own convention (Jupyter's 403 on WebSocket
// upgrades) and a browser can be asked to sign in.
func MiddlewareWith(next http.Handler, tokens Authenticator, refuse Refusal, open ...string) http.Handler {
	if tokens == nil {
		return next
	}
	isOpen := make(map[string]bool, len(open))
	for _, p := range open {
		isOpen[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isOpen[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		user, err := tokens.Authenticate(r)
		if err != nil {
			refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// Refuse is the default refusal: 401 with a WWW-Authenticate challenge and
// the JSON error envelope naming the reason.
func Refuse(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("WWW-Authenticate", `Bearer realm="kernelgate"`)
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": err.Error()})
}
