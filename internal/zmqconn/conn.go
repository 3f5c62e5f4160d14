// Package zmqconn holds the live ZeroMQ sockets to one kernel: shell,
// control and stdin (DEALER), iopub (SUB) and heartbeat (REQ). It is the only
// package that imports the ZMQ library, so the library can be swapped (for a
// cgo libzmq binding, say) without touching the codec or the core.
//
// A Conn belongs to one kernel incarnation: go-zeromq sockets do not recover
// after their peer restarts, so the kernel package closes the Conn and dials
// a new one on every restart rather than relying on reconnects.
package zmqconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/kernelgate/kernelgate/internal/connfile"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/zmqwire"
)

// ErrClosed is returned by operations on a closed Conn.
var ErrClosed = errors.New("zmqconn: connection closed")

// Incoming is one message received from the kernel, tagged with its channel.
type Incoming struct {
	Channel jmsg.Channel
	Msg     *jmsg.Message
}

// Options configures a Conn.
type Options struct {
	Signer *zmqwire.Signer
	Limits zmqwire.Limits
	// Buffer is the depth of the Incoming channel. The iopub reader does
	// nothing but decode and enqueue, so a burst from the kernel lands here
	// instead of overflowing go-zeromq's small internal queue, where the
	// kernel's PUB socket would drop it.
	Buffer int
	// DialRetry is the pause between dial attempts while the kernel has
	// not bound its ports yet.
	DialRetry time.Duration
	Logger    *slog.Logger
}

// Conn is the socket set to one kernel. Send is safe for concurrent use;
// Incoming has exactly one reader (the kernel's event loop).
type Conn struct {
	info connfile.Info
	opts Options
	log  *slog.Logger

	shell, control, stdin *dealer
	iopub                 zmq4.Socket
	// identity is shared by the shell and stdin DEALERs: ipykernel routes an
	// input_request to the identity that sent the execute_request on shell,
	// so a stdin socket with any other identity never sees the prompt.
	identity zmq4.SocketIdentity

	in   chan Incoming
	stop chan struct{}
	wg   sync.WaitGroup // the reader goroutines

	// The heartbeat socket is a DEALER rather than jupyter_client's REQ: a
	// REQ that lost one reply is stuck for good and redialling a frozen
	// kernel blocks in the ZMTP handshake, while a DEALER just sends numbered
	// pings and ignores stale echoes.
	hb     zmq4.Socket
	hbEcho chan []byte
	hbMu   sync.Mutex // serialises Ping; guards hbSeq
	hbSeq  uint64

	closeOnce sync.Once
}

// dealer is one DEALER socket. go-zeromq sockets may be used from several
// goroutines, but a message's frames must go out together, so sends are
// serialised by mu; the socket's single reader is the Conn's goroutine.
type dealer struct {
	mu   sync.Mutex
	sock zmq4.Socket
}

// Dial connects every channel of the kernel described by info and returns
// once all sockets are connected. It retries while the kernel has not bound
// its ports yet, until ctx ends.
func Dial(ctx context.Context, info connfile.Info, opts Options) (*Conn, error) {
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.DialRetry <= 0 {
		opts.DialRetry = 10 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		info:     info,
		opts:     opts,
		log:      opts.Logger,
		in:       make(chan Incoming, opts.Buffer),
		hbEcho:   make(chan []byte, 16),
		stop:     make(chan struct{}),
		identity: zmq4.SocketIdentity(rand.Text()),
	}
	var err error
	// iopub first: subscribing early narrows the slow-joiner window.
	if c.iopub, err = c.dial(ctx, zmq4.NewSub, jmsg.IOPub); err != nil {
		return nil, err
	}
	if err := c.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		c.closeSockets()
		return nil, fmt.Errorf("subscribe iopub: %w", err)
	}
	for _, d := range []struct {
		ch  jmsg.Channel
		dst **dealer
	}{{jmsg.Shell, &c.shell}, {jmsg.Control, &c.control}, {jmsg.Stdin, &c.stdin}} {
		s, err := c.dial(ctx, zmq4.NewDealer, d.ch)
		if err != nil {
			c.closeSockets()
			return nil, err
		}
		*d.dst = &dealer{sock: s}
	}
	if c.hb, err = c.dial(ctx, zmq4.NewDealer, jmsg.HB); err != nil {
		c.closeSockets()
		return nil, err
	}
	c.wg.Add(5)
	go c.readHeartbeat()
	go c.read(jmsg.IOPub, c.iopub)
	go c.read(jmsg.Shell, c.shell.sock)
	go c.read(jmsg.Control, c.control.sock)
	go c.read(jmsg.Stdin, c.stdin.sock)
	return c, nil
}

type newSocket func(context.Context, ...zmq4.Option) zmq4.Socket

// dial creates a socket and connects it to the channel's endpoint. go-zeromq
// dials synchronously and retries on its own; closing the socket is the only
// way to stop it early, so a watcher closes it when ctx ends.
func (c *Conn) dial(ctx context.Context, mk newSocket, ch jmsg.Channel) (zmq4.Socket, error) {
	ep, err := c.info.Endpoint(ch)
	if err != nil {
		return nil, err
	}
	for {
		s, err := c.dialOnce(ctx, mk, ep)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s %s: %w (last error: %v)", ch, ep, ctx.Err(), err)
		}
		// The connection was made but the ZMTP greeting failed: the kernel
		// was still setting up the socket, or (tcp) something else holds
		// the port. Try again with a fresh socket until ctx ends.
		select {
		case <-time.After(c.opts.DialRetry):
		case <-ctx.Done():
		}
	}
}

func (c *Conn) dialOnce(ctx context.Context, mk newSocket, ep string) (zmq4.Socket, error) {
	s := mk(context.Background(),
		zmq4.WithID(c.identity),
		zmq4.WithDialerRetry(c.opts.DialRetry),
		zmq4.WithDialerMaxRetries(-1),
		zmq4.WithLogger(log.New(io.Discard, "", 0)),
	)
	done := make(chan error, 1)
	go func() { done <- s.Dial(ep) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		err = ctx.Err()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// read is the single reader of one socket: it decodes and enqueues, and
// never does anything slower, so the kernel's bursts are not dropped.
func (c *Conn) read(ch jmsg.Channel, s zmq4.Socket) {
	defer c.wg.Done()
	for {
		raw, err := s.Recv()
		if err != nil {
			select {
			case <-c.stop:
			default:
				// EOF: the kernel went away. Death is detected from the process
				// and heartbeats, not from here (go-zeromq reports it once).
				c.log.Debug("zmq recv ended", "channel", ch, "err", err)
			}
			return
		}
		m, err := zmqwire.Decode(raw.Frames, c.opts.Signer, c.opts.Limits)
		if err != nil {
			// The kernel is untrusted input: drop what does not verify.
			c.log.Warn("dropped message from kernel", "channel", ch, "err", err)
			continue
		}
		select {
		case c.in <- Incoming{Channel: ch, Msg: m}:
		case <-c.stop:
			return
		}
	}
}

// Incoming delivers every message the kernel sends, from all channels.
func (c *Conn) Incoming() <-chan Incoming { return c.in }

// Send encodes, signs and sends m on shell, control or stdin.
func (c *Conn) Send(ch jmsg.Channel, m *jmsg.Message) error {
	var d *dealer
	switch ch {
	case jmsg.Shell:
		d = c.shell
	case jmsg.Control:
		d = c.control
	case jmsg.Stdin:
		d = c.stdin
	default:
		return fmt.Errorf("send on %s: not a request channel", ch)
	}
	frames, err := zmqwire.Encode(m, c.opts.Signer)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Header.MsgType, err)
	}
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.sock.SendMulti(zmq4.NewMsgFrom(frames...)); err != nil {
		return fmt.Errorf("send %s on %s: %w", m.Header.MsgType, ch, err)
	}
	return nil
}

// readHeartbeat forwards heartbeat echoes to Ping, dropping them when
// nobody waits (a late echo of a ping that already timed out).
func (c *Conn) readHeartbeat() {
	defer c.wg.Done()
	for {
		msg, err := c.hb.Recv()
		if err != nil {
			return
		}
		if len(msg.Frames) == 0 {
			continue
		}
		select {
		case c.hbEcho <- msg.Frames[len(msg.Frames)-1]:
		default:
		}
	}
}

// Ping sends one numbered heartbeat and waits for its echo until ctx ends.
func (c *Conn) Ping(ctx context.Context) error {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	c.hbSeq++
	want := []byte("ping " + strconv.FormatUint(c.hbSeq, 10))
	if err := c.hb.Send(zmq4.NewMsg(want)); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	for {
		select {
		case got := <-c.hbEcho:
			if bytes.Equal(got, want) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("heartbeat: %w", ctx.Err())
		case <-c.stop:
			return ErrClosed
		}
	}
}

// Close closes every socket and waits for the readers to exit.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.closeSockets()
		c.wg.Wait()
	})
	return nil
}

func (c *Conn) closeSockets() {
	for _, s := range []zmq4.Socket{c.iopub, c.hb} {
		if s != nil {
			s.Close()
		}
	}
	for _, d := range []*dealer{c.shell, c.control, c.stdin} {
		if d != nil {
			d.sock.Close()
		}
	}
}
