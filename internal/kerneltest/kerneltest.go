// Package kerneltest starts kernel managers over real ipykernels for tests:
// the one python3 kernelspec on Debian's interpreter, a private runtime dir,
// and a Close when the test ends. Only tests import it.
package kerneltest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// Python is the interpreter with ipykernel (Debian's python3-ipykernel; the
// python3 first on PATH may lack it).
const Python = "/usr/bin/python3"

// NewManager returns a manager of the default config, adjusted by mutate
// (may be nil), that the test closes at its end (after the cleanups the
// test registers later, such as servers using it).
func NewManager(t testing.TB, mutate func(*kernel.Config)) *kernel.Manager {
	t.Helper()
	cfg := kernel.DefaultConfig()
	cfg.RuntimeDir = t.TempDir()
	cfg.Env = append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := kernel.NewManager(cfg, map[string]kernelspec.Spec{"python3": kernelspec.Default(Python)}, "python3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close kernel manager: %v", err)
		}
	})
	return m
}
