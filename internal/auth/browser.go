package auth

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// BrowserGuard refuses what a hostile web page could make a browser send:
//   - a state-changing request (anything but GET, HEAD, OPTIONS) whose
//     Origin is neither the server's own host nor matches an allowed
//     pattern (cross-site "simple" POSTs need no CORS preflight);
//   - when loopbackOnly (no authentication), a Host that is not a loopback
//     name or address: DNS rebinding points a foreign name at 127.0.0.1.
//
// Clients that are not browsers send no Origin and pass.
func BrowserGuard(next http.Handler, allowedOrigins []string, loopbackOnly bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loopbackOnly && !loopbackHost(r.Host) {
			refuse(w, "host "+r.Host+" is not a loopback name: without authentication kernelgate only answers local names (DNS rebinding protection)")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if o := r.Header.Get("Origin"); o != "" && !originAllowed(o, r.Host, allowedOrigins) {
				refuse(w, "cross-origin request from "+o+" refused")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": msg})
}

// originAllowed follows the WebSocket rule: same host, or a pattern
// (path.Match over host[:port]) matches.
func originAllowed(origin, host string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
