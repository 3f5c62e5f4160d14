package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CookieTTL is how long a browser login lasts at most (and never past the
// expiry of the JWT it was made from, nor past the server process).
const CookieTTL = 24 * time.Hour

// Cookie names. Over TLS the __Host- prefix makes the browser insist on
// Secure, Path=/ and no Domain, so no other host can plant or read it.
const (
	cookieName       = "kernelgate_session"
	secureCookieName = "__Host-kernelgate_session"
)

// CookieLogin turns a credential presented once in a URL (the notebook's
// /?token=…) into a cookie, so that the page's own requests and its
// WebSocket need no token in their URLs (where it would end up in history,
// logs and Referer headers).
//
// The cookie does not hold the token: it names the user and an expiry,
// signed with a key drawn at startup. A stolen cookie is therefore worth
// less than the token (it expires, it dies with the process, it cannot be
// used on other servers or in Authorization headers), and restarting the
// server logs every browser out.
type CookieLogin struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewCookieLogin returns a login with a fresh random signing key; a cookie
// lasts at most ttl.
func NewCookieLogin(ttl time.Duration) (*CookieLogin, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cookie signing key: %w", err)
	}
	return &CookieLogin{key: key, ttl: ttl, now: time.Now}, nil
}

// Login sets the session cookie for user on w. r is the request that
// authenticated user with an explicit credential: a JWT's expiry bounds
// the cookie's. The cookie is HttpOnly (page scripts cannot read it),
// SameSite=Strict (no other site's page or link sends it) and, on a TLS
// request, Secure with the __Host- prefix.
func (l *CookieLogin) Login(w http.ResponseWriter, r *http.Request, user string) {
	now := l.now()
	exp := now.Add(l.ttl)
	if tok := credential(r); looksLikeJWT(tok) {
		// Verified by the middleware already; only its expiry is read here.
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err == nil {
			if e, err := claims.GetExpirationTime(); err == nil && e != nil && e.Before(exp) {
				exp = e.Time
			}
		}
	}
	exp = exp.Truncate(time.Second)
	c := &http.Cookie{
		Name:     cookieName,
		Value:    l.sign(user, exp),
		Path:     "/",
		MaxAge:   max(1, int(exp.Sub(now)/time.Second)),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
	if r.TLS != nil {
		c.Name, c.Secure = secureCookieName, true
	}
	http.SetCookie(w, c)
}

// Wrap returns an authenticator that accepts the login cookie on requests
// that present no explicit credential (no Authorization header, no ?token=)
// and use a safe method (GET or HEAD: navigations, assets and WebSocket
// handshakes), and otherwise defers to a. A request that presents a token
// is judged by its token alone, so a bad token never passes on a cookie;
// and since the cookie never authorizes a state-changing HTTP request, a
// forged cross-site form gains nothing from it even before BrowserGuard
// and SameSite refuse it.
func (l *CookieLogin) Wrap(a Authenticator) Authenticator {
	return cookieOr{l: l, next: a}
}

type cookieOr struct {
	l    *CookieLogin
	next Authenticator
}

func (c cookieOr) Authenticate(r *http.Request) (string, error) {
	explicit := r.Header.Get("Authorization") != "" || r.URL.Query().Has("token")
	if !explicit && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if user, ok := c.l.user(r); ok {
			return user, nil
		}
	}
	return c.next.Authenticate(r)
}

// user returns the user of a valid, unexpired login cookie.
func (l *CookieLogin) user(r *http.Request) (string, bool) {
	for _, name := range []string{secureCookieName, cookieName} {
		ck, err := r.Cookie(name)
		if err != nil {
			continue
		}
		if user, ok := l.verify(ck.Value); ok {
			return user, true
		}
	}
	return "", false
}

// sign encodes "base64(user).expiry.base64(mac)"; the user is encoded so
// that no character of a name can be mistaken for a separator.
func (l *CookieLogin) sign(user string, exp time.Time) string {
	u := base64.RawURLEncoding.EncodeToString([]byte(user))
	e := strconv.FormatInt(exp.Unix(), 10)
	return u + "." + e + "." + base64.RawURLEncoding.EncodeToString(l.mac(u, e))
}

func (l *CookieLogin) mac(user, exp string) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("kernelgate login cookie\x00" + user + "\x00" + exp))
	return m.Sum(nil)
}

func (l *CookieLogin) verify(v string) (string, bool) {
	u, rest, ok1 := strings.Cut(v, ".")
	e, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, l.mac(u, e)) {
		return "", false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || !l.now().Before(time.Unix(exp, 0)) {
		return "", false
	}
	user, err := base64.RawURLEncoding.DecodeString(u)
	if err != nil || len(user) == 0 {
		return "", false
	}
	return string(user), true
}
