package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://issuer.example"
	testAudience = "kernelgate"
	testSecret   = "0123456789abcdef0123456789abcdef-hs256" // 38 bytes
)

// jwtNow is the verifiers' fixed clock.
var jwtNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pemPublic(t *testing.T, keys ...any) []byte {
	t.Helper()
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

func rsaKey(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestJWT(t *testing.T, c JWTConfig) *JWT {
	t.Helper()
	j, err := newJWT(c, func() time.Time { return jwtNow })
	if err != nil {
		t.Fatalf("newJWT: %v", err)
	}
	return j
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// claims are valid claims for user alice, changed by edit (a nil value
// deletes the claim).
func claims(edit map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iss": testIssuer,
		"aud": testAudience,
		"iat": jwtNow.Add(-time.Minute).Unix(),
		"exp": jwtNow.Add(time.Hour).Unix(),
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/api/kernels", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestJWTAuthenticate(t *testing.T) {
	rsa1, rsa2, rsaOther := rsaKey(t, 2048), rsaKey(t, 2048), rsaKey(t, 2048)
	ec1, ecOther := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	rsaPEM := pemPublic(t, &rsa1.PublicKey)

	base := JWTConfig{Issuer: testIssuer, Audience: testAudience}
	hsCfg := base
	hsCfg.HS256SecretFile = writeTemp(t, "secret", []byte(testSecret+"\n"))
	rsCfg := base
	rsCfg.PublicKeyFile = writeTemp(t, "rsa.pem", rsaPEM)
	esCfg := base
	esCfg.PublicKeyFile = writeTemp(t, "ec.pem", pemPublic(t, &ec1.PublicKey))
	multiCfg := base // several keys of both kinds in one PEM
	multiCfg.PublicKeyFile = writeTemp(t, "multi.pem", pemPublic(t, &rsa1.PublicKey, &ec1.PublicKey, &rsa2.PublicKey))
	bothCfg := rsCfg // a secret and RSA keys
	bothCfg.HS256SecretFile = hsCfg.HS256SecretFile
	emailCfg := hsCfg
	emailCfg.UserClaim = "email"
	openCfg := JWTConfig{HS256SecretFile: hsCfg.HS256SecretFile} // no iss/aud required

	hs, rs, es := newTestJWT(t, hsCfg), newTestJWT(t, rsCfg), newTestJWT(t, esCfg)
	multi, both := newTestJWT(t, multiCfg), newTestJWT(t, bothCfg)
	email, open := newTestJWT(t, emailCfg), newTestJWT(t, openCfg)
	secret := []byte(testSecret)

	hsTok := func(edit map[string]any) string { return sign(t, jwt.SigningMethodHS256, secret, claims(edit)) }
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
	ok := claims(nil)

	tests := []struct {
		name     string
		j        *JWT
		req      *http.Request
		wantUser string
		wantErr  string // substring; "" means success
	}{
		{"valid HS256", hs, bearer(hsTok(nil)), "alice", ""},
		{"valid RS256", rs, bearer(sign(t, jwt.SigningMethodRS256, rsa1, ok)), "alice", ""},
		{"valid ES256", es, bearer(sign(t, jwt.SigningMethodES256, ec1, ok)), "alice", ""},
		{"PEM with several keys: second RSA key", multi, bearer(sign(t, jwt.SigningMethodRS256, rsa2, ok)), "alice", ""},
		{"PEM with several keys: EC key", multi, bearer(sign(t, jwt.SigningMethodES256, ec1, ok)), "alice", ""},
		{"secret and RSA: HS256", both, bearer(hsTok(nil)), "alice", ""},
		{"secret and RSA: RS256", both, bearer(sign(t, jwt.SigningMethodRS256, rsa1, ok)), "alice", ""},
		{"no iss or aud required", open, bearer(hsTok(map[string]any{"iss": nil, "aud": nil})), "alice", ""},
		{"Authorization: token", hs, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "token "+hsTok(nil))
			return r
		}(), "alice", ""},
		{"via ?token=", hs, httptest.NewRequest("GET", "/api/kernels?token="+url.QueryEscape(hsTok(nil)), nil), "alice", ""},
		{"aud list containing ours", hs, bearer(hsTok(map[string]any{"aud": []string{"other", testAudience}})), "alice", ""},
		{"expired within leeway", hs, bearer(hsTok(map[string]any{"exp": jwtNow.Add(-10 * time.Second).Unix()})), "alice", ""},
		{"custom user claim", email, bearer(hsTok(map[string]any{"email": "bob@example.com"})), "bob@example.com", ""},

		{"expired", hs, bearer(hsTok(map[string]any{"exp": jwtNow.Add(-time.Minute).Unix()})), "", "token expired"},
		{"not yet valid", hs, bearer(hsTok(map[string]any{"nbf": jwtNow.Add(5 * time.Minute).Unix()})), "", "token not valid yet"},
		{"issued in the future", hs, bearer(hsTok(map[string]any{"iat": jwtNow.Add(5 * time.Minute).Unix()})), "", "token issued in the future"},
		{"missing exp", hs, bearer(hsTok(map[string]any{"exp": nil})), "", "missing exp claim"},
		{"missing exp, no iss/aud required", open, bearer(hsTok(map[string]any{"exp": nil})), "", "missing exp claim"},
		{"exp of the wrong type", hs, bearer(hsTok(map[string]any{"exp": "tomorrow"})), "", "claim of the wrong type"},
		{"wrong issuer", hs, bearer(hsTok(map[string]any{"iss": "https://evil.example"})), "", "wrong issuer"},
		{"missing issuer", hs, bearer(hsTok(map[string]any{"iss": nil})), "", "wrong issuer"},
		{"wrong audience", hs, bearer(hsTok(map[string]any{"aud": "other"})), "", "wrong audience"},
		{"missing audience", hs, bearer(hsTok(map[string]any{"aud": nil})), "", "wrong audience"},
		{"forged HS256 (other secret)", hs, bearer(sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-0123"), ok)), "", "signature invalid"},
		{"forged RS256 (other key)", rs, bearer(sign(t, jwt.SigningMethodRS256, rsaOther, ok)), "", "signature invalid"},
		{"forged ES256 (other key)", es, bearer(sign(t, jwt.SigningMethodES256, ecOther, ok)), "", "signature invalid"},
		{"forged RS256 against several keys", multi, bearer(sign(t, jwt.SigningMethodRS256, rsaOther, ok)), "", "signature invalid"},
		{"alg none", hs, bearer(none), "", "unexpected algorithm none"},
		{"alg none against RSA", rs, bearer(none), "", "unexpected algorithm none"},
		// Algorithm confusion: HMAC keyed with the verifier's public key.
		{"HS256 keyed with the public key PEM", rs, bearer(sign(t, jwt.SigningMethodHS256, rsaPEM, ok)), "", "unexpected algorithm HS256"},
		{"HS256 keyed with the public key DER", rs, bearer(func() string {
			der, _ := x509.MarshalPKIXPublicKey(&rsa1.PublicKey)
			return sign(t, jwt.SigningMethodHS256, der, ok)
		}()), "", "unexpected algorithm HS256"},
		{"HS256 keyed with the public key, secret also configured", both, bearer(sign(t, jwt.SigningMethodHS256, rsaPEM, ok)), "", "signature invalid"},
		{"RS256 to an HS256 verifier", hs, bearer(sign(t, jwt.SigningMethodRS256, rsa1, ok)), "", "unexpected algorithm RS256"},
		{"ES256 to an RS256 verifier", rs, bearer(sign(t, jwt.SigningMethodES256, ec1, ok)), "", "unexpected algorithm ES256"},
		{"HS512 to an HS256 verifier", hs, bearer(sign(t, jwt.SigningMethodHS512, secret, ok)), "", "unexpected algorithm HS512"},
		{"PS256 to an RS256 verifier", rs, bearer(sign(t, jwt.SigningMethodPS256, rsa1, ok)), "", "unexpected algorithm PS256"},
		{"missing user claim", hs, bearer(hsTok(map[string]any{"sub": nil})), "", `missing user claim "sub"`},
		{"empty user claim", hs, bearer(hsTok(map[string]any{"sub": ""})), "", `user claim "sub" is empty`},
		{"anonymous user claim", hs, bearer(hsTok(map[string]any{"sub": Anonymous})), "", "reserved user"},
		{"non-string user claim", hs, bearer(hsTok(map[string]any{"sub": 42})), "", "not a string"},
		{"user claim with control characters", hs, bearer(hsTok(map[string]any{"sub": "al\nice"})), "", "control characters"},
		{"custom user claim missing", email, bearer(hsTok(nil)), "", `missing user claim "email"`},
		{"malformed", hs, bearer("bm90.anNvbg.x"), "", "malformed token"},
		{"unknown algorithm", hs, bearer(jwtWithHeader(`{"alg":"XX999","typ":"JWT"}`)), "", "unexpected algorithm XX999"},
		{"missing algorithm", hs, bearer(jwtWithHeader(`{"typ":"JWT"}`)), "", "missing algorithm"},
		{"not a JWT", hs, bearer("just-some-static-token-123"), "", "invalid token"},
		{"no token", hs, httptest.NewRequest("GET", "/", nil), "", "no token"},
		{"too long", hs, bearer(hsTok(map[string]any{"pad": strings.Repeat("x", maxJWTBytes)})), "", "token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := tt.j.Authenticate(tt.req)
			if tt.wantErr == "" {
				if err != nil || user != tt.wantUser {
					t.Fatalf("Authenticate = %q, %v; want %q", user, err, tt.wantUser)
				}
				return
			}
			if err == nil {
				t.Fatalf("Authenticate = %q, nil; want error %q", user, tt.wantErr)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("error %v does not wrap ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if tok := credential(tt.req); tok != "" {
				for _, part := range strings.Split(tok, ".") {
					if len(part) >= 8 && strings.Contains(err.Error(), part) {
						t.Errorf("error %q echoes part of the token", err)
					}
				}
			}
		})
	}
}

// jwtWithHeader is a token with the given header, valid claims and a junk
// signature.
func jwtWithHeader(header string) string {
	b, _ := json.Marshal(claims(nil))
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(b) + ".c2ln"
}

func TestJWTAlgorithms(t *testing.T) {
	rk, ek := rsaKey(t, 2048), ecKey(t, elliptic.P256())
	secret := writeTemp(t, "secret", []byte(testSecret))
	for _, tt := range []struct {
		name string
		c    JWTConfig
		want []string
	}{
		{"secret", JWTConfig{HS256SecretFile: secret}, []string{"HS256"}},
		{"rsa", JWTConfig{PublicKeyFile: writeTemp(t, "k.pem", pemPublic(t, &rk.PublicKey))}, []string{"RS256"}},
		{"ec", JWTConfig{PublicKeyFile: writeTemp(t, "k.pem", pemPublic(t, &ek.PublicKey))}, []string{"ES256"}},
		{"all", JWTConfig{HS256SecretFile: secret, PublicKeyFile: writeTemp(t, "k.pem", pemPublic(t, &ek.PublicKey, &rk.PublicKey))}, []string{"HS256", "RS256", "ES256"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, err := NewJWT(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := j.Algorithms(); !slices.Equal(got, tt.want) {
				t.Errorf("Algorithms() = %v, want %v", got, tt.want)
			}
			if j.UserClaim() != "sub" {
				t.Errorf("UserClaim() = %q, want sub", j.UserClaim())
			}
		})
	}
	if _, err := NewJWT(JWTConfig{Issuer: "x"}); err == nil {
		t.Error("NewJWT without a key succeeded")
	}
}

func TestReadHS256Secret(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       string // "" means an error is expected
	}{
		{"exact", strings.Repeat("s", 32), strings.Repeat("s", 32)},
		{"trailing newline trimmed", strings.Repeat("s", 32) + "\n", strings.Repeat("s", 32)},
		{"trailing CRLF trimmed", strings.Repeat("s", 32) + "\r\n", strings.Repeat("s", 32)},
		{"too short after trimming", strings.Repeat("s", 31) + "\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadHS256Secret(writeTemp(t, "secret", []byte(tt.data)))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ReadHS256Secret succeeded, want error")
				}
				if tt.data != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.data)) {
					t.Errorf("error %q echoes the secret", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("ReadHS256Secret = %q, %v", got, err)
			}
		})
	}
	if _, err := ReadHS256Secret(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadPublicKeys(t *testing.T) {
	rk, ek := rsaKey(t, 2048), ecKey(t, elliptic.P256())
	p384 := ecKey(t, elliptic.P384())
	small := rsaKey(t, 1024)
	privDER, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)})

	for _, tt := range []struct {
		name      string
		data      []byte
		nRSA, nEC int
		wantErr   string
	}{
		{"one RSA", pemPublic(t, &rk.PublicKey), 1, 0, ""},
		{"one EC", pemPublic(t, &ek.PublicKey), 0, 1, ""},
		{"several", append(pemPublic(t, &rk.PublicKey, &ek.PublicKey), pkcs1...), 2, 1, ""},
		{"PKCS#1 RSA", pkcs1, 1, 0, ""},
		{"empty", nil, 0, 0, "no PEM public key"},
		{"not PEM", []byte("hello"), 0, 0, "not PEM"},
		{"private key", priv, 0, 0, "private key"},
		{"P-384", pemPublic(t, &p384.PublicKey), 0, 0, "only P-256"},
		{"RSA 1024", pemPublic(t, &small.PublicKey), 0, 0, "at least 2048"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ReadPublicKeys(writeTemp(t, "k.pem", tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadPublicKeys error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(keys.RSA) != tt.nRSA || len(keys.EC) != tt.nEC {
				t.Fatalf("ReadPublicKeys = %d RSA, %d EC, %v; want %d, %d", len(keys.RSA), len(keys.EC), err, tt.nRSA, tt.nEC)
			}
		})
	}
}

// Static tokens and JWTs together, as the server combines them, through the
// middleware: a failing JWT's reason reaches the client.
func TestAnyTokensAndJWT(t *testing.T) {
	tk := NewTokens()
	if err := tk.Add("carol", "carol-static-token-0123"); err != nil {
		t.Fatal(err)
	}
	j := newTestJWT(t, JWTConfig{HS256SecretFile: writeTemp(t, "secret", []byte(testSecret))})
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(User(r)))
	}), Any{tk, j})
	expired := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"exp": jwtNow.Add(-time.Hour).Unix()}))
	for _, tt := range []struct {
		name, tok string
		code      int
		body      string
	}{
		{"static token", "carol-static-token-0123", 200, "carol"},
		{"JWT", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil)), 200, "alice"},
		{"expired JWT", expired, 401, "token expired"},
		{"bad static token", "nobody-static-token-0123", 401, "invalid token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearer(tt.tok))
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body.String(), tt.code, tt.body)
			}
			if tt.code != 200 && strings.Contains(w.Body.String(), tt.tok) {
				t.Errorf("401 body echoes the token")
			}
		})
	}
}
