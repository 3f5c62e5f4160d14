package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"
)

// AdminRole is the role, in a JWT's roles claim, of administrators.
const AdminRole = "admin"

// Admins decides which users are administrators: the users it names, and,
// when JWTConfig.RolesClaim is set, the bearer of a valid JWT whose roles
// claim contains AdminRole. Administrators may see every user's kernels;
// handlers ask IsAdmin.
type Admins struct {
	users map[string]bool
	jwt   *JWT // nil without a roles claim
}

// NewAdmins returns the administrators: users by name, and JWT bearers
// with the admin role when c.RolesClaim is set (which needs a JWT key).
func NewAdmins(users []string, c JWTConfig) (*Admins, error) {
	a := &Admins{users: make(map[string]bool, len(users))}
	for _, u := range users {
		if u = strings.TrimSpace(u); u != "" {
			a.users[u] = true
		}
	}
	if c.RolesClaim != "" {
		if !c.Enabled() {
			return nil, errors.New("a JWT roles claim needs a JWT key (--jwt-hs256-secret-file or --jwt-public-key-file)")
		}
		j, err := NewJWT(c)
		if err != nil {
			return nil, err
		}
		a.jwt = j
	}
	return a, nil
}

type adminKey struct{}

// adminCheck decides, once and only when asked, whether one request's user
// is an administrator: checking a role means verifying the JWT again, which
// only the handlers that care should pay for.
type adminCheck struct {
	a     *Admins
	r     *http.Request
	once  sync.Once
	admin bool
}

func (c *adminCheck) get() bool {
	c.once.Do(func() {
		user := User(c.r)
		c.admin = c.a.users[user] || c.a.jwt != nil && c.a.jwt.hasRole(c.r, user, AdminRole)
	})
	return c.admin
}

// Handler lets handlers under next ask IsAdmin. It must run inside
// Middleware, which names the user.
func (a *Admins) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, &adminCheck{a: a, r: r})))
	})
}

// IsAdmin reports whether the request's user is an administrator. It is
// false for requests that did not pass through Admins.Handler.
func IsAdmin(r *http.Request) bool {
	c, ok := r.Context().Value(adminKey{}).(*adminCheck)
	return ok && c.get()
}

// hasRole reports whether r presents a valid JWT for user whose roles
// claim contains role.
func (j *JWT) hasRole(r *http.Request, user, role string) bool {
	tok := credential(r)
	if j.rolesClaim == "" || !looksLikeJWT(tok) || len(tok) > maxJWTBytes {
		return false
	}
	claims := jwt.MapClaims{}
	if _, err := j.parser.ParseWithClaims(tok, claims, j.key); err != nil {
		return false
	}
	if u, why := j.user(claims); why != "" || u != user {
		return false
	}
	return slices.Contains(rolesOf(claims, j.rolesClaim), role)
}

// rolesOf reads a roles claim: a string of roles separated by spaces or
// commas, or an array of strings. A name that is not a top-level claim is
// followed as a dotted path into objects ("realm_access.roles").
func rolesOf(claims map[string]any, name string) []string {
	v, ok := claims[name]
	if !ok {
		var cur any = claims
		for part := range strings.SplitSeq(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				return nil
			}
			cur = m[part]
		}
		v = cur
	}
	switch v := v.(type) {
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
