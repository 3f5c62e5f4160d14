package config

import (
	"errors"
	"flag"
	"math"
	"strconv"
)

// registerLimitFlags adds the rate-limit and audit flags.
func registerLimitFlags(fs *flag.FlagSet, c *Config) {
	fs.Float64Var(&c.Rates.Messages, "rate-messages", c.Rates.Messages, "WebSocket messages per second per user, in bursts of up to twice that; 0 for no limit (env KERNELGATE_RATE_MESSAGES)")
	fs.Float64Var(&c.Rates.Executions, "rate-executions", c.Rates.Executions, "cells run per second per user, on every API, in bursts of up to twice that; 0 for no limit (env KERNELGATE_RATE_EXECUTIONS)")
	fs.Float64Var(&c.Rates.KernelStarts, "rate-kernel-starts", c.Rates.KernelStarts, "kernel starts per second per user, on every API, in bursts of up to five times that; a start over the limit waits up to 5s, then fails; 0 for no limit (env KERNELGATE_RATE_KERNEL_STARTS)")
}

// validateLimits checks the rate-limit settings.
func (c Config) validateLimits() []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"rate-messages", c.Rates.Messages},
		{"rate-executions", c.Rates.Executions},
		{"rate-kernel-starts", c.Rates.KernelStarts},
	} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, &FieldError{Field: f.name, Value: strconv.FormatFloat(f.v, 'g', -1, 64),
				Err: errors.New("must be a non-negative number of events per second (0 for no limit)")})
		}
	}
	return errs
}
