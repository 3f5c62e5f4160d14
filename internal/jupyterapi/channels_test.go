package jupyterapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
)

var framings = []struct {
	name string
	v1   bool
}{{"legacy", false}, {"v1", true}}

func TestChannelsExecuteInputInterrupt(t *testing.T) {
	s := newTestServer(t, nil)
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			k := s.startKernel(t, "alice")
			c := s.connect(t, "alice", k.ID, newSession(), f.v1)

			info := c.request(jmsg.KernelInfoRequest, struct{}{})
			c.send(jmsg.Shell, info)
			reply, _ := c.finish(info, 30*time.Second)
			if reply.Type() != jmsg.KernelInfoReply || !strings.Contains(string(reply.Content), `"protocol_version"`) {
				t.Fatalf("kernel_info: %s %s", reply.Type(), reply.Content)
			}

			reply, msgs := c.execute("for i in range(3): print('line', i)")
			if got := streamText(msgs, reply.ParentID()); got != "line 0\nline 1\nline 2\n" {
				t.Errorf("stream %q", got)
			}
			var rc jmsg.ExecuteReplyContent
			if json.Unmarshal(reply.Content, &rc); rc.Status != "ok" || rc.ExecutionCount < 1 {
				t.Errorf("execute_reply %s", reply.Content)
			}

			// input(): the request reaches this client on stdin, the reply goes back.
			req := c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: "v = input('name? ')\nprint('got', v)", UserExpressions: map[string]string{}, AllowStdin: true})
			c.send(jmsg.Shell, req)
			var ir received
			c.until(30*time.Second, func(r received) bool { ir = r; return r.ch == jmsg.Stdin })
			if ir.m.Type() != jmsg.InputRequest || !strings.Contains(string(ir.m.Content), "name? ") {
				t.Fatalf("stdin message %s %s", ir.m.Type(), ir.m.Content)
			}
			ans := c.request(jmsg.InputReply, jmsg.InputReplyContent{Value: "kg"})
			ans.Parent = ir.m.Header
			c.send(jmsg.Stdin, ans)
			_, msgs = c.finish(req, 30*time.Second)
			if got := streamText(msgs, req.Header.MsgID); !strings.Contains(got, "got kg") {
				t.Errorf("after input: %q", got)
			}

			// Interrupt a sleep through REST.
			req = c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: "import time\nprint('sleeping', flush=True)\ntime.sleep(100)", UserExpressions: map[string]string{}})
			c.send(jmsg.Shell, req)
			c.until(30*time.Second, func(r received) bool { return r.m.Type() == jmsg.Stream })
			if code, _, body := s.do(t, "alice", "POST", "/api/kernels/"+k.ID+"/interrupt", ""); code != 204 {
				t.Fatalf("interrupt: %d %s", code, body)
			}
			reply, _ = c.finish(req, 30*time.Second)
			if !strings.Contains(string(reply.Content), "KeyboardInterrupt") {
				t.Errorf("interrupted reply %s; want KeyboardInterrupt", reply.Content)
			}
		})
	}
}

// Replies go to the session that asked; iopub goes to everyone.
func TestChannelsRoutingBetweenClients(t *testing.T) {
	s := newTestServer(t, nil)
	k := s.startKernel(t, "alice")
	a := s.connect(t, "alice", k.ID, newSession(), true)
	b := s.connect(t, "alice", k.ID, newSession(), false)
	// Both are attached once the model counts them.
	waitFor(t, func() bool { return s.api.connections(k.ID) == 2 })

	reply, _ := a.execute("print('from a')")
	// b sees a's iopub (output and status) but not a's shell reply.
	got := b.until(30*time.Second, func(r received) bool {
		return r.m.ParentID() == reply.ParentID() && r.m.Type() == jmsg.Status && strings.Contains(string(r.m.Content), "idle")
	})
	for _, r := range got {
		if r.ch != jmsg.IOPub {
			t.Errorf("b received %s:%s, a reply to a's request", r.ch, r.m.Type())
		}
	}
	if streamText(got, reply.ParentID()) != "from a\n" {
		t.Errorf("b did not see a's output: %v", summary(got))
	}
}

// A client that reconnects with the same session_id gets what the kernel
// said while it was away; the model counts connections.
func TestChannelsReplayOnReconnect(t *testing.T) {
	s := newTestServer(t, nil)
	k := s.startKernel(t, "alice")
	sess := newSession()
	c := s.connect(t, "alice", k.ID, sess, false)
	waitFor(t, func() bool { return s.api.connections(k.ID) == 1 })
	req := c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: "import time\ntime.sleep(0.5)\nprint('while away')", UserExpressions: map[string]string{}})
	c.send(jmsg.Shell, req)
	c.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return s.api.connections(k.ID) == 0 })

	c2 := s.connect(t, "alice", k.ID, sess, true)
	reply, msgs := c2.finish(req, 30*time.Second)
	if reply == nil || streamText(msgs, req.Header.MsgID) != "while away\n" {
		t.Errorf("after reconnect: %v; want the output and reply produced while away", summary(msgs))
	}

	// A second connection of the same session replaces the first.
	c3 := s.connect(t, "alice", k.ID, sess, false)
	_, err := c2.next(30 * time.Second)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("the replaced connection ended with %v; want a normal close", err)
	}
	if r, _ := c3.execute("print(1)"); r == nil {
		t.Error("no reply on the replacing connection")
	}
}

func TestChannelsRestartAndShutdownStatus(t *testing.T) {
	s := newTestServer(t, nil)
	k := s.startKernel(t, "alice")
	c := s.connect(t, "alice", k.ID, newSession(), true)
	c.execute("x = 1")
	if code, _, _ := s.do(t, "alice", "POST", "/api/kernels/"+k.ID+"/restart", ""); code != 200 {
		t.Fatalf("restart: %d", code)
	}
	c.until(30*time.Second, func(r received) bool {
		return r.m.Type() == jmsg.Status && strings.Contains(string(r.m.Content), `"restarting"`)
	})
	// The connection still works after the restart, and x is gone.
	reply, _ := c.execute("x")
	if !strings.Contains(string(reply.Content), "NameError") {
		t.Errorf("after restart: %s; want NameError", reply.Content)
	}
	// A client's shutdown_request goes through the manager: reply, then
	// status dead, then the socket closes, and the kernel is gone.
	sd := c.request(jmsg.ShutdownRequest, map[string]bool{"restart": false})
	c.send(jmsg.Control, sd)
	got := c.until(30*time.Second, func(r received) bool {
		return r.m.Type() == jmsg.Status && strings.Contains(string(r.m.Content), `"dead"`)
	})
	if !strings.Contains(strings.Join(summary(got), " "), "control:shutdown_reply") {
		t.Errorf("no shutdown_reply: %v", summary(got))
	}
	if _, err := c.next(30 * time.Second); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after shutdown the socket ended with %v; want a normal close", err)
	}
	waitFor(t, func() bool { code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+k.ID, ""); return code == 404 })
}

// Bad input: the connection stays usable after a malformed message; a
// frame past the limit closes it with 1009; the kernel serves on.
func TestChannelsBadInput(t *testing.T) {
	s := newTestServer(t, func(_ *kernel.Config, c *Config) { c.MaxMessageBytes = 64 << 10 })
	k := s.startKernel(t, "alice")
	c := s.connect(t, "alice", k.ID, newSession(), false)
	c.write(websocket.MessageText, []byte("{not json"))
	c.write(websocket.MessageText, []byte(`{"channel":"iopub","header":{"msg_id":"x","msg_type":"stream"}}`))
	c.write(websocket.MessageText, []byte(`{"channel":"nope","header":{"msg_id":"y","msg_type":"execute_request"}}`))
	c.write(websocket.MessageBinary, []byte{0, 0, 0, 9})
	if r, _ := c.execute("print('still here')"); r == nil || !strings.Contains(string(r.Content), `"ok"`) {
		t.Fatalf("after malformed frames: %v", r)
	}
	if _, _, body := s.do(t, "alice", "GET", "/metrics", ""); !strings.Contains(string(body), `kernelgate_jupyter_channel_problems_total{kind="malformed"} 4`) ||
		!strings.Contains(string(body), "kernelgate_jupyter_channel_connections 1") {
		t.Errorf("metrics do not count the 4 malformed frames and the open connection:\n%s", grepLines(string(body), "kernelgate_jupyter"))
	}
	// A request whose msg_id is in flight gets an error reply, not silence.
	dup := c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: "import time; time.sleep(1)", UserExpressions: map[string]string{}})
	c.send(jmsg.Shell, dup)
	c.send(jmsg.Shell, dup)
	var errReply *jmsg.Message
	c.until(30*time.Second, func(r received) bool {
		if r.ch == jmsg.Shell && strings.Contains(string(r.m.Content), "KernelGatewayError") {
			errReply = r.m
		}
		return errReply != nil
	})
	if !strings.Contains(string(errReply.Content), "already in use") || errReply.ParentID() != dup.Header.MsgID {
		t.Errorf("duplicate msg_id reply: %s", errReply.Content)
	}

	big := c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: "#" + strings.Repeat("x", 100<<10), UserExpressions: map[string]string{}})
	c.send(jmsg.Shell, big)
	_, err := c.next(30 * time.Second)
	for err == nil {
		_, err = c.next(30 * time.Second)
	}
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("oversize frame: connection ended with %v; want close 1009", err)
	}
	c2 := s.connect(t, "alice", k.ID, newSession(), true)
	if r, _ := c2.execute("print('kernel fine')"); r == nil {
		t.Error("kernel unusable after a client's oversize frame")
	}
}

// An Origin from another site cannot open the socket.
func TestChannelsOrigin(t *testing.T) {
	s := newTestServer(t, nil)
	k := s.startKernel(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/api/kernels/"+k.ID+"/channels",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}, "X-Test-User": {"alice"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin upgrade: err %v, response %v; want 403", err, resp)
	}
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
