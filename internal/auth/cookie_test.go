package auth

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// login returns a CookieLogin on a settable clock, and the cookie it sets
// for user on a request r.
func loginCookie(t *testing.T, l *CookieLogin, r *http.Request, user string) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	l.Login(rec, r, user)
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("Login set %d cookies, want 1", len(cs))
	}
	return cs[0]
}

func newLogin(t *testing.T, now *time.Time) *CookieLogin {
	t.Helper()
	l, err := NewCookieLogin(CookieTTL)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return *now }
	return l
}

func TestCookieLoginAttributes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLogin(t, &now)
	c := loginCookie(t, l, httptest.NewRequest("GET", "/?token="+aliceToken, nil), "alice")
	if c.Name != cookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("plain-HTTP cookie = %+v; want %s, HttpOnly, SameSite=Strict, Path=/, not Secure", c, cookieName)
	}
	if c.MaxAge != int(CookieTTL/time.Second) {
		t.Errorf("MaxAge = %d, want %d", c.MaxAge, int(CookieTTL/time.Second))
	}
	if strings.Contains(c.Value, aliceToken) {
		t.Error("the cookie holds the token")
	}

	r := httptest.NewRequest("GET", "https://example.com/?token="+aliceToken, nil)
	r.TLS = &tls.ConnectionState{}
	c = loginCookie(t, l, r, "alice")
	if c.Name != secureCookieName || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Domain != "" {
		t.Errorf("TLS cookie = %+v; want %s, Secure, HttpOnly, SameSite=Strict, no Domain", c, secureCookieName)
	}
}

func TestCookieAuthenticates(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLogin(t, &now)
	a := l.Wrap(tokens(t))
	good := loginCookie(t, l, httptest.NewRequest("GET", "/", nil), "alice user.with.dots")
	other, err := NewCookieLogin(CookieTTL) // another server process
	if err != nil {
		t.Fatal(err)
	}
	foreign := loginCookie(t, other, httptest.NewRequest("GET", "/", nil), "alice")
	tampered := *good
	tampered.Value = strings.Replace(good.Value, ".", "x.", 1)

	for _, tt := range []struct {
		name, method, target, header string
		cookie                       *http.Cookie
		later                        time.Duration
		user, err                    string
	}{
		{name: "page", method: "GET", target: "/", cookie: good, user: "alice user.with.dots"},
		{name: "websocket handshake", method: "GET", target: "/ws", cookie: good, user: "alice user.with.dots"},
		{name: "HEAD", method: "HEAD", target: "/", cookie: good, user: "alice user.with.dots"},
		{name: "POST needs a token", method: "POST", target: "/api/execute", cookie: good, err: "no token"},
		{name: "a bad token is not rescued by the cookie", method: "GET", target: "/?token=wrong-token-0123456789", cookie: good, err: "invalid token"},
		{name: "an explicit token wins", method: "GET", target: "/", header: "Bearer " + bobToken, cookie: good, user: "bob"},
		{name: "expired", method: "GET", target: "/", cookie: good, later: CookieTTL, err: "no token"},
		{name: "just before expiry", method: "GET", target: "/", cookie: good, later: CookieTTL - time.Second, user: "alice user.with.dots"},
		{name: "tampered", method: "GET", target: "/", cookie: &tampered, err: "no token"},
		{name: "another server's key", method: "GET", target: "/", cookie: foreign, err: "no token"},
		{name: "garbage", method: "GET", target: "/", cookie: &http.Cookie{Name: cookieName, Value: "a.b.c"}, err: "no token"},
		{name: "no cookie", method: "GET", target: "/", err: "no token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			defer func() { now = saved }()
			now = now.Add(tt.later)
			r := httptest.NewRequest(tt.method, tt.target, nil)
			if tt.cookie != nil {
				r.AddCookie(&http.Cookie{Name: tt.cookie.Name, Value: tt.cookie.Value})
			}
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			user, err := a.Authenticate(r)
			if user != tt.user || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("got %q, %v; want %q, error containing %q", user, err, tt.user, tt.err)
			}
		})
	}
}

// A cookie made from a JWT does not outlive the JWT.
func TestCookieBoundedByJWTExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLogin(t, &now)
	exp := now.Add(time.Hour)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "carol", "exp": exp.Unix()}).
		SignedString([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	c := loginCookie(t, l, httptest.NewRequest("GET", "/?token="+tok, nil), "carol")
	if c.MaxAge != int(time.Hour/time.Second) {
		t.Errorf("MaxAge = %d, want the JWT's remaining %d s", c.MaxAge, int(time.Hour/time.Second))
	}
	a := l.Wrap(Any{})
	for _, tt := range []struct {
		later time.Duration
		ok    bool
	}{{time.Hour - time.Second, true}, {time.Hour, false}} {
		now = time.Unix(1_800_000_000, 0).Add(tt.later)
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		if user, err := a.Authenticate(r); (err == nil) != tt.ok || (tt.ok && user != "carol") {
			t.Errorf("after %v: %q, %v; want accepted=%v", tt.later, user, err, tt.ok)
		}
	}
}

// Through the real middleware: the cookie opens the page, not the API's
// state-changing routes.
func TestCookieThroughMiddleware(t *testing.T) {
	now := time.Now()
	l := newLogin(t, &now)
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(User(r)))
	}), l.Wrap(tokens(t)))
	c := loginCookie(t, l, httptest.NewRequest("GET", "/", nil), "bob")
	for _, tt := range []struct {
		method string
		code   int
		body   string
	}{{"GET", 200, "bob"}, {"POST", 401, "no token"}} {
		r := httptest.NewRequest(tt.method, "/", nil)
		r.AddCookie(c)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s with cookie: %d %q; want %d containing %q", tt.method, rec.Code, rec.Body, tt.code, tt.body)
		}
	}
}
