package auth

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestIsAdmin sends requests through Middleware and Admins.Handler, as the
// server does, to a handler that reports IsAdmin.
func TestIsAdmin(t *testing.T) {
	secret := writeTemp(t, "secret", []byte(testSecret))
	now := time.Now()
	tok := func(edit map[string]any) string {
		c := jwt.MapClaims{"sub": "carol", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range edit {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), c)
	}
	otherSecret := sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-1234"),
		jwt.MapClaims{"sub": "carol", "roles": []string{"admin"}, "exp": now.Add(time.Hour).Unix()})

	type req struct {
		name, header, query string
		code                int
		admin               bool
	}
	for _, tt := range []struct {
		name   string
		users  []string
		roles  string // JWTConfig.RolesClaim
		noAuth bool
		reqs   []req
	}{
		{"admin users", []string{"alice", " "}, "", false, []req{
			{"listed", "Bearer " + aliceToken, "", 200, true},
			{"not listed", "Bearer " + bobToken, "", 200, false},
			{"JWT roles ignored without a roles claim", "Bearer " + tok(map[string]any{"roles": []string{"admin"}}), "", 200, false},
		}},
		{"roles claim", nil, "roles", false, []req{
			{"array with admin", "Bearer " + tok(map[string]any{"roles": []string{"user", "admin"}}), "", 200, true},
			{"string with admin", "Bearer " + tok(map[string]any{"roles": "user admin"}), "", 200, true},
			{"comma-separated string", "Bearer " + tok(map[string]any{"roles": "user,admin"}), "", 200, true},
			{"array without admin", "Bearer " + tok(map[string]any{"roles": []string{"user", "administrator"}}), "", 200, false},
			{"no roles", "Bearer " + tok(nil), "", 200, false},
			{"roles of the wrong type", "Bearer " + tok(map[string]any{"roles": map[string]any{"admin": true}}), "", 200, false},
			{"expired admin JWT", "Bearer " + tok(map[string]any{"roles": []string{"admin"}, "exp": now.Add(-time.Hour).Unix()}), "", 401, false},
			{"admin JWT signed with another key", "Bearer " + otherSecret, "", 401, false},
			{"static token", "Bearer " + aliceToken, "", 200, false},
			{"query JWT", "", tok(map[string]any{"roles": []string{"admin"}}), 200, true},
			// The credential in the header is the one authenticated; an
			// admin JWT in the query does not lend its role.
			{"header wins over query", "Bearer " + bobToken, tok(map[string]any{"roles": []string{"admin"}}), 200, false},
		}},
		{"nested roles claim", nil, "realm_access.roles", false, []req{
			{"nested admin", "Bearer " + tok(map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}}), "", 200, true},
			{"nested without admin", "Bearer " + tok(map[string]any{"realm_access": map[string]any{"roles": []string{"user"}}}), "", 200, false},
			{"top-level roles do not count", "Bearer " + tok(map[string]any{"roles": []string{"admin"}}), "", 200, false},
		}},
		{"no authentication, anonymous listed", []string{Anonymous}, "", true, []req{{"local user", "", "", 200, true}}},
		{"no authentication, nobody listed", nil, "", true, []req{{"local user", "", "", 200, false}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jc := JWTConfig{HS256SecretFile: secret, RolesClaim: tt.roles}
			admins, err := NewAdmins(tt.users, jc)
			if err != nil {
				t.Fatal(err)
			}
			var authn Authenticator
			if !tt.noAuth {
				j, err := NewJWT(jc)
				if err != nil {
					t.Fatal(err)
				}
				authn = Any{tokens(t), j}
			}
			h := Middleware(admins.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(strconv.FormatBool(IsAdmin(r))))
			})), authn)
			for _, rq := range tt.reqs {
				r := httptest.NewRequest("GET", "/api/admin/kernels?token="+rq.query, nil)
				if rq.header != "" {
					r.Header.Set("Authorization", rq.header)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != rq.code || w.Code == 200 && w.Body.String() != strconv.FormatBool(rq.admin) {
					t.Errorf("%s: %d %q, want %d and admin %v", rq.name, w.Code, w.Body.String(), rq.code, rq.admin)
				}
			}
		})
	}
}

func TestIsAdminWithoutAdminsHandler(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if IsAdmin(r) {
		t.Error("IsAdmin is true for a request that did not pass through Admins.Handler")
	}
}

func TestNewAdminsErrors(t *testing.T) {
	if _, err := NewAdmins(nil, JWTConfig{RolesClaim: "roles"}); err == nil {
		t.Error("a roles claim without a JWT key was accepted")
	}
	if _, err := NewAdmins(nil, JWTConfig{RolesClaim: "roles", HS256SecretFile: writeTemp(t, "short", []byte("short"))}); err == nil {
		t.Error("a roles claim with an unusable JWT secret was accepted")
	}
}
