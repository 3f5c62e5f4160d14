package bootstrap_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/bootstrap"
	"github.com/kernelgate/kernelgate/internal/console"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kerneltest"
)

// cell runs code in k as a client would, answering input() with stdin, and
// returns whether it succeeded and what it printed (stdout and stderr).
func cell(t *testing.T, k *kernel.Kernel, code, stdin string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	ok, err := console.Run(ctx, k, code, strings.NewReader(stdin), &out, &out)
	if err != nil {
		t.Fatalf("run %q: %v\n%s", code, err, out.String())
	}
	return ok, out.String()
}

// TestAuditPolicyInKernel runs a real ipykernel with the bootstrap and the
// audit policy, as the kernel package starts it, and checks that the policy
// refuses programs while the kernel's own machinery (execution, streams,
// input(), interrupts, the bootstrap's helpers, restarts) still works.
func TestAuditPolicyInKernel(t *testing.T) {
	audit, err := bootstrap.Policy(bootstrap.PolicyAudit)
	if err != nil {
		t.Fatal(err)
	}
	m := kerneltest.NewManager(t, func(cfg *kernel.Config) { cfg.ExtraBootstrap = map[string]string{"python3": audit} })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	k, err := m.Start(ctx, kernel.StartOptions{Owner: "u"})
	if err != nil {
		t.Fatal(err)
	}

	refused := func(when string) {
		t.Helper()
		ok, out := cell(t, k, "import _kernelgate, subprocess\nprint('policy', _kernelgate.policy)\nsubprocess.run(['/bin/echo', 'escaped'])", "")
		if ok || !strings.Contains(out, "policy audit") || !strings.Contains(out, "PermissionError") ||
			!strings.Contains(out, "kernelgate policy: starting programs is not allowed") || strings.Contains(out, "escaped\n") {
			t.Errorf("%s: subprocess with the policy: ok=%v\n%s", when, ok, out)
		}
	}
	refused("first start")

	if ok, out := cell(t, k, "x = 20\nprint(x + 22)", ""); !ok || !strings.Contains(out, "42") {
		t.Errorf("plain cell: ok=%v %q", ok, out)
	}
	if ok, out := cell(t, k, "print('hello', input('name? '))", "Ada\n"); !ok || !strings.Contains(out, "hello Ada") {
		t.Errorf("input(): ok=%v %q", ok, out)
	}
	res, err := k.Evaluate(ctx, map[string]string{"vars": bootstrap.VariablesExpr(5, 100)})
	if err != nil || res["vars"].Status != "ok" || !strings.Contains(string(res["vars"].Data["application/json"]), `"x"`) {
		t.Errorf("bootstrap helper with the policy: %v %+v", err, res["vars"])
	}
	// A local server and its client: loopback stays open.
	if ok, out := cell(t, k, `
import socket, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
threading.Thread(target=lambda: srv.accept()[0].sendall(b"pong"), daemon=True).start()
c = socket.create_connection(srv.getsockname(), timeout=10)
print(c.recv(4).decode())`, ""); !ok || !strings.Contains(out, "pong") {
		t.Errorf("loopback socket: ok=%v %q", ok, out)
	}

	// Interrupt a sleeping cell.
	ex, err := k.Execute(ctx, kernel.ExecuteRequest{Code: "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", AllowStdin: true})
	if err != nil {
		t.Fatal(err)
	}
	sleeping := make(chan struct{})
	interrupted := make(chan error, 1)
	go func() {
		select {
		case <-sleeping:
			interrupted <- k.Interrupt(ctx)
		case <-ctx.Done():
			interrupted <- ctx.Err()
		}
	}()
	seen := false
	err = k.Follow(ctx, ex, func(e kernel.Event) error {
		if e.Msg != nil && e.Msg.Type() == jmsg.Stream && !seen {
			var c jmsg.StreamContent
			if e.Msg.Decode(&c) == nil && strings.Contains(c.Text, "sleeping") {
				seen = true
				close(sleeping)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-interrupted; err != nil {
		t.Fatalf("interrupt: %v", err)
	}
	if _, reply, err := ex.Result(); err != nil || reply.Status != "error" || reply.Ename != "KeyboardInterrupt" {
		t.Errorf("interrupted cell: %v %+v, want KeyboardInterrupt", err, reply)
	}

	// A restart is a new process: the policy is installed again.
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, out := cell(t, k, "print(x)", ""); ok || !strings.Contains(out, "NameError") {
		t.Errorf("after restart the state should be gone: ok=%v %q", ok, out)
	}
	refused("after restart")
}
