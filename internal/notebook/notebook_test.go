package notebook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/auth"
)

func TestWants(t *testing.T) {
	h, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},             // Go's and most API clients' default
		{[]string{"*/*"}, false}, // curl, fetch()
		{[]string{"application/json"}, false},
		{[]string{"application/json, text/plain, */*"}, false}, // axios
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}, true}, // Chromium
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, true},                       // Firefox
		{[]string{"application/xhtml+xml"}, true},
		{[]string{"TEXT/HTML"}, true},
		{[]string{"text/html;q=0.5, application/json"}, false},
		{[]string{"application/json;q=0.5, text/html"}, true},
		{[]string{"text/html, application/json"}, false}, // a tie keeps the original answer
		{[]string{"text/html;q=0"}, false},
		{[]string{"text/html;q=2"}, false}, // a malformed weight is no preference
		{[]string{"text/html;level=1;q=0.7", "application/json;q=0.6"}, true},
		{[]string{"text/*"}, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, a := range tt.accept {
			r.Header.Add("Accept", a)
		}
		if got := h.Wants(r); got != tt.want {
			t.Errorf("Accept %q: Wants = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestPageAndAssets(t *testing.T) {
	h, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	mux.Handle("GET /{$}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tt := range []struct {
		path, ctype, body string
	}{
		{"/", "text/html; charset=utf-8", `<script src="notebook/app.js"`},
		{"/notebook/app.js", "text/javascript; charset=utf-8", "provide_input"},
		{"/notebook/style.css", "text/css; charset=utf-8", ".cell"},
		{"/notebook/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.body, strings.Contains(string(body), tt.body))
		}
		// Unchanged assets cost a 304 on revalidation.
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		again, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if resp.Header.Get("ETag") == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag %q: %d, want 304", tt.path, resp.Header.Get("ETag"), again.StatusCode)
		}
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("page CSP = %q; want scripts from the server only and no framing", csp)
	}
	for _, p := range []string{"/notebook/index.html", "/notebook/nope.js", "/notebook/"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// The login through the real middleware: the token is checked, becomes a
// cookie, and leaves the URL; the cookie then opens the page.
func TestTokenLogin(t *testing.T) {
	const token = "alice-token-0123456789"
	tokens := auth.NewTokens()
	if err := tokens.Add("alice", token); err != nil {
		t.Fatal(err)
	}
	login, err := auth.NewCookieLogin(auth.CookieTTL)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(login)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	mux.Handle("GET /{$}", h)
	srv := httptest.NewServer(auth.Middleware(mux, login.Wrap(tokens)))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(path string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	if resp := get("/?token=wrong-token-0123456789"); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("a wrong token: %d with %d cookies; want 401 and none", resp.StatusCode, len(resp.Cookies()))
	}
	resp := get("/?token=" + token + "&theme=dark")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?theme=dark" {
		t.Fatalf("login: %d to %q; want 303 to /?theme=dark (the token removed)", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("login answer: Cache-Control %q, Referrer-Policy %q; want no-store, no-referrer", resp.Header.Get("Cache-Control"), resp.Header.Get("Referrer-Policy"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || strings.Contains(cookies[0].Value, token) {
		t.Fatalf("login cookies = %v; want one HttpOnly, SameSite=Strict cookie without the token", cookies)
	}
	if resp := get("/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the page without the cookie: %d, want 401", resp.StatusCode)
	}
	for _, p := range []string{"/", "/notebook/app.js"} {
		if resp := get(p, cookies[0]); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the cookie: %d, want 200", p, resp.StatusCode)
		}
	}
}

// Without authentication a stray ?token= is only removed from the URL.
func TestTokenWithoutAuth(t *testing.T) {
	h, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?token=x", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" || len(rec.Result().Cookies()) != 0 {
		t.Errorf("%d to %q with %d cookies; want 303 to / and no cookie", rec.Code, rec.Header().Get("Location"), len(rec.Result().Cookies()))
	}
}

// A browser opening / without a token gets a sign-in form (no script) that
// comes back as /?token=; API clients and other paths keep the JSON 401.
func TestSignIn(t *testing.T) {
	tokens := auth.NewTokens()
	if err := tokens.Add("alice", "alice-token-0123456789"); err != nil {
		t.Fatal(err)
	}
	page, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := auth.MiddlewareWith(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(auth.User(r))) }),
		tokens, page.SignIn(auth.Refuse))
	for _, c := range []struct {
		path, accept, ctype string
	}{
		{"/", "text/html,application/xhtml+xml,*/*;q=0.8", "text/html"},
		{"/", "application/json", "application/json"},
		{"/", "*/*", "application/json"},
		{"/api/kernels", "text/html", "application/json"},
		{"/?token=wrong-wrong-wrong-wrong", "text/html", "text/html"},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		r.Header.Set("Accept", c.accept)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 401 || !strings.HasPrefix(w.Header().Get("Content-Type"), c.ctype) {
			t.Errorf("%s Accept %q: %d %s; want 401 %s", c.path, c.accept, w.Code, w.Header().Get("Content-Type"), c.ctype)
		}
		if c.ctype == "text/html" {
			body := w.Body.String()
			if !strings.Contains(body, `<form method="get" action="/">`) || !strings.Contains(body, `name="token"`) || strings.Contains(body, "<script") {
				t.Errorf("login page: %s", body)
			}
			if rejected := strings.Contains(c.path, "token="); rejected != strings.Contains(body, "not accepted") {
				t.Errorf("%s: the page should say a given token was not accepted, and only then", c.path)
			}
			if strings.Contains(body, "wrong-wrong") {
				t.Error("the login page echoes the rejected token")
			}
			if !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("login page CSP %q", w.Header().Get("Content-Security-Policy"))
			}
		}
	}
}
