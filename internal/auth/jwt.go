package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// JWT settings that are not configurable.
const (
	// JWTLeeway is the clock skew allowed on exp, nbf and iat.
	JWTLeeway = 30 * time.Second
	// MinHS256SecretBytes is the shortest HS256 secret accepted (RFC 7518
	// §3.2: a key of the hash's size or larger).
	MinHS256SecretBytes = 32
	// MinRSABits is the smallest RSA modulus accepted for RS256.
	MinRSABits = 2048
	// DefaultUserClaim is the claim naming the user when none is configured.
	DefaultUserClaim = "sub"

	maxJWTBytes  = 16 << 10 // longer credentials are refused before parsing
	maxUserBytes = 256
)

// JWTConfig configures JWT verification. It is off unless a key file is set.
type JWTConfig struct {
	HS256SecretFile string // shared secret (HS256 only), at least 32 bytes
	PublicKeyFile   string // PEM RSA (RS256) and/or P-256 EC (ES256) public keys
	Issuer          string // when set, the iss claim must equal it
	Audience        string // when set, the aud claim must contain it
	UserClaim       string // claim naming the user; DefaultUserClaim when empty
	// RolesClaim, when set, is the claim that lists the user's roles (a
	// string or an array of strings); AdminRole in it makes an
	// administrator (see Admins).
	RolesClaim string
}

// Enabled reports whether a key is configured.
func (c JWTConfig) Enabled() bool { return c.HS256SecretFile != "" || c.PublicKeyFile != "" }

// PublicKeys are the verification keys of a PEM file, by algorithm.
type PublicKeys struct {
	RSA []*rsa.PublicKey   // RS256
	EC  []*ecdsa.PublicKey // ES256 (P-256 only)
}

// ReadHS256Secret reads an HS256 secret file: its bytes minus one trailing
// newline, at least MinHS256SecretBytes of them. Errors never contain the
// secret.
func ReadHS256Secret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < MinHS256SecretBytes {
		return nil, fmt.Errorf("HS256 secret is %d bytes long; at least %d are required", len(b), MinHS256SecretBytes)
	}
	return b, nil
}

// ReadPublicKeys reads a PEM file of one or more public keys ("PUBLIC KEY",
// "RSA PUBLIC KEY" or the key of a "CERTIFICATE"): RSA keys of at least
// MinRSABits for RS256 and P-256 EC keys for ES256. Anything else is an
// error, private keys included.
func ReadPublicKeys(path string) (PublicKeys, error) {
	var keys PublicKeys
	rest, err := os.ReadFile(path)
	if err != nil {
		return keys, err
	}
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		k, err := parsePublicKey(b)
		if err != nil {
			return keys, fmt.Errorf("PEM block %d (%s): %w", n, b.Type, err)
		}
		switch k := k.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < MinRSABits {
				return keys, fmt.Errorf("PEM block %d: RSA key of %d bits; at least %d are required", n, k.N.BitLen(), MinRSABits)
			}
			keys.RSA = append(keys.RSA, k)
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return keys, fmt.Errorf("PEM block %d: EC key on curve %s; only P-256 (ES256) is supported", n, k.Curve.Params().Name)
			}
			keys.EC = append(keys.EC, k)
		default:
			return keys, fmt.Errorf("PEM block %d: unsupported key type %T; want RSA (RS256) or P-256 EC (ES256)", n, k)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return keys, errors.New("data that is not PEM after the last key")
	}
	if len(keys.RSA)+len(keys.EC) == 0 {
		return keys, errors.New("no PEM public key found")
	}
	return keys, nil
}

func parsePublicKey(b *pem.Block) (any, error) {
	switch {
	case b.Type == "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case b.Type == "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case b.Type == "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case strings.Contains(b.Type, "PRIVATE KEY"):
		return nil, errors.New("a private key: give only the public key")
	default:
		return nil, errors.New("unsupported PEM type; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE")
	}
}

// JWT authenticates requests by a signed JSON Web Token, presented where
// static tokens are. Algorithms are pinned to the configured key types
// (HS256 for the secret, RS256 for RSA keys, ES256 for P-256 keys), and an
// unexpired exp claim is required.
type JWT struct {
	parser     *jwt.Parser
	methods    []string
	secret     []byte
	rsa, ec    jwt.VerificationKeySet
	issuer     string
	audience   string
	userClaim  string
	rolesClaim string
}

// NewJWT reads the configured key files and builds the verifier.
func NewJWT(c JWTConfig) (*JWT, error) { return newJWT(c, time.Now) }

func newJWT(c JWTConfig, now func() time.Time) (*JWT, error) {
	if !c.Enabled() {
		return nil, errors.New("jwt: no key configured")
	}
	j := &JWT{issuer: c.Issuer, audience: c.Audience, userClaim: c.UserClaim, rolesClaim: c.RolesClaim}
	if j.userClaim == "" {
		j.userClaim = DefaultUserClaim
	}
	if c.HS256SecretFile != "" {
		s, err := ReadHS256Secret(c.HS256SecretFile)
		if err != nil {
			return nil, fmt.Errorf("jwt secret file: %w", err)
		}
		j.secret = s
		j.methods = append(j.methods, jwt.SigningMethodHS256.Alg())
	}
	if c.PublicKeyFile != "" {
		keys, err := ReadPublicKeys(c.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwt public key file: %w", err)
		}
		for _, k := range keys.RSA {
			j.rsa.Keys = append(j.rsa.Keys, k)
		}
		for _, k := range keys.EC {
			j.ec.Keys = append(j.ec.Keys, k)
		}
		if len(j.rsa.Keys) > 0 {
			j.methods = append(j.methods, jwt.SigningMethodRS256.Alg())
		}
		if len(j.ec.Keys) > 0 {
			j.methods = append(j.methods, jwt.SigningMethodES256.Alg())
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(j.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(JWTLeeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(now),
	}
	if j.issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.issuer))
	}
	if j.audience != "" {
		opts = append(opts, jwt.WithAudience(j.audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// Algorithms are the accepted "alg" values.
func (j *JWT) Algorithms() []string { return slices.Clone(j.methods) }

// UserClaim is the claim that names the user.
func (j *JWT) UserClaim() string { return j.userClaim }

// key returns the keys for the token's algorithm: the secret only for
// HS256, public keys only for RS256/ES256, so a public key can never serve
// as an HMAC secret.
func (j *JWT) key(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case jwt.SigningMethodHS256.Alg():
		if j.secret != nil {
			return j.secret, nil
		}
	case jwt.SigningMethodRS256.Alg():
		if len(j.rsa.Keys) > 0 {
			return j.rsa, nil
		}
	case jwt.SigningMethodES256.Alg():
		if len(j.ec.Keys) > 0 {
			return j.ec, nil
		}
	}
	return nil, errors.New("no key for algorithm")
}

// Authenticate implements Authenticator. Errors give the reason a token was
// refused but never the token.
func (j *JWT) Authenticate(r *http.Request) (string, error) {
	tok := credential(r)
	if tok == "" {
		return "", fmt.Errorf("%w: no token (send \"Authorization: Bearer <token>\" or ?token=)", ErrUnauthenticated)
	}
	if !looksLikeJWT(tok) {
		return "", fmt.Errorf("%w: invalid token", ErrUnauthenticated)
	}
	if len(tok) > maxJWTBytes {
		return "", fmt.Errorf("%w: JWT: token too long", ErrUnauthenticated)
	}
	claims := jwt.MapClaims{}
	t, err := j.parser.ParseWithClaims(tok, claims, j.key)
	if err != nil {
		return "", fmt.Errorf("%w: JWT: %s", ErrUnauthenticated, j.reason(t, claims, err))
	}
	user, why := j.user(claims)
	if why != "" {
		return "", fmt.Errorf("%w: JWT: %s", ErrUnauthenticated, why)
	}
	return user, nil
}

// looksLikeJWT reports whether tok has a JWS compact serialization's shape:
// three dot-separated parts, the first two non-empty.
func looksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	return len(parts) == 3 && parts[0] != "" && parts[1] != ""
}

// user reads the user claim, or says why it is unusable.
func (j *JWT) user(claims jwt.MapClaims) (string, string) {
	v, ok := claims[j.userClaim]
	if !ok {
		return "", fmt.Sprintf("missing user claim %q", j.userClaim)
	}
	u, ok := v.(string)
	switch {
	case !ok:
		return "", fmt.Sprintf("user claim %q is not a string", j.userClaim)
	case u == "":
		return "", fmt.Sprintf("user claim %q is empty", j.userClaim)
	case u == Anonymous:
		return "", fmt.Sprintf("user claim %q names the reserved user %q", j.userClaim, Anonymous)
	case len(u) > maxUserBytes:
		return "", fmt.Sprintf("user claim %q is longer than %d bytes", j.userClaim, maxUserBytes)
	case strings.IndexFunc(u, unicode.IsControl) >= 0:
		return "", fmt.Sprintf("user claim %q contains control characters", j.userClaim)
	}
	return u, ""
}

// reason turns a parse error into a short, precise reason that names no
// part of the token but its algorithm.
func (j *JWT) reason(t *jwt.Token, claims jwt.MapClaims, err error) string {
	if t != nil && t.Header != nil {
		alg, ok := t.Header["alg"].(string)
		if !ok {
			return "missing algorithm"
		}
		if !slices.Contains(j.methods, alg) {
			return "unexpected algorithm " + printableAlg(alg)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature invalid"
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "token unverifiable"
	}
	// The signature was good; the claims are not.
	var why []string
	if exp, eerr := claims.GetExpirationTime(); eerr == nil && exp == nil {
		why = append(why, "missing exp claim (expiry is required)")
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		why = append(why, "token expired")
	}
	if errors.Is(err, jwt.ErrTokenNotValidYet) {
		why = append(why, "token not valid yet")
	}
	if errors.Is(err, jwt.ErrTokenUsedBeforeIssued) {
		why = append(why, "token issued in the future")
	}
	if iss, ierr := claims.GetIssuer(); j.issuer != "" && ierr == nil && iss != j.issuer {
		why = append(why, "wrong issuer")
	}
	if aud, aerr := claims.GetAudience(); j.audience != "" && aerr == nil && !slices.Contains(aud, j.audience) {
		why = append(why, "wrong audience")
	}
	if errors.Is(err, jwt.ErrInvalidType) {
		why = append(why, "claim of the wrong type")
	}
	if len(why) == 0 {
		return "invalid claims"
	}
	return strings.Join(why, ", ")
}

// printableAlg is alg if it is short and plain, so that an error never
// carries arbitrary token content.
func printableAlg(alg string) string {
	if alg == "" || len(alg) > 16 || strings.IndexFunc(alg, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) >= 0 {
		return "(unprintable)"
	}
	return alg
}
