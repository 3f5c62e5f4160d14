package zmqconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/connfile"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/supervisor"
	"github.com/kernelgate/kernelgate/internal/zmqwire"
)

// startKernel starts a real ipykernel and returns its connection info.
func startKernel(t *testing.T, transport string) (connfile.Info, *supervisor.Process) {
	t.Helper()
	dir := t.TempDir()
	var info connfile.Info
	var err error
	if transport == "ipc" {
		info, err = connfile.NewIPC(dir)
	} else {
		var res *connfile.Reservation
		info, res, err = connfile.NewTCP("127.0.0.1")
		if res != nil {
			defer res.Release()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conn.json")
	if err := connfile.Write(path, info); err != nil {
		t.Fatal(err)
	}
	argv := kernelspec.Default("/usr/bin/python3").Command(path)
	cmd := supervisor.Command(argv, dir, append(os.Environ(), "PYDEVD_DISABLE_FILE_VALIDATION=1"))
	p, err := supervisor.Start(t.Context(), cmd, supervisor.Options{KillGroupOnExit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background(), nil) })
	return info, p
}

func dial(t *testing.T, info connfile.Info) *Conn {
	t.Helper()
	signer, err := zmqwire.NewSigner(info.SignatureScheme, []byte(info.Key))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, info, Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kernelInfo resends kernel_info_request until its reply arrives (the kernel
// may still be importing when the first one is sent).
func kernelInfo(t *testing.T, c *Conn) *jmsg.Message {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	ids := map[string]bool{}
	send := func() {
		m, _ := jmsg.New(jmsg.KernelInfoRequest, "s", "u", nil, struct{}{})
		ids[m.Header.MsgID] = true
		if err := c.Send(jmsg.Shell, m); err != nil {
			t.Fatal(err)
		}
	}
	send()
	for {
		select {
		case in := <-c.Incoming():
			if in.Channel == jmsg.Shell && in.Msg.Type() == jmsg.KernelInfoReply && ids[in.Msg.ParentID()] {
				return in.Msg
			}
		case <-tick.C:
			send()
		case <-deadline:
			t.Fatal("no kernel_info_reply")
		}
	}
}

func TestConn_RequestReplyAndHeartbeat(t *testing.T) {
	for _, transport := range []string{"tcp", "ipc"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			info, proc := startKernel(t, transport)
			c := dial(t, info)
			defer c.Close()
			r := kernelInfo(t, c)
			var content jmsg.KernelInfoReplyContent
			if err := r.Decode(&content); err != nil || content.Status != "ok" || content.ProtocolVersion == "" {
				t.Fatalf("kernel_info_reply %+v, %v", content, err)
			}
			ping := func(d time.Duration) error {
				ctx, cancel := context.WithTimeout(t.Context(), d)
				defer cancel()
				return c.Ping(ctx)
			}
			if err := ping(10 * time.Second); err != nil {
				t.Fatalf("ping a live kernel: %v", err)
			}
			// A frozen kernel misses its heartbeat; once thawed, the same
			// socket works again (late echoes of the missed ping are skipped).
			if err := proc.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitState(t, proc.Pid(), 'T') // kill returns before the stop takes effect
			if err := ping(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ping a stopped kernel: %v, want deadline exceeded", err)
			}
			if err := proc.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := ping(10 * time.Second); err != nil {
				t.Fatalf("ping after SIGCONT: %v", err)
			}
		})
	}
}

func TestConn_SendOnlyOnRequestChannels(t *testing.T) {
	t.Parallel()
	info, _ := startKernel(t, "tcp")
	c := dial(t, info)
	m, _ := jmsg.New(jmsg.KernelInfoRequest, "s", "u", nil, struct{}{})
	if err := c.Send(jmsg.IOPub, m); err == nil {
		t.Fatal("send on iopub accepted")
	}
	c.Close()
	if err := c.Send(jmsg.Shell, m); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if err := c.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}

// Not parallel: it counts goroutines.
func TestDial_GivesUpWhenNobodyListens(t *testing.T) {
	info, res, err := connfile.NewTCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res.Release() // nothing will listen on these ports
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, info, Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v, want deadline exceeded", err)
	}
	// Every goroutine the dial started has ended.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits until /proc says the process is in the given state.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never reached state %c: %s", pid, state, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
