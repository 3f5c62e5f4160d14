package connfile

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// Reservation holds the listening sockets that keep NewTCP's ports taken.
//
// jupyter_client picks ports by binding to port 0 and closing the socket at
// once, leaving a window in which another process (or another kernel being
// started concurrently by the gateway) can be handed the same port, and the
// kernel then fails to bind. Holding a listener on each port closes that
// window everywhere except the short gap between Release and the kernel's
// own bind, so callers should Release immediately before spawning the
// kernel. Closing a listener that never accepted a connection leaves no
// TIME_WAIT state, so the kernel can bind the port straight away.
type Reservation struct {
	once      sync.Once
	listeners []net.Listener
}

// Release closes the held listeners, making the ports available to the
// kernel. It is idempotent, safe for concurrent use and safe on a nil
// *Reservation, so it can be both deferred and called before spawning.
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	r.once.Do(func() {
		for _, l := range r.listeners {
			_ = l.Close()
		}
	})
}

// NewTCP returns tcp connection info for a kernel on ip (default 127.0.0.1),
// with a fresh key and five distinct free ports that stay reserved until
// the returned Reservation is released. ip must be an IP address, not a host
// name: the kernel binds to it, and a name could resolve to a different
// address family than the one the ports were reserved on.
func NewTCP(ip string) (Info, *Reservation, error) {
	if ip == "" {
		ip = "127.0.0.1"
	}
	if net.ParseIP(ip) == nil {
		return Info{}, nil, fmt.Errorf("new tcp connection: %w: ip %q is not an IP address", ErrInvalid, ip)
	}
	key, err := NewKey()
	if err != nil {
		return Info{}, nil, err
	}
	r := &Reservation{}
	var ports [5]int
	for k := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			r.Release()
			return Info{}, nil, fmt.Errorf("new tcp connection: reserve port on %s: %w", ip, err)
		}
		r.listeners = append(r.listeners, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			r.Release()
			return Info{}, nil, errors.New("new tcp connection: listener has no tcp address")
		}
		ports[k] = addr.Port
	}
	info := Info{
		Transport:       TCP,
		IP:              ip,
		ShellPort:       ports[0],
		IOPubPort:       ports[1],
		StdinPort:       ports[2],
		ControlPort:     ports[3],
		HBPort:          ports[4],
		Key:             key,
		SignatureScheme: DefaultSignatureScheme,
	}
	return info, r, nil
}
