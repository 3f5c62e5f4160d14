package connfile

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
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
func NewTCP(ip string) (Info, *Reservation, error) { return newTCP(ip, nil) }

// Ports hands out kernel ports like NewTCP and keeps each one out of
// circulation for a while after handing it out. Between Release and the
// kernel's own bind (a second of Python start-up) the operating system may
// give a released port to the next kernel being started; a server that
// starts kernels concurrently must therefore remember what it gave.
type Ports struct {
	hold time.Duration

	mu     sync.Mutex // guards recent
	recent map[int]time.Time
}

// NewPorts returns an allocator that will not hand out a port again within
// hold of handing it out.
func NewPorts(hold time.Duration) *Ports {
	return &Ports{hold: hold, recent: make(map[int]time.Time)}
}

// NewTCP is the package NewTCP, skipping ports handed out recently.
func (p *Ports) NewTCP(ip string) (Info, *Reservation, error) {
	return newTCP(ip, p)
}

// take records ports as handed out unless one of them was handed out
// within hold; it reports whether it took them.
func (p *Ports) take(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for q, t := range p.recent {
		if now.Sub(t) > p.hold {
			delete(p.recent, q)
		}
	}
	if _, busy := p.recent[port]; busy {
		return false
	}
	p.recent[port] = now
	return true
}

func newTCP(ip string, avoid *Ports) (Info, *Reservation, error) {
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
	// Listeners on ports we may not use stay open until we are done, so the
	// operating system does not offer the same port again at once.
	skipped := &Reservation{}
	defer skipped.Release()
	var ports [5]int
	for k := 0; k < len(ports); {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			r.Release()
			return Info{}, nil, fmt.Errorf("new tcp connection: reserve port on %s: %w", ip, err)
		}
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			l.Close()
			r.Release()
			return Info{}, nil, errors.New("new tcp connection: listener has no tcp address")
		}
		if avoid != nil && !avoid.take(addr.Port) {
			skipped.listeners = append(skipped.listeners, l)
			if len(skipped.listeners) > 1000 {
				r.Release()
				return Info{}, nil, fmt.Errorf("new tcp connection: no free port on %s that was not handed out in the last %s", ip, avoid.hold)
			}
			continue
		}
		r.listeners = append(r.listeners, l)
		ports[k] = addr.Port
		k++
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
