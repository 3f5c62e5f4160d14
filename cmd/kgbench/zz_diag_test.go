package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/app"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

func TestDiag(t *testing.T) {
	if os.Getenv("KGDIAG") == "" {
		t.Skip()
	}
	ctx := context.Background()
	c, _, err := config.Load("kgbench", nil, os.Getenv, os.Environ(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c.LogLevel = "debug"
	f, _ := os.Create("/tmp/diag.log")
	defer f.Close()
	log := app.NewLogger(c, f)
	specs, err := app.Specs(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(c.Kernel.RuntimeDir, 0o700)
	defer os.RemoveAll(c.Kernel.RuntimeDir)
	t.Logf("goroutines at start: %d", runtime.NumGoroutine())
	for r := 0; r < 3; r++ {
		mgr, _ := kernel.NewManager(c.Kernel, specs, c.KernelSpec, log, nil)
		for i := 0; i < 3; i++ {
			b := time.Now()
			k, err := mgr.Start(ctx, kernel.StartOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st := time.Since(b)
			b = time.Now()
			if err := k.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("start %v shutdown %v", st, time.Since(b))
		}
		k, _ := mgr.Start(ctx, kernel.StartOptions{})
		for i := 0; i < 200; i++ {
			k.Call(ctx, "shell", "kernel_info_request", struct{}{})
		}
		evs, _ := k.Journal().Read(ctx, 0, 100000)
		t.Logf("journal events after 200 kernel_info calls: %d", len(evs))
		for _, e := range evs {
			if e.Msg != nil {
				t.Logf("  %s %s parent=%s", e.Channel, e.Msg.Type(), e.Msg.ParentID())
			}
		}
		b := time.Now()
		mgr.Close(ctx)
		t.Logf("close %v", time.Since(b))
		time.Sleep(100 * time.Millisecond)
		t.Logf("goroutines after close: %d", runtime.NumGoroutine())
		out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,args | grep ipykernel_launcher | grep -v grep").Output()
		t.Logf("kernel processes left: %q", out)
	}
}
