package kerneltest

import (
	"context"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
)

func TestNewManagerStartsARealKernel(t *testing.T) {
	m := NewManager(t, func(c *kernel.Config) { c.MaxKernels = 1 })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	k, err := m.Start(ctx, kernel.StartOptions{Owner: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if k.State() != kernel.Idle {
		t.Fatalf("state %s after Start; want idle", k.State())
	}
	if _, err := m.Start(ctx, kernel.StartOptions{Owner: "t"}); err == nil {
		t.Fatal("mutate was not applied: a second kernel started past MaxKernels 1")
	}
}
