// Package connfile creates, writes, reads and validates the connection
// information of one Jupyter kernel: the JSON "connection file" passed to the
// kernel with -f, naming its transport, address, five channel ports and the
// HMAC key that signs every message.
//
// The format and the endpoint rules follow jupyter_client
// (jupyter_client.connect.write_connection_file and _make_url), so a file
// written here is accepted by ipykernel and any other kernel, and a file
// written by Jupyter can be read here. The key is a secret that lets its
// holder run code as the kernel's user, which is why files are created 0600
// and Info's String method hides it.
package connfile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// Transports.
const (
	TCP = "tcp"
	IPC = "ipc"
)

// DefaultSignatureScheme is jupyter_client's default, used when a file
// has no signature_scheme.
const DefaultSignatureScheme = "hmac-sha256"

// MaxIPCPath is the longest path a unix socket can bind on Linux:
// sockaddr_un.sun_path is 108 bytes including the terminating NUL. Longer ipc
// endpoints fail only when the kernel binds, with an obscure error, so
// Validate rejects them up front.
const MaxIPCPath = 107

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid connection info")

// Info is the content of a connection file.
type Info struct {
	Transport       string `json:"transport"`
	IP              string `json:"ip"`
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name,omitempty"`
}

// Channel names one of the five kernel sockets; it is the message model's
// channel, so a caller never converts between two names for one thing.
type Channel = jmsg.Channel

// The kernel channels, named as in the *_port fields and the protocol docs.
const (
	Shell   = jmsg.Shell
	IOPub   = jmsg.IOPub
	Stdin   = jmsg.Stdin
	Control = jmsg.Control
	HB      = jmsg.HB
)

// Channels returns the five channels in connection-file order.
func Channels() []Channel { return []Channel{Shell, IOPub, Stdin, Control, HB} }

// Port returns the port of channel ch.
func (i Info) Port(ch Channel) (int, error) {
	switch ch {
	case Shell:
		return i.ShellPort, nil
	case IOPub:
		return i.IOPubPort, nil
	case Stdin:
		return i.StdinPort, nil
	case Control:
		return i.ControlPort, nil
	case HB:
		return i.HBPort, nil
	}
	return 0, fmt.Errorf("unknown channel %q", ch)
}

// Endpoint returns the ZeroMQ endpoint of channel ch, e.g.
// "tcp://127.0.0.1:5555" or "ipc:///run/k/kernel-1".
//
// ipc endpoints are "<ip>-<port>", jupyter_client's rule, which is also what
// the kernel binds. For tcp, jupyter_client writes "tcp://ip:port" even for
// IPv6; libzmq accepts that but also "[::1]:port", while the pure-Go zmq4
// library splits with net.SplitHostPort and accepts only the bracketed form,
// so the bracketed form is used. The connection file itself keeps the bare
// address in "ip", as kernels expect.
func (i Info) Endpoint(ch Channel) (string, error) {
	port, err := i.Port(ch)
	if err != nil {
		return "", err
	}
	switch i.Transport {
	case TCP:
		return "tcp://" + net.JoinHostPort(i.IP, strconv.Itoa(port)), nil
	case IPC:
		return "ipc://" + ipcPath(i.IP, port), nil
	}
	return "", fmt.Errorf("%w: unknown transport %q", ErrInvalid, i.Transport)
}

func ipcPath(ip string, port int) string { return ip + "-" + strconv.Itoa(port) }

// String describes i without the key, so that logging an Info with %v
// cannot leak the secret.
func (i Info) String() string {
	key := "none"
	if i.Key != "" {
		key = "redacted"
	}
	return fmt.Sprintf("{%s %s shell=%d iopub=%d stdin=%d control=%d hb=%d key=%s %s kernel=%q}",
		i.Transport, i.IP, i.ShellPort, i.IOPubPort, i.StdinPort, i.ControlPort, i.HBPort,
		key, i.SignatureScheme, i.KernelName)
}

// NewKey returns a fresh message-signing key: 32 random bytes, hex encoded.
// jupyter_client uses a UUID4 (122 random bits); 256 bits matches the
// HMAC-SHA256 block it keys.
func NewKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate connection key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NewIPC returns connection info for the ipc transport with
// IP = <dir>/kernel, so channel endpoints are ipc://<dir>/kernel-<port>.
//
// Ports are numbered from 1 upwards, skipping numbers whose socket file
// already exists, exactly as jupyter_client does; in a fresh directory they
// are 1..5. dir is made absolute because the kernel may run in another
// working directory. dir need not exist yet; the caller creates it (0700)
// before starting the kernel.
func NewIPC(dir string) (Info, error) {
	if dir == "" {
		return Info{}, fmt.Errorf("new ipc connection: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Info{}, fmt.Errorf("new ipc connection: %w", err)
	}
	key, err := NewKey()
	if err != nil {
		return Info{}, err
	}
	info := Info{Transport: IPC, IP: filepath.Join(abs, "kernel"), Key: key, SignatureScheme: DefaultSignatureScheme}
	n := 1
	for _, p := range []*int{&info.ShellPort, &info.IOPubPort, &info.StdinPort, &info.ControlPort, &info.HBPort} {
		for exists(ipcPath(info.IP, n)) {
			n++
		}
		*p = n
		n++
	}
	if err := info.Validate(); err != nil {
		return Info{}, fmt.Errorf("new ipc connection in %s: %w", abs, err)
	}
	return info, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Validate checks that i can be used to start or reach a kernel: a known
// transport, a usable address, five distinct ports in 1..65535, ipc socket
// paths within MaxIPCPath, and an hmac-<hash> signature scheme. An empty key
// is valid: it means messages are not signed. All problems are reported,
// each wrapping ErrInvalid.
func (i Info) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}

	switch i.Transport {
	case TCP:
		if i.IP == "" {
			bad("empty ip")
		} else if net.ParseIP(i.IP) == nil && !hostname.MatchString(i.IP) {
			bad("ip %q is neither an IP address nor a host name", i.IP)
		}
	case IPC:
		if i.IP == "" {
			bad("empty ip (the ipc socket path prefix)")
		} else if strings.IndexByte(i.IP, 0) >= 0 {
			bad("ip (the ipc socket path prefix) contains a NUL byte")
		}
	default:
		bad("transport %q, want %q or %q", i.Transport, TCP, IPC)
	}

	seen := make(map[int]Channel)
	for _, ch := range Channels() {
		port, _ := i.Port(ch)
		if port < 1 || port > 65535 {
			bad("%s_port %d out of range 1..65535", ch, port)
			continue
		}
		if other, dup := seen[port]; dup {
			bad("%s_port and %s_port are both %d", other, ch, port)
			continue
		}
		seen[port] = ch
	}
	if i.Transport == IPC && i.IP != "" && len(seen) > 0 {
		// One report, for the longest socket path (the highest port), is
		// enough.
		maxPort := 0
		for port := range seen {
			maxPort = max(maxPort, port)
		}
		if longest := ipcPath(i.IP, maxPort); len(longest) > MaxIPCPath {
			bad("ipc socket path %s is %d bytes, longer than the %d a unix socket allows; use a shorter directory", longest, len(longest), MaxIPCPath)
		}
	}

	if !signatureScheme.MatchString(i.SignatureScheme) {
		bad("signature_scheme %q, want hmac-<hash> such as %q", i.SignatureScheme, DefaultSignatureScheme)
	}
	return errors.Join(errs...)
}

// hostname is a loose DNS name check; its job is to reject things like "*",
// URLs or paths, not to enforce RFC 1123.
var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// signatureScheme accepts jupyter_client's "hmac-" + any hashlib name
// (sha256, sha512, sha3_256, blake2b, ...); whether the gateway implements
// the hash is for the signing code to decide.
var signatureScheme = regexp.MustCompile(`^hmac-[a-z0-9_-]+$`)

// Write creates the connection file at path with mode 0600 and writes i as
// JSON. It refuses to write invalid info.
//
// The file is created with O_CREATE|O_EXCL so that an existing file — another
// kernel's, or a symlink planted in a shared directory — is never
// overwritten or followed; the error then wraps fs.ErrExist. Atomic replace
// via rename is unnecessary: the only reader is the kernel, started after
// Write returns. A failed write removes the partial file. The parent
// directory must exist.
func Write(path string, i Info) error {
	if err := i.Validate(); err != nil {
		return fmt.Errorf("write connection file %s: %w", path, err)
	}
	data, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return fmt.Errorf("write connection file %s: %w", path, err)
	}
	data = append(data, '\n')
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write connection file: %w", err)
	}
	// Chmod as well: the umask only ever removes bits, but an unusual umask
	// (e.g. 0400) could leave the file unreadable by its owner.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write connection file %s: %w", path, err)
	}
	return nil
}

// Read parses and validates a connection file. Missing transport, tcp ip
// and signature_scheme get jupyter_client's defaults (tcp, 127.0.0.1,
// hmac-sha256), and transport is matched case-insensitively as jupyter's
// CaselessStrEnum does.
func Read(path string) (Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Info{}, fmt.Errorf("read connection file: %w", err)
	}
	var i Info
	if err := json.Unmarshal(data, &i); err != nil {
		return Info{}, fmt.Errorf("read connection file %s: %w", path, err)
	}
	i.Transport = strings.ToLower(i.Transport)
	if i.Transport == "" {
		i.Transport = TCP
	}
	if i.Transport == TCP && i.IP == "" {
		i.IP = "127.0.0.1"
	}
	if i.SignatureScheme == "" {
		i.SignatureScheme = DefaultSignatureScheme
	}
	if err := i.Validate(); err != nil {
		return Info{}, fmt.Errorf("read connection file %s: %w", path, err)
	}
	return i, nil
}
