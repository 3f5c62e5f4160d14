package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a gateway kgbench started as a subprocess on a loopback port,
// so its memory and CPU can be read from /proc apart from kgbench's own.
type server struct {
	Name  string
	Base  string // http://127.0.0.1:port
	Token string // "" for none
	cmd   *exec.Cmd
	log   *bytes.Buffer // its stderr and stdout, for errors
	dir   string        // temp dir removed at stop
	done  chan struct{} // closed when the process has exited
	mu    sync.Mutex
}

// PID is the gateway process.
func (s *server) PID() int { return s.cmd.Process.Pid }

// WS turns a path into a WebSocket URL with the token.
func (s *server) WS(path string) string {
	u := "ws" + strings.TrimPrefix(s.Base, "http") + path
	if s.Token != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "token=" + s.Token
	}
	return u
}

// request sends an HTTP request with the token and returns status and body.
func (s *server) request(ctx context.Context, method, path, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.Base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "token "+s.Token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; the server then fails to start and
// kgbench says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// kgOptions say how to run `kernelgate serve` for a workload.
type kgOptions struct {
	Binary   string
	PoolSize int
}

// startKernelgate runs `bin/kernelgate serve` as shipped except for what a
// benchmark must change: the per-user rate limits and kernel quotas (a
// policy, not a cost: 20 clients and 100 kernels from one user would hit
// them) and a short session TTL, so /ws sessions the benchmark closed free
// their kernels. The sandbox stays at its default (auto).
func startKernelgate(ctx context.Context, o kgOptions, name string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kgbench-kg-")
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--log-level", "warn",
		"--runtime-dir", filepath.Join(dir, "run"),
		"--rate-executions", "0", "--rate-kernel-starts", "0", "--rate-messages", "0",
		"--max-kernels", "0", "--max-kernels-per-user", "0", "--session-ttl", "15s",
		"--pool-size", strconv.Itoa(o.PoolSize)}
	s := &server{Name: name, Base: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir}
	env := append(os.Environ(), "KERNELGATE_TOKEN=") // no auth: loopback only, as `make run` serves
	if err := s.start(o.Binary, args, env); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "/readyz", func(b []byte) bool { return strings.HasPrefix(string(b), "ready") }); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startJupyterServer runs Debian's Jupyter Server 1.23 as root with a
// token, a temp root_dir and temp JUPYTER_* dirs, and its own local
// kernels (the system python3 kernelspec: the same ipykernel on
// /usr/bin/python3). Its settings are the shipped defaults.
func startJupyterServer(ctx context.Context, python string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kgbench-js-")
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	for _, d := range []string{"root", "config", "data", "runtime"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	args := []string{"-m", "jupyter_server", "--allow-root", "--no-browser", "--ip=127.0.0.1",
		"--port=" + strconv.Itoa(port), "--port-retries=0", "--ServerApp.token=" + token,
		"--ServerApp.root_dir=" + filepath.Join(dir, "root"), "--log-level=WARN"}
	env := append(os.Environ(),
		"JUPYTER_CONFIG_DIR="+filepath.Join(dir, "config"), "JUPYTER_DATA_DIR="+filepath.Join(dir, "data"),
		"JUPYTER_RUNTIME_DIR="+filepath.Join(dir, "runtime"), "PYDEVD_DISABLE_FILE_VALIDATION=1")
	s := &server{Name: "Jupyter Server", Base: "http://127.0.0.1:" + strconv.Itoa(port), Token: token, dir: dir}
	if err := s.start(python, args, env); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, "/api/status", func([]byte) bool { return true }); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) start(bin string, args, env []string) error {
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = lockedWriter{&s.mu, s.log}, lockedWriter{&s.mu, s.log}
	// Its own process group: a Ctrl-C at the terminal reaches kgbench,
	// which stops the server in order (kernels first), not the server
	// directly.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(s.dir)
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.done = make(chan struct{})
	go func() { // joined by stop, which waits for done
		s.cmd.Wait()
		close(s.done)
	}()
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Log is the server's output so far (the tail), for error messages.
func (s *server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tail(s.log.String(), 3000)
}

func (s *server) waitReady(ctx context.Context, path string, ok func([]byte) bool) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		code, body, err := s.request(ctx, "GET", path, "")
		if err == nil && code == http.StatusOK && ok(body) {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited at startup: %s", s.Name, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %v %d); log: %s", s.Name, ctx.Err(), err, code, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the server gracefully (SIGTERM: both servers then stop their
// kernels), and after 30 s kills it and everything it started.
func (s *server) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	// Taken before the server exits: its kernels are reparented then.
	below := Descendants(processTable(), s.PID())
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.PID(), syscall.SIGKILL)
		<-s.done
	}
	for _, pid := range below {
		syscall.Kill(pid, syscall.SIGKILL) // no-ops for those already gone
	}
	os.RemoveAll(s.dir)
}

// readyzInfo returns kernelgate's /readyz lines about confinement and the
// pool.
func (s *server) readyz(ctx context.Context) string {
	_, b, err := s.request(ctx, "GET", "/readyz", "")
	if err != nil {
		return ""
	}
	return string(b)
}

var poolLine = regexp.MustCompile(`(\d+)/(\d+) ready`)

// PoolFull reports whether a /readyz body says every warm pool is full
// (and true when the pool is off: there is nothing to wait for).
func PoolFull(readyz string) bool {
	for line := range strings.Lines(readyz) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "warm pool:")
		if !ok {
			continue
		}
		if strings.TrimSpace(rest) == "off" {
			return true
		}
		ms := poolLine.FindAllStringSubmatch(rest, -1)
		if len(ms) == 0 {
			return false
		}
		for _, m := range ms {
			have, _ := strconv.Atoi(m[1])
			want, _ := strconv.Atoi(m[2])
			if have < want {
				return false
			}
		}
		return true
	}
	return false
}

// SandboxLine is the /readyz line saying how kernels are confined.
func SandboxLine(readyz string) string {
	for line := range strings.Lines(readyz) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "sandbox") || strings.Contains(line, "WARNING") || strings.Contains(line, "unconfined") {
			return line
		}
	}
	return "unknown"
}

// waitPool waits until kernelgate's warm pool is full, so a refill (a cold
// start, half a second of CPU) never overlaps a timed section.
func (s *server) waitPool(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if PoolFull(s.readyz(ctx)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("kernelgate's warm pool did not fill: " + s.readyz(context.Background()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
