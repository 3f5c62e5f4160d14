package config

import "flag"

// registerLimitFlags adds the rate-limit and audit flags.
func registerLimitFlags(fs *flag.FlagSet, c *Config) {}

// validateLimits checks the rate-limit settings.
func (c Config) validateLimits() []error { return nil }
