package config

import (
	"errors"
	"flag"

	"github.com/kernelgate/kernelgate/internal/auth"
)

// registerAuthFlags adds the authentication flags (JWT and friends). Load
// mirrors each as KERNELGATE_<FLAG>, e.g. KERNELGATE_JWT_HS256_SECRET_FILE.
func registerAuthFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.JWT.HS256SecretFile, "jwt-hs256-secret-file", c.JWT.HS256SecretFile, "`file` holding the secret of HS256-signed JWTs, at least 32 bytes; a trailing newline is dropped (env KERNELGATE_JWT_HS256_SECRET_FILE)")
	fs.StringVar(&c.JWT.PublicKeyFile, "jwt-public-key-file", c.JWT.PublicKeyFile, "PEM `file` of the public keys that sign JWTs: RSA for RS256, P-256 EC for ES256; several may be given (env KERNELGATE_JWT_PUBLIC_KEY_FILE)")
	fs.StringVar(&c.JWT.Issuer, "jwt-issuer", c.JWT.Issuer, "when set, JWTs must carry this iss claim (env KERNELGATE_JWT_ISSUER)")
	fs.StringVar(&c.JWT.Audience, "jwt-audience", c.JWT.Audience, "when set, JWTs' aud claim must contain this (env KERNELGATE_JWT_AUDIENCE)")
	fs.StringVar(&c.JWT.UserClaim, "jwt-user-claim", c.JWT.UserClaim, "JWT `claim` that names the user; empty means \""+auth.DefaultUserClaim+"\" (env KERNELGATE_JWT_USER_CLAIM)")
	fs.StringVar(&c.JWT.RolesClaim, "jwt-roles-claim", c.JWT.RolesClaim, "JWT `claim` listing the user's roles (an array, or a string separated by spaces or commas; a dotted name such as realm_access.roles reaches into objects); \""+auth.AdminRole+"\" among them makes an administrator (env KERNELGATE_JWT_ROLES_CLAIM)")
}

// validateAuth checks the authentication settings: JWT key files must exist
// and parse, and JWT options need a key to apply to.
func (c Config) validateAuth() []error {
	var errs []error
	bad := func(field, value string, err error) {
		errs = append(errs, &FieldError{Field: field, Value: value, Err: err})
	}
	j := c.JWT
	if j.HS256SecretFile != "" {
		if _, err := auth.ReadHS256Secret(j.HS256SecretFile); err != nil {
			bad("jwt-hs256-secret-file", j.HS256SecretFile, err)
		}
	}
	if j.PublicKeyFile != "" {
		if _, err := auth.ReadPublicKeys(j.PublicKeyFile); err != nil {
			bad("jwt-public-key-file", j.PublicKeyFile, err)
		}
	}
	if !j.Enabled() {
		noKey := errors.New("needs --jwt-hs256-secret-file or --jwt-public-key-file")
		if j.Issuer != "" {
			bad("jwt-issuer", j.Issuer, noKey)
		}
		if j.Audience != "" {
			bad("jwt-audience", j.Audience, noKey)
		}
		if j.UserClaim != "" {
			bad("jwt-user-claim", j.UserClaim, noKey)
		}
		if j.RolesClaim != "" {
			bad("jwt-roles-claim", j.RolesClaim, noKey)
		}
	}
	return errs
}
