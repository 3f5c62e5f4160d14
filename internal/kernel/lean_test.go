package kernel

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// The bootstrap turns off ipykernel's 0.5 ms sleep before each
// execute_reply. An execution still ends only once its reply and its iopub
// idle are both in, so every output of it is delivered first and in order.
func TestLean_NoExecuteSleepAndOutputStaysInOrder(t *testing.T) {
	m := newPoolManager(t, func(c *Config) { c.Pool = PoolConfig{} })
	k, err := m.Start(startCtx(t), StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := k.Evaluate(startCtx(t), map[string]string{"s": "get_ipython().kernel._execute_sleep"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res["s"].Data["text/plain"]); got != `"0.0"` {
		t.Fatalf("_execute_sleep = %s, want 0", got)
	}
	for i := range 150 {
		code := fmt.Sprintf("import sys\nfor j in range(3): print(%d, j)\nprint('e%d', file=sys.stderr)\n%d", i, i, i)
		ex, err := k.Execute(startCtx(t), ExecuteRequest{Code: code, StoreHistory: true})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		var out, errOut strings.Builder
		err = k.Follow(startCtx(t), ex, func(e Event) error {
			if e.Life != nil {
				return fmt.Errorf("kernel %s", e.Life.Kind)
			}
			switch e.Msg.Type() {
			case jmsg.Stream:
				var sc jmsg.StreamContent
				if err := e.Msg.Decode(&sc); err != nil {
					return err
				}
				if sc.Name == "stderr" {
					errOut.WriteString(sc.Text)
				} else {
					out.WriteString(sc.Text)
				}
				order = append(order, "stream")
			case jmsg.Status:
				var st jmsg.StatusContent
				if err := e.Msg.Decode(&st); err != nil {
					return err
				}
				order = append(order, st.ExecutionState)
			case jmsg.ExecuteResult:
				order = append(order, "result")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%d 0\n%d 1\n%d 2\n", i, i, i)
		if out.String() != want || errOut.String() != fmt.Sprintf("e%d\n", i) {
			t.Fatalf("execution %d: stdout %q stderr %q", i, out.String(), errOut.String())
		}
		// busy, the output, then idle last: nothing of the execution after it.
		if len(order) < 3 || order[0] != "busy" || order[len(order)-1] != "idle" || order[len(order)-2] == "busy" {
			t.Fatalf("execution %d: iopub order %v", i, order)
		}
		if _, reply, xerr := ex.Result(); xerr != nil || reply.Status != "ok" {
			t.Fatalf("execution %d: %v %v", i, reply.Status, xerr)
		}
	}
}
