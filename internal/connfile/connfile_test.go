package connfile

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ports(i Info) []int {
	return []int{i.ShellPort, i.IOPubPort, i.StdinPort, i.ControlPort, i.HBPort}
}

func TestNewTCPReservesPorts(t *testing.T) {
	info, res, err := NewTCP("")
	if err != nil {
		t.Fatalf("NewTCP: %v", err)
	}
	defer res.Release()

	if info.Transport != TCP || info.IP != "127.0.0.1" || info.SignatureScheme != DefaultSignatureScheme || len(info.Key) != 64 {
		t.Errorf("NewTCP info = %+v (key len %d)", info, len(info.Key))
	}
	if err := info.Validate(); err != nil {
		t.Errorf("NewTCP info invalid: %v", err)
	}
	seen := map[int]bool{}
	for _, p := range ports(info) {
		if seen[p] {
			t.Errorf("port %d reserved twice: %v", p, ports(info))
		}
		seen[p] = true
	}

	// While reserved, nobody else can listen on the ports.
	for _, p := range ports(info) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			l.Close()
			t.Errorf("port %d could be listened on while reserved", p)
		}
	}

	// Release is idempotent and concurrency-safe.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(res.Release)
	}
	wg.Wait()
	res.Release()

	// After Release the kernel can bind them.
	for _, p := range ports(info) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d not free after Release: %v", p, err)
			continue
		}
		l.Close()
	}
}

func TestNewTCPIPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	l.Close()
	info, res, err := NewTCP("::1")
	if err != nil {
		t.Fatalf("NewTCP(::1): %v", err)
	}
	defer res.Release()
	ep, err := info.Endpoint(Shell)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("tcp://[::1]:%d", info.ShellPort); ep != want {
		t.Errorf("Endpoint = %q, want %q", ep, want)
	}
}

func TestNewTCPBadIP(t *testing.T) {
	var nilRes *Reservation
	nilRes.Release() // must not panic
	for _, ip := range []string{"localhost", "*", "1.2.3"} {
		_, res, err := NewTCP(ip)
		if err == nil || res != nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("NewTCP(%q) = %v, %v; want ErrInvalid", ip, res, err)
		}
	}
}

func TestNewIPC(t *testing.T) {
	dir := t.TempDir()
	info, err := NewIPC(dir)
	if err != nil {
		t.Fatalf("NewIPC: %v", err)
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5}, ports(info)); diff != "" {
		t.Errorf("ipc ports mismatch (-want +got):\n%s", diff)
	}
	if info.Transport != IPC || info.IP != filepath.Join(dir, "kernel") || len(info.Key) != 64 {
		t.Errorf("NewIPC info = %+v", info)
	}

	// Like jupyter_client, numbers whose socket file exists are skipped.
	for _, n := range []string{"1", "3"} {
		if err := os.WriteFile(filepath.Join(dir, "kernel-"+n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	info, err = NewIPC(dir)
	if err != nil {
		t.Fatalf("NewIPC: %v", err)
	}
	if diff := cmp.Diff([]int{2, 4, 5, 6, 7}, ports(info)); diff != "" {
		t.Errorf("ipc ports with stale sockets mismatch (-want +got):\n%s", diff)
	}

	long := "/" + strings.Repeat("d", 100)
	if _, err := NewIPC(long); err == nil || !strings.Contains(err.Error(), "longer than the 107") {
		t.Errorf("NewIPC(long dir) error = %v, want path length error", err)
	}
	if _, err := NewIPC(""); err == nil {
		t.Error("NewIPC(\"\") succeeded")
	}
}

func TestNewIPCRelative(t *testing.T) {
	info, err := NewIPC("rel")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(info.IP) {
		t.Errorf("NewIPC(rel).IP = %q, want absolute", info.IP)
	}
}

func TestEndpoint(t *testing.T) {
	tcp := Info{Transport: TCP, IP: "127.0.0.1", ShellPort: 5555, IOPubPort: 5556, StdinPort: 5557, ControlPort: 5558, HBPort: 5559}
	ipc := Info{Transport: IPC, IP: "/run/k/kernel", ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5}
	tests := []struct {
		info Info
		ch   Channel
		want string
	}{
		{tcp, Shell, "tcp://127.0.0.1:5555"},
		{tcp, IOPub, "tcp://127.0.0.1:5556"},
		{tcp, Stdin, "tcp://127.0.0.1:5557"},
		{tcp, Control, "tcp://127.0.0.1:5558"},
		{tcp, HB, "tcp://127.0.0.1:5559"},
		{Info{Transport: TCP, IP: "::1", ShellPort: 9}, Shell, "tcp://[::1]:9"},
		{Info{Transport: TCP, IP: "kernels.example", ShellPort: 9}, Shell, "tcp://kernels.example:9"},
		{ipc, Shell, "ipc:///run/k/kernel-1"},
		{ipc, IOPub, "ipc:///run/k/kernel-2"},
		{ipc, Stdin, "ipc:///run/k/kernel-3"},
		{ipc, Control, "ipc:///run/k/kernel-4"},
		{ipc, HB, "ipc:///run/k/kernel-5"},
	}
	for _, tt := range tests {
		got, err := tt.info.Endpoint(tt.ch)
		if err != nil || got != tt.want {
			t.Errorf("%s Endpoint(%s) = %q, %v; want %q", tt.info.Transport, tt.ch, got, err, tt.want)
		}
	}
	if _, err := tcp.Endpoint("bogus"); err == nil {
		t.Error("Endpoint(bogus) succeeded")
	}
	if _, err := (Info{Transport: "udp", ShellPort: 1}).Endpoint(Shell); err == nil {
		t.Error("Endpoint with transport udp succeeded")
	}
}

func valid() Info {
	return Info{Transport: TCP, IP: "127.0.0.1", ShellPort: 5555, IOPubPort: 5556, StdinPort: 5557, ControlPort: 5558, HBPort: 5559, Key: "k", SignatureScheme: "hmac-sha256"}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Info)
		want []string // substrings of the error; nil means valid
	}{
		{name: "valid", edit: func(*Info) {}},
		{name: "empty key is unsigned, valid", edit: func(i *Info) { i.Key = "" }},
		{name: "hostname ok", edit: func(i *Info) { i.IP = "my-host.local" }},
		{name: "ipv6 ok", edit: func(i *Info) { i.IP = "::1" }},
		{name: "sha512 ok", edit: func(i *Info) { i.SignatureScheme = "hmac-sha3_256" }},
		{name: "bad transport", edit: func(i *Info) { i.Transport = "udp" }, want: []string{`transport "udp", want "tcp" or "ipc"`}},
		{name: "uppercase transport", edit: func(i *Info) { i.Transport = "TCP" }, want: []string{`transport "TCP"`}},
		{name: "port zero", edit: func(i *Info) { i.ShellPort = 0 }, want: []string{"shell_port 0 out of range 1..65535"}},
		{name: "port too big", edit: func(i *Info) { i.HBPort = 65536 }, want: []string{"hb_port 65536 out of range"}},
		{name: "negative port", edit: func(i *Info) { i.IOPubPort = -1 }, want: []string{"iopub_port -1 out of range"}},
		{name: "duplicate port", edit: func(i *Info) { i.ControlPort = i.ShellPort }, want: []string{"shell_port and control_port are both 5555"}},
		{name: "empty ip", edit: func(i *Info) { i.IP = "" }, want: []string{"empty ip"}},
		{name: "wildcard ip", edit: func(i *Info) { i.IP = "*" }, want: []string{`ip "*" is neither`}},
		{name: "bad scheme", edit: func(i *Info) { i.SignatureScheme = "sha256" }, want: []string{`signature_scheme "sha256"`}},
		{name: "empty scheme", edit: func(i *Info) { i.SignatureScheme = "" }, want: []string{`signature_scheme ""`}},
		{
			name: "ipc ok", edit: func(i *Info) {
				*i = Info{Transport: IPC, IP: "/run/k/kernel", ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"}
			},
		},
		{
			// "/" + 100 + "/kernel-5" = 110 bytes; reported once, for the longest.
			name: "ipc path too long", edit: func(i *Info) {
				*i = Info{Transport: IPC, IP: "/" + strings.Repeat("d", 100) + "/kernel", ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"}
			},
			want: []string{"/kernel-5 is 110 bytes, longer than the 107 a unix socket allows"},
		},
		{
			name: "ipc path exactly at the limit", edit: func(i *Info) {
				// 107 - len("-1") = 105 bytes of prefix.
				*i = Info{Transport: IPC, IP: "/" + strings.Repeat("d", 104), ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"}
			},
		},
		{
			name: "ipc empty ip", edit: func(i *Info) { i.Transport = IPC; i.IP = "" },
			want: []string{"empty ip (the ipc socket path prefix)"},
		},
		{
			name: "several problems reported together",
			edit: func(i *Info) { i.Transport = "x"; i.StdinPort = 0; i.SignatureScheme = "none" },
			want: []string{`transport "x"`, "stdin_port 0", `signature_scheme "none"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := valid()
			tt.edit(&i)
			err := i.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", i, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want %q", i, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q lacks %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "ipc socket path"); n > 1 {
				t.Errorf("ipc path length reported %d times, want once: %v", n, err)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	info, res, err := NewTCP("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
	info.KernelName = "python3"

	path := filepath.Join(dir, "kernel-abc.json")
	if err := Write(path, info); err != nil {
		t.Fatalf("Write: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("connection file mode = %o, want 600", perm)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(info, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}

	// O_EXCL: never overwrite, never follow a symlink.
	if err := Write(path, info); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Write = %v, want fs.ErrExist", err)
	}
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, info); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Write through dangling symlink = %v, want fs.ErrExist", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write created the symlink target: %v", err)
	}

	// Invalid info is refused and leaves no file.
	bad := info
	bad.ShellPort = 0
	badPath := filepath.Join(dir, "bad.json")
	if err := Write(badPath, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("Write(invalid) = %v, want ErrInvalid", err)
	}
	if _, err := os.Lstat(badPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write(invalid) left a file: %v", err)
	}

	if err := Write(filepath.Join(dir, "no", "such", "dir.json"), info); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write into missing dir = %v, want fs.ErrNotExist", err)
	}
}

func TestWriteIgnoresUmask(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.json") // before changing the umask
	// The umask is process-wide, so this test must not run in parallel.
	old := syscall.Umask(0o277) // would leave 0400 without the explicit chmod
	defer syscall.Umask(old)
	info := valid()
	if err := Write(path, info); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode under umask 0277 = %o, want 600", perm)
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    Info
		wantErr string
	}{
		{
			// As written by jupyter_client.
			name: "jupyter_client file",
			json: `{"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003, "control_port": 50004, "hb_port": 50005,
				"ip": "127.0.0.1", "key": "a0436f6c-1916498b7e1a2f0c7a4b4e1b", "transport": "tcp",
				"signature_scheme": "hmac-sha256", "kernel_name": ""}`,
			want: Info{Transport: TCP, IP: "127.0.0.1", ShellPort: 50001, IOPubPort: 50002, StdinPort: 50003, ControlPort: 50004, HBPort: 50005, Key: "a0436f6c-1916498b7e1a2f0c7a4b4e1b", SignatureScheme: "hmac-sha256"},
		},
		{
			name: "defaults filled in",
			json: `{"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": ""}`,
			want: Info{Transport: TCP, IP: "127.0.0.1", ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"},
		},
		{
			name: "caseless transport, ipc",
			json: `{"transport": "IPC", "ip": "/run/k/kernel", "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}`,
			want: Info{Transport: IPC, IP: "/run/k/kernel", ShellPort: 1, IOPubPort: 2, StdinPort: 3, ControlPort: 4, HBPort: 5, SignatureScheme: "hmac-sha256"},
		},
		{name: "missing ports", json: `{"ip": "127.0.0.1"}`, wantErr: "shell_port 0 out of range"},
		{name: "bad transport", json: `{"transport": "udp", "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}`, wantErr: `transport "udp"`},
		{name: "not json", json: `nope`, wantErr: "invalid character"},
		{name: "port as string", json: `{"shell_port": "1"}`, wantErr: "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.json")
			if err := os.WriteFile(path, []byte(tt.json), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Read(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Read error = %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Read mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		b, err := hex.DecodeString(k)
		if err != nil || len(b) != 32 {
			t.Fatalf("NewKey() = %q: want 32 hex-encoded bytes (err %v)", k, err)
		}
		if seen[k] {
			t.Fatalf("NewKey repeated %q", k)
		}
		seen[k] = true
	}
}

func TestStringRedactsKey(t *testing.T) {
	i := valid()
	i.Key = "supersecret"
	for _, s := range []string{i.String(), fmt.Sprintf("%v", i), fmt.Sprintf("%+v", i), fmt.Sprint(&i)} {
		if strings.Contains(s, "supersecret") {
			t.Errorf("formatted Info leaks the key: %s", s)
		}
	}
	if !strings.Contains(i.String(), "key=redacted") {
		t.Errorf("String() = %s", i.String())
	}
}

// Ports never hands out a port twice within its hold, even after the first
// reservation was released (the gap in which a kernel has not bound yet).
func TestPorts_NoReuseWithinHold(t *testing.T) {
	p := NewPorts(time.Minute)
	seen := map[int]bool{}
	for range 40 {
		info, res, err := p.NewTCP("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		res.Release() // as before a spawn: the ports are free again
		for _, port := range []int{info.ShellPort, info.IOPubPort, info.StdinPort, info.ControlPort, info.HBPort} {
			if seen[port] {
				t.Fatalf("port %d handed out twice within the hold", port)
			}
			seen[port] = true
		}
	}
	first, again := p.take(1), p.take(1)
	if !first || again {
		t.Fatal("take must accept a new port once, then refuse it within the hold")
	}
	// A negative hold has always expired, whatever the clock's resolution.
	expired := NewPorts(-time.Nanosecond)
	first, again = expired.take(2), expired.take(2)
	if !first || !again {
		t.Fatal("with no hold a port can be taken again")
	}
}
