package notebook

import (
	"io"
	"net/http"
)

// SignIn wraps the server's refusal of unauthenticated requests: a browser
// opening / (a navigation that Wants the page) is asked for its token by a
// sign-in form, and told when the token it gave was refused; everything
// else gets next.
func (h *Handler) SignIn(next func(http.ResponseWriter, *http.Request, error)) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Method == http.MethodGet && r.URL.Path == "/" && h.Wants(r) {
			signInPage(w, r.URL.Query().Has("token"))
			return
		}
		next(w, r, err)
	}
}

// signInPage asks a browser for its token. The form sends it back as
// /?token=…, which the page turns into a login cookie. No script, nothing
// from elsewhere.
func signInPage(w http.ResponseWriter, rejected bool) {
	note := "This server needs a token."
	if rejected {
		note = "That token was not accepted; try again."
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>kernelgate: sign in</title>
<style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;margin:0;background:#f6f7f9;color:#1d2330}
form{background:#fff;padding:2rem 2.2rem;border-radius:10px;box-shadow:0 2px 12px #0002;display:grid;gap:.8rem;min-width:20rem}
h1{font-size:1.2rem;margin:0}input{font:inherit;padding:.5rem .6rem;border:1px solid #c8ccd4;border-radius:6px}
button{font:inherit;padding:.5rem;border:0;border-radius:6px;background:#2f6fe4;color:#fff;cursor:pointer}p{margin:0;color:#5b6270;font-size:.9rem}</style>
</head><body><form method="get" action="/">
<h1>kernelgate</h1><p>`+note+`</p>
<input name="token" type="password" autocomplete="current-password" placeholder="token" required autofocus aria-label="token">
<button type="submit">Sign in</button></form></body></html>
`)
}
