package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeAuthFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ecPublicPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestValidateAuth(t *testing.T) {
	secret := writeAuthFile(t, "secret", strings.Repeat("k", 32)+"\n")
	short := writeAuthFile(t, "short", strings.Repeat("k", 31)+"\n")
	pub := writeAuthFile(t, "pub.pem", ecPublicPEM(t))
	notPEM := writeAuthFile(t, "bad.pem", "not a key")
	missing := filepath.Join(t.TempDir(), "missing")

	for _, tt := range []struct {
		name    string
		edit    func(c *Config)
		fields  []string // the *FieldErrors expected, in order
		message string   // a substring of the error, when set
	}{
		{"off", func(c *Config) {}, nil, ""},
		{"secret", func(c *Config) { c.JWT.HS256SecretFile = secret }, nil, ""},
		{"public key", func(c *Config) { c.JWT.PublicKeyFile = pub }, nil, ""},
		{"both, with issuer, audience and claim", func(c *Config) {
			c.JWT.HS256SecretFile, c.JWT.PublicKeyFile = secret, pub
			c.JWT.Issuer, c.JWT.Audience, c.JWT.UserClaim = "iss", "aud", "email"
		}, nil, ""},
		{"missing secret file", func(c *Config) { c.JWT.HS256SecretFile = missing }, []string{"jwt-hs256-secret-file"}, "no such file"},
		{"short secret", func(c *Config) { c.JWT.HS256SecretFile = short }, []string{"jwt-hs256-secret-file"}, "31 bytes long; at least 32"},
		{"missing public key file", func(c *Config) { c.JWT.PublicKeyFile = missing }, []string{"jwt-public-key-file"}, "no such file"},
		{"public key file not PEM", func(c *Config) { c.JWT.PublicKeyFile = notPEM }, []string{"jwt-public-key-file"}, "not PEM"},
		{"both bad", func(c *Config) { c.JWT.HS256SecretFile, c.JWT.PublicKeyFile = short, missing }, []string{"jwt-hs256-secret-file", "jwt-public-key-file"}, ""},
		{"options without a key", func(c *Config) { c.JWT.Issuer, c.JWT.Audience, c.JWT.UserClaim = "iss", "aud", "email" },
			[]string{"jwt-issuer", "jwt-audience", "jwt-user-claim"}, "needs --jwt-hs256-secret-file or --jwt-public-key-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			var got []string
			var msgs []string
			for _, err := range c.validateAuth() {
				fe, ok := err.(*FieldError)
				if !ok {
					t.Fatalf("error %v is a %T, want *FieldError", err, err)
				}
				got = append(got, fe.Field)
				msgs = append(msgs, fe.Error())
			}
			if !slices.Equal(got, tt.fields) {
				t.Fatalf("validateAuth fields = %v, want %v (%v)", got, tt.fields, msgs)
			}
			if tt.message != "" && !strings.Contains(strings.Join(msgs, "\n"), tt.message) {
				t.Errorf("errors %q, want one containing %q", msgs, tt.message)
			}
			// Validate reports the same through Load's path.
			if names := fieldNames(c.Validate()); len(tt.fields) > 0 && !slices.Contains(names, tt.fields[0]) {
				t.Errorf("Validate fields = %v, want %s among them", names, tt.fields[0])
			}
		})
	}
}

// The JWT flags are mirrored as KERNELGATE_JWT_* and flags win over them.
func TestLoadJWTFlagsAndEnv(t *testing.T) {
	secret := writeAuthFile(t, "secret", strings.Repeat("k", 40))
	pub := writeAuthFile(t, "pub.pem", ecPublicPEM(t))
	c, _, _, err := load(t, env{
		"KERNELGATE_JWT_HS256_SECRET_FILE": secret,
		"KERNELGATE_JWT_PUBLIC_KEY_FILE":   filepath.Join(t.TempDir(), "overridden"),
		"KERNELGATE_JWT_ISSUER":            "https://issuer.example",
		"KERNELGATE_JWT_USER_CLAIM":        "email",
	}, "--jwt-public-key-file", pub, "--jwt-audience", "kernelgate", "--addr", "0.0.0.0:8000")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{}.JWT
	want.HS256SecretFile, want.PublicKeyFile = secret, pub
	want.Issuer, want.Audience, want.UserClaim = "https://issuer.example", "kernelgate", "email"
	if c.JWT != want {
		t.Errorf("JWT = %+v, want %+v", c.JWT, want)
	}

	if _, _, _, err := load(t, env{"KERNELGATE_JWT_HS256_SECRET_FILE": filepath.Join(t.TempDir(), "missing")}); !slices.Contains(fieldNames(err), "jwt-hs256-secret-file") {
		t.Errorf("missing secret file via env: err = %v", err)
	}
}

// A JWT key is authentication enough to listen beyond loopback.
func TestValidate_JWTBeyondLoopback(t *testing.T) {
	c := Default()
	c.Addr = "0.0.0.0:8000"
	if err := c.Validate(); !slices.Contains(fieldNames(err), "addr") {
		t.Fatalf("no auth beyond loopback: err = %v", err)
	}
	c.JWT.PublicKeyFile = writeAuthFile(t, "pub.pem", ecPublicPEM(t))
	if err := c.Validate(); slices.Contains(fieldNames(err), "addr") {
		t.Fatalf("JWT beyond loopback: err = %v", err)
	}
	c.JWT.PublicKeyFile = ""
	c.JWT.HS256SecretFile = writeAuthFile(t, "secret", strings.Repeat("k", 32))
	if err := c.Validate(); slices.Contains(fieldNames(err), "addr") {
		t.Fatalf("JWT beyond loopback: err = %v", err)
	}
}
