package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789ab"
)

func tokens(t *testing.T) *Tokens {
	t.Helper()
	tk, err := ParseTokens(strings.NewReader("# users\nalice " + aliceToken + "\n\nbob " + bobToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestParseTokens(t *testing.T) {
	if n := tokens(t).Len(); n != 2 {
		t.Fatalf("%d tokens, want 2", n)
	}
	for _, tt := range []struct{ in, want string }{
		{"alice", "line 1: want \"user token\""},
		{"alice short", "at least 16 characters"},
		{"anonymous " + aliceToken, "reserved"},
		{"a b c", "line 1"},
	} {
		if _, err := ParseTokens(strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTokens(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	tk := tokens(t)
	for _, tt := range []struct {
		name, header, query, user, err string
	}{
		{name: "bearer", header: "Bearer " + aliceToken, user: "alice"},
		{name: "jupyter token scheme", header: "token " + bobToken, user: "bob"},
		{name: "query (websockets)", query: bobToken, user: "bob"},
		{name: "wrong token", header: "Bearer " + aliceToken + "x", err: "invalid token"},
		{name: "no token", err: "no token"},
		{name: "other scheme", header: "Basic " + aliceToken, err: "no token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x?token="+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			user, err := tk.Authenticate(r)
			if user != tt.user || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("got %q, %v; want %q, error containing %q", user, err, tt.user, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), aliceToken) || strings.Contains(err.Error(), bobToken)) {
				t.Fatalf("error %q leaks a token", err)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(User(r)))
	}), tokens(t), "/health")
	for _, tt := range []struct {
		path, header string
		upgrade      bool
		code         int
		body         string
	}{
		{"/health", "", false, 200, Anonymous},
		{"/api", "Bearer " + aliceToken, false, 200, "alice"},
		{"/api", "", false, 401, "no token"},
		{"/api", "Bearer nope-nope-nope-nope", false, 401, "invalid token"},
		{"/api/kernels/x/channels", "", true, 401, "no token"}, // an API's own status comes from its refusal (jupyterapi.RefuseUpgrades)
		{"/api/kernels/x/channels", "token " + aliceToken, true, 200, "alice"},
	} {
		r := httptest.NewRequest("GET", tt.path, nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if tt.upgrade {
			r.Header.Set("Upgrade", "websocket")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
			t.Errorf("%s %q: %d %q, want %d containing %q", tt.path, tt.header, w.Code, w.Body.String(), tt.code, tt.body)
		}
		if w.Code == 401 || w.Code == 403 {
			var body map[string]string
			if json.Unmarshal(w.Body.Bytes(), &body) != nil || body["status"] != "error" {
				t.Errorf("401 body is not the JSON error envelope: %s", w.Body.String())
			}
		}
	}
	// Without tokens there is no authentication: everyone is Anonymous.
	open := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(User(r))) }), nil)
	w := httptest.NewRecorder()
	open.ServeHTTP(w, httptest.NewRequest("GET", "/api", nil))
	if w.Body.String() != Anonymous {
		t.Fatalf("no-auth user %q", w.Body.String())
	}
}
