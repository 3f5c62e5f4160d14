package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBrowserGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ran")) })
	patterns := []string{"localhost:*", `\[::1\]:*`}
	for _, tt := range []struct {
		name, method, host, origin string
		loopbackOnly               bool
		code                       int
		body                       string
	}{
		{"non-browser POST", "POST", "127.0.0.1:8000", "", true, 200, "ran"},
		{"same-origin POST", "POST", "127.0.0.1:8000", "http://127.0.0.1:8000", true, 200, "ran"},
		{"allowed frontend POST", "POST", "127.0.0.1:8000", "http://localhost:3000", true, 200, "ran"},
		{"cross-site POST", "POST", "127.0.0.1:8000", "http://evil.example", true, 403, "cross-origin request from http://evil.example refused"},
		{"cross-site GET is harmless", "GET", "127.0.0.1:8000", "http://evil.example", true, 200, "ran"},
		{"dns rebinding", "GET", "rebind.evil.example:8000", "", true, 403, "not a loopback name"},
		{"localhost name", "GET", "localhost:8000", "", true, 200, "ran"},
		{"ipv6 loopback", "GET", "[::1]:8000", "", true, 200, "ran"},
		{"public name with auth on", "GET", "kernelgate.example.com", "", false, 200, "ran"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/api/execute", strings.NewReader("{}"))
			r.Host = tt.host
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			BrowserGuard(ok, patterns, tt.loopbackOnly).ServeHTTP(w, r)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("%d %q, want %d containing %q", w.Code, w.Body.String(), tt.code, tt.body)
			}
		})
	}
}
