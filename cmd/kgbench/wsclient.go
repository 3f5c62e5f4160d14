package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/wsproto"
)

// cellTimeout bounds one cell (a 10 MB flood through a slow peer included):
// a hung peer must fail the benchmark, not stall it.
const cellTimeout = 2 * time.Minute

// cellResult is what a client saw of one execution.
type cellResult struct {
	Elapsed     time.Duration // from sending the request to the cell's end
	ImageAfter  time.Duration // from sending to the first PNG image; 0 if none
	WireBytes   int           // WebSocket payload bytes received about the cell
	StreamBytes int           // stdout/stderr text received
	Stream      []streamChunk
}

// streamChunk is a piece of printed text and when it arrived (Unix ns,
// stamped as the frame was read, before decoding).
type streamChunk struct {
	At   int64
	Text string
}

// client runs cells in one kernel through one gateway API.
type client interface {
	Run(ctx context.Context, code string) (cellResult, error)
	Close()
}

// wireMsg is the part of a Jupyter message a client needs to route it.
type wireMsg struct {
	Channel string
	Type    string // header.msg_type
	Parent  string // parent_header.msg_id
	Content json.RawMessage
}

// decodeServerFrame decodes a frame a server sends on a kernel's channels
// WebSocket into what the benchmark routes by.
func decodeServerFrame(data []byte, binaryFrame, v1 bool) (wireMsg, error) {
	ch, m, err := wsproto.DecodeServerFrame(data, binaryFrame, v1)
	if err != nil {
		return wireMsg{}, err
	}
	return wireMsg{Channel: string(ch), Type: m.Type(), Parent: m.ParentID(), Content: m.Content}, nil
}

// channelsClient speaks the Jupyter Server kernel WebSocket
// (/api/kernels/{id}/channels), as JupyterLab does.
type channelsClient struct {
	ws      *websocket.Conn
	v1      bool
	session string
}

func dialChannels(ctx context.Context, s *server, kernelID string, v1 bool) (*channelsClient, error) {
	session := uuid.NewString()
	opts := &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled}
	if v1 {
		opts.Subprotocols = []string{wsproto.SubprotocolV1}
	}
	// Long: Jupyter Server holds the handshake until the kernel answers its
	// kernel_info nudge, which takes a while for kernels starting together.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, s.WS("/api/kernels/"+kernelID+"/channels?session_id="+session), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: dial channels: %w", s.Name, err)
	}
	ws.SetReadLimit(1 << 30)
	if v1 && ws.Subprotocol() != wsproto.SubprotocolV1 {
		ws.CloseNow()
		return nil, fmt.Errorf("%s: did not accept the v1 subprotocol", s.Name)
	}
	return &channelsClient{ws: ws, v1: v1, session: session}, nil
}

func (c *channelsClient) Close() { c.ws.CloseNow() }

func (c *channelsClient) send(ctx context.Context, ch jmsg.Channel, msgType string, content any) (string, error) {
	m, err := jmsg.New(msgType, c.session, "kgbench", nil, content)
	if err != nil {
		return "", err
	}
	var data []byte
	typ := websocket.MessageBinary
	if c.v1 {
		data, err = wsproto.EncodeV1(ch, m)
	} else {
		var bin bool
		data, bin, err = wsproto.EncodeLegacy(ch, m)
		if !bin {
			typ = websocket.MessageText
		}
	}
	if err != nil {
		return "", err
	}
	return m.Header.MsgID, c.ws.Write(ctx, typ, data)
}

// recv reads one frame; at is when it had arrived, before decoding.
func (c *channelsClient) recv(ctx context.Context) (m wireMsg, n int, at time.Time, err error) {
	typ, data, err := c.ws.Read(ctx)
	at = time.Now()
	if err != nil {
		return m, 0, at, err
	}
	m, err = decodeServerFrame(data, typ == websocket.MessageBinary, c.v1)
	return m, len(data), at, err
}

// KernelInfo sends kernel_info_request and waits for its reply: what
// JupyterLab waits for before it calls a kernel ready.
func (c *channelsClient) KernelInfo(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	id, err := c.send(ctx, jmsg.Shell, jmsg.KernelInfoRequest, struct{}{})
	if err != nil {
		return err
	}
	for {
		m, _, _, err := c.recv(ctx)
		if err != nil {
			return fmt.Errorf("kernel_info: %w", err)
		}
		if m.Parent == id && m.Type == jmsg.KernelInfoReply {
			return nil
		}
	}
}

func (c *channelsClient) Run(ctx context.Context, code string) (cellResult, error) {
	var r cellResult
	ctx, cancel := context.WithTimeout(ctx, cellTimeout)
	defer cancel()
	began := time.Now()
	id, err := c.send(ctx, jmsg.Shell, jmsg.ExecuteRequest, jmsg.ExecuteRequestContent{
		Code: code, StoreHistory: true, UserExpressions: map[string]string{}})
	if err != nil {
		return r, err
	}
	gotReply, gotIdle := false, false
	status := ""
	for !gotReply || !gotIdle {
		m, n, at, err := c.recv(ctx)
		if err != nil {
			return r, fmt.Errorf("execute: %w", err)
		}
		if m.Parent != id {
			continue
		}
		r.WireBytes += n
		switch m.Type {
		case jmsg.ExecuteReply:
			gotReply = true
			var rep struct{ Status, Ename, Evalue string }
			json.Unmarshal(m.Content, &rep)
			status = rep.Status
			if status != "ok" {
				status += ": " + rep.Ename + ": " + rep.Evalue
			}
		case jmsg.Status:
			var st jmsg.StatusContent
			if json.Unmarshal(m.Content, &st) == nil && st.ExecutionState == "idle" {
				gotIdle = true
			}
		case jmsg.Stream:
			var sc jmsg.StreamContent
			if err := json.Unmarshal(m.Content, &sc); err == nil {
				r.StreamBytes += len(sc.Text)
				r.Stream = append(r.Stream, streamChunk{At: at.UnixNano(), Text: sc.Text})
			}
		case jmsg.DisplayData:
			if r.ImageAfter == 0 && hasPNG(m.Content) {
				r.ImageAfter = at.Sub(began)
			}
		}
	}
	r.Elapsed = time.Since(began)
	if status != "ok" {
		return r, fmt.Errorf("cell %q: %s", short(code), status)
	}
	return r, nil
}

func hasPNG(content json.RawMessage) bool {
	var d struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	return json.Unmarshal(content, &d) == nil && d.Data["image/png"] != nil
}

// flowClient speaks kernelgate's AdeloopFlow /ws protocol
// (docs/protocol.md): each connection gets its own session and kernel.
type flowClient struct {
	ws   *websocket.Conn
	cell int
}

func dialFlow(ctx context.Context, s *server) (*flowClient, error) {
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, s.WS("/ws"), &websocket.DialOptions{
		HTTPHeader: http.Header{}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dial /ws: %w", err)
	}
	ws.SetReadLimit(1 << 30)
	c := &flowClient{ws: ws}
	if _, _, err := c.waitFor(dctx, func(m flowMsg) bool { return m.Type == "connection_established" }); err != nil {
		ws.CloseNow()
		return nil, err
	}
	return c, nil
}

func (c *flowClient) Close() { c.ws.CloseNow() }

// flowMsg holds the fields of a /ws server message kgbench looks at.
type flowMsg struct {
	Type    string          `json:"type"`
	CellID  string          `json:"cell_id"`
	Content string          `json:"content"`
	IsLast  bool            `json:"is_last"`
	Plot    string          `json:"plot"`
	Status  string          `json:"status"`
	Error   json.RawMessage `json:"error"`
}

func (c *flowClient) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// waitFor reads until done says so; it returns the bytes read and the
// message that ended the wait.
func (c *flowClient) waitFor(ctx context.Context, done func(flowMsg) bool) (flowMsg, int, error) {
	n := 0
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return flowMsg{}, n, err
		}
		n += len(data)
		var m flowMsg
		if err := json.Unmarshal(data, &m); err != nil {
			return m, n, fmt.Errorf("/ws: %w", err)
		}
		if m.Type == "error" && m.CellID == "" {
			return m, n, fmt.Errorf("/ws error: %s", data)
		}
		if done(m) {
			return m, n, nil
		}
	}
}

// StartSession starts the connection's session and waits until its kernel
// runs (kernel_session_started).
func (c *flowClient) StartSession(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancel()
	if err := c.write(ctx, map[string]string{"type": "start_kernel_session"}); err != nil {
		return err
	}
	_, _, err := c.waitFor(ctx, func(m flowMsg) bool { return m.Type == "kernel_session_started" })
	return err
}

func (c *flowClient) Run(ctx context.Context, code string) (cellResult, error) {
	var r cellResult
	ctx, cancel := context.WithTimeout(ctx, cellTimeout)
	defer cancel()
	c.cell++
	id := "b" + strconv.Itoa(c.cell)
	began := time.Now()
	if err := c.write(ctx, map[string]string{"type": "execute", "cell_id": id, "code": code}); err != nil {
		return r, err
	}
	for {
		_, data, err := c.ws.Read(ctx)
		at := time.Now()
		if err != nil {
			return r, fmt.Errorf("/ws: %w", err)
		}
		var m flowMsg
		if err := json.Unmarshal(data, &m); err != nil {
			return r, fmt.Errorf("/ws: %w", err)
		}
		if m.CellID != id {
			continue
		}
		r.WireBytes += len(data)
		switch m.Type {
		case "stream_output":
			if !m.IsLast {
				r.StreamBytes += len(m.Content)
				r.Stream = append(r.Stream, streamChunk{At: at.UnixNano(), Text: m.Content})
			}
		case "display_output":
			if r.ImageAfter == 0 && strings.HasPrefix(m.Plot, "data:image/png") {
				r.ImageAfter = at.Sub(began)
			}
		case "execution_result":
			r.Elapsed = time.Since(began)
			if m.Status != "ok" {
				return r, fmt.Errorf("cell %q: status %s: %s", short(code), m.Status, m.Error)
			}
			return r, nil
		case "execution_error", "error":
			return r, fmt.Errorf("cell %q: %s", short(code), data)
		}
	}
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
