// Package notebook serves kernelgate's own notebook page: GET / for
// browsers (API clients asking / for JSON still get the AdeloopFlow answer
// from flowapi), and its assets under /notebook/. The page is plain
// HTML, CSS and JavaScript embedded in the binary (no build step, no
// network): it speaks the /ws protocol of docs/protocol.md like the
// AdeloopFlow frontend does, and is that protocol's first in-tree client.
//
// With authentication on, /?token=… logs a browser in once: the handler
// sets the auth.CookieLogin cookie and redirects to / so the token leaves
// the address bar and the history.
package notebook

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kernelgate/kernelgate/internal/auth"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is where the page's assets are served.
const AssetPrefix = "/notebook/"

// contentSecurityPolicy allows only the server's own scripts: output HTML
// injected into the page cannot run script (no inline, no eval), and the
// page cannot be framed. Inline styles are allowed because plotly.js and
// pandas' HTML tables use them.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page and its assets.
type Handler struct {
	login *auth.CookieLogin // nil without authentication
	files map[string]asset  // by name under assets/
}

type asset struct {
	body  []byte
	etag  string
	ctype string
}

// New returns the page handler. login is nil when the server has no
// authentication; then /?token= is only stripped from the URL.
func New(login *auth.CookieLogin) (*Handler, error) {
	h := &Handler{login: login, files: map[string]asset{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		h.files[strings.TrimPrefix(p, "assets/")] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
		return nil
	})
	return h, err
}

// Register serves the assets under AssetPrefix on mux. GET / reaches
// ServeHTTP through flowapi (its root handler asks Wants first).
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+AssetPrefix+"{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name == "index.html" {
			http.NotFound(w, r)
			return
		}
		h.serveAsset(w, r, name)
	})
}

// Wants reports whether a request for / wants the page rather than the
// JSON: it names an HTML type with a higher preference than JSON's.
// Browsers' navigations do ("text/html,…,*/*;q=0.8"); API clients send
// "application/json", "*/*" (curl, fetch) or nothing, and keep the JSON.
func (h *Handler) Wants(r *http.Request) bool {
	html, json := acceptQ(r.Header.Values("Accept"))
	return html > 0 && html > json
}

// acceptQ returns the quality Accept gives HTML (text/html or
// application/xhtml+xml) and JSON, counting only explicit types: wildcards
// prefer nothing.
func acceptQ(accept []string) (html, json float64) {
	for _, header := range accept {
		for _, part := range strings.Split(header, ",") {
			fields := strings.Split(part, ";")
			typ := strings.ToLower(strings.TrimSpace(fields[0]))
			q := 1.0
			for _, p := range fields[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
						q = f
					} else {
						q = 0 // a malformed weight counts as no preference
					}
				}
			}
			switch typ {
			case "text/html", "application/xhtml+xml":
				html = max(html, q)
			case "application/json":
				json = max(json, q)
			}
		}
	}
	return html, json
}

// ServeHTTP serves the page at /. A ?token= in the URL has already been
// checked by the auth middleware (the request would not be here
// otherwise): it becomes the login cookie, and the browser is sent back to
// the same URL without it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("token") {
		if h.login != nil {
			h.login.Login(w, r, auth.User(r))
		}
		q.Del("token")
		target := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.Redirect(w, r, target.String(), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	h.serveAsset(w, r, "index.html")
}

// serveAsset answers with an embedded file; its ETag lets browsers
// revalidate cheaply, and no-cache makes them do so after an upgrade.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", a.etag)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
