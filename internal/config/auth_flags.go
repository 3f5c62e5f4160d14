package config

import "flag"

// registerAuthFlags adds the authentication flags (JWT and friends).
func registerAuthFlags(fs *flag.FlagSet, c *Config) {}

// validateAuth checks the authentication settings.
func (c Config) validateAuth() []error { return nil }
