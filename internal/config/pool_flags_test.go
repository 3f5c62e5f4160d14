package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPoolFlags(t *testing.T) {
	c, _, _, err := load(t, env{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"": DefaultPoolSize}, c.Kernel.Pool.Sizes); diff != "" {
		t.Errorf("default pool sizes (-want +got):\n%s", diff)
	}
	if !c.Kernel.Pool.Enabled() {
		t.Error("the server's default has no pool")
	}

	c, _, _, err = load(t, env{"KERNELGATE_POOL_SIZE": "5", "KERNELGATE_POOL_PRELOAD": "numpy, pandas,,matplotlib.pyplot"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"": 5}, c.Kernel.Pool.Sizes); diff != "" {
		t.Errorf("env pool size (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"numpy", "pandas", "matplotlib.pyplot"}, c.Kernel.Pool.Preload); diff != "" {
		t.Errorf("env preload (-want +got):\n%s", diff)
	}

	// Flags win over the environment; per-spec sizes.
	c, _, _, err = load(t, env{"KERNELGATE_POOL_SIZE": "5"}, "--pool-size", "default=1,ir=2", "--pool-preload-timeout", "30s")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"": 1, "ir": 2}, c.Kernel.Pool.Sizes); diff != "" {
		t.Errorf("flag pool sizes (-want +got):\n%s", diff)
	}
	if got := (poolSizes{&c.Kernel.Pool.Sizes}).String(); got != "default=1,ir=2" {
		t.Errorf("String() = %q", got)
	}
	if c.Kernel.Pool.PreloadTimeout.String() != "30s" {
		t.Errorf("preload timeout %s", c.Kernel.Pool.PreloadTimeout)
	}

	c, _, _, err = load(t, env{}, "--pool-size", "0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel.Pool.Enabled() {
		t.Error("--pool-size 0 leaves a pool")
	}
}

func TestPoolFlagsValidation(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		field string
	}{
		{[]string{"--pool-size", "-1"}, "pool-size"},
		{[]string{"--pool-size", "101"}, "pool-size"},
		{[]string{"--pool-size", "3", "--max-kernels", "2"}, "pool-size"},
		{[]string{"--pool-preload", "numpy;import os"}, "pool-preload"},
		{[]string{"--pool-preload", "1abc"}, "pool-preload"},
		{[]string{"--pool-size", "0", "--pool-preload", "numpy"}, "pool-preload"},
		{[]string{"--pool-preload-timeout", "-1s"}, "pool-preload-timeout"},
	} {
		_, _, _, err := load(t, env{}, tt.args...)
		fes := fieldErrors(err)
		if len(fes) != 1 || fes[0].Field != tt.field {
			t.Errorf("%v: got %v, want one error on %s", tt.args, err, tt.field)
		}
	}
	for _, bad := range []string{"x=", "=2", "python3=two", "a=1,b"} {
		if _, _, _, err := load(t, env{}, "--pool-size", bad); err == nil || !strings.Contains(err.Error(), "pool") {
			t.Errorf("--pool-size %q: %v", bad, err)
		}
	}
}
