package jupyterapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kerneltest"
	"github.com/kernelgate/kernelgate/internal/metrics"
	"github.com/kernelgate/kernelgate/internal/wsproto"
)

// testServer is a real Jupyter API over real ipykernels. The caller is the
// X-Test-User header, else "alice"; "root" is an admin.
type testServer struct {
	URL string
	mgr *kernel.Manager
	api *API
}

func newTestServer(t *testing.T, mutate func(*kernel.Config, *Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	mgr := kerneltest.NewManager(t, func(kcfg *kernel.Config) {
		if mutate != nil {
			mutate(kcfg, &cfg)
		}
	})
	met := metrics.New()
	api := New(cfg, mgr, testUser, func(r *http.Request) bool { return testUser(r) == "root" }, nil, met, nil)
	mux := http.NewServeMux()
	api.Register(mux)
	mux.Handle("GET /metrics", met.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		api.Close()
		srv.Close()
	})
	return &testServer{URL: srv.URL, mgr: mgr, api: api}
}

func testUser(r *http.Request) string {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return u
	}
	if u := r.URL.Query().Get("test_user"); u != "" {
		return u
	}
	return "alice"
}

// do sends a request as user and returns the status and body.
func (s *testServer) do(t *testing.T, user, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// startKernel starts a kernel for user through the API.
func (s *testServer) startKernel(t *testing.T, user string) kernelModel {
	t.Helper()
	code, _, body := s.do(t, user, "POST", "/api/kernels", `{"name":"python3"}`)
	if code != http.StatusCreated {
		t.Fatalf("start kernel: %d %s", code, body)
	}
	var m kernelModel
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// client is a test client of a kernel's channels.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	v1      bool
	session string
	in      chan frame
	done    chan struct{}
	err     error // the read error, once the connection ended
}

func (s *testServer) connect(t *testing.T, user, kernelID, session string, v1 bool) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{"X-Test-User": {user}}}
	if v1 {
		opts.Subprotocols = []string{wsproto.SubprotocolV1}
	}
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/api/kernels/"+kernelID+"/channels?session_id="+session, opts)
	if err != nil {
		t.Fatalf("dial channels: %v (response %v)", err, resp)
	}
	if got := ws.Subprotocol(); (got == wsproto.SubprotocolV1) != v1 {
		t.Fatalf("negotiated subprotocol %q with v1=%v", got, v1)
	}
	return newClient(t, ws, session, v1)
}

// newClient wraps a dialed connection. One goroutine reads it, so that a
// wait for a message can time out without closing the socket (a read
// whose context ends closes a coder/websocket connection).
func newClient(t *testing.T, ws *websocket.Conn, session string, v1 bool) *client {
	ws.SetReadLimit(256 << 20)
	c := &client{t: t, ws: ws, v1: v1, session: session, in: make(chan frame, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			typ, data, err := ws.Read(context.Background())
			c.in <- frame{typ, data, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		ws.CloseNow()
		<-c.done
	})
	return c
}

type frame struct {
	typ  websocket.MessageType
	data []byte
	err  error
}

// request builds a client request.
func (c *client) request(msgType string, content any) *jmsg.Message {
	m, err := jmsg.New(msgType, c.session, "alice", nil, content)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// send writes m on ch in the client's framing.
func (c *client) send(ch jmsg.Channel, m *jmsg.Message) {
	c.t.Helper()
	var data []byte
	typ := websocket.MessageBinary
	if c.v1 {
		// EncodeV1 writes any channel; the server decodes client channels.
		var err error
		if data, err = wsproto.EncodeV1(ch, m); err != nil {
			c.t.Fatal(err)
		}
	} else {
		var bin bool
		var err error
		if data, bin, err = wsproto.EncodeLegacy(ch, m); err != nil {
			c.t.Fatal(err)
		}
		if !bin {
			typ = websocket.MessageText
		}
	}
	c.write(typ, data)
}

func (c *client) write(typ websocket.MessageType, data []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

type received struct {
	ch jmsg.Channel
	m  *jmsg.Message
}

// decodeServerFrame decodes what the server sent, in either framing.
func decodeServerFrame(t *testing.T, v1 bool, typ websocket.MessageType, data []byte) received {
	t.Helper()
	ch, m, err := wsproto.DecodeServerFrame(data, typ == websocket.MessageBinary, v1)
	if err != nil {
		t.Fatalf("server frame: %v", err)
	}
	return received{ch, m}
}

// next reads the next message within d.
func (c *client) next(d time.Duration) (received, error) {
	if c.err != nil {
		return received{}, c.err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case f := <-c.in:
		if f.err != nil {
			c.err = f.err
			return received{}, f.err
		}
		return decodeServerFrame(c.t, c.v1, f.typ, f.data), nil
	case <-t.C:
		return received{}, fmt.Errorf("no message within %v", d)
	}
}

// until reads messages until stop says so, failing after the deadline.
func (c *client) until(d time.Duration, stop func(received) bool) []received {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var got []received
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("deadline passed; got %d messages: %v", len(got), summary(got))
		}
		r, err := c.next(left)
		if err != nil {
			c.t.Fatalf("read: %v; got so far: %v", err, summary(got))
		}
		got = append(got, r)
		if stop(r) {
			return got
		}
	}
}

func summary(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.ch)+":"+r.m.Type())
	}
	return out
}

// execute runs code and returns every message of it, up to both the reply
// and the idle status (what JupyterLab waits for).
func (c *client) execute(code string) (reply *jmsg.Message, msgs []received) {
	c.t.Helper()
	req := c.request(jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{Code: code, UserExpressions: map[string]string{}, AllowStdin: true, StoreHistory: true})
	c.send(jmsg.Shell, req)
	return c.finish(req, 60*time.Second)
}

// finish reads the messages of req until its reply and idle have come.
func (c *client) finish(req *jmsg.Message, d time.Duration) (reply *jmsg.Message, msgs []received) {
	c.t.Helper()
	idle := false
	msgs = c.until(d, func(r received) bool {
		if r.m.ParentID() != req.Header.MsgID {
			return false
		}
		if r.ch == jmsg.Shell {
			reply = r.m
		}
		if r.ch == jmsg.IOPub && r.m.Type() == jmsg.Status && strings.Contains(string(r.m.Content), `"idle"`) {
			idle = true
		}
		return reply != nil && idle
	})
	return reply, msgs
}

func streamText(msgs []received, parent string) string {
	var b strings.Builder
	for _, r := range msgs {
		if r.ch == jmsg.IOPub && r.m.Type() == jmsg.Stream && r.m.ParentID() == parent {
			var s jmsg.StreamContent
			json.Unmarshal(r.m.Content, &s)
			b.WriteString(s.Text)
		}
	}
	return b.String()
}

func newSession() string { return uuid.NewString() }
