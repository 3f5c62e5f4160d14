package securitytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kernelgate/kernelgate/internal/app"
	"github.com/kernelgate/kernelgate/internal/config"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// The limits the shared server runs with.
const (
	memoryLimit      = 256 << 20
	pidsLimit        = 64
	executionTimeout = 5 * time.Second
	// fileLimit is --kernel-file-size.
	fileLimit = 32 << 20
	// tmpLimit is the sandbox's default for a 256 MiB kernel: a quarter.
	tmpLimit       = memoryLimit / 4
	kernelsPerUser = 2
	streamCap      = 10 << 20 // flowapi.DefaultMaxStreamBytes
	// floodHeapBound is how much the server's live heap may grow while two
	// kernels flood it: a kernel's journal holds up to 64 MiB and a
	// session's 32 MiB, and a message is held while it is decoded.
	floodHeapBound = 512 << 20
)

// users have a token each in the token file; every attack acts as its own.
var users = []string{
	"canary", "alice", "bob", "carol", "dave", "envu", "net", "fork", "mem",
	"disk", "flood", "spin", "kill", "write", "priv", "greedy", "rate", "gap",
	"sock", "sys", "seccomp", "uidvictim", "uidattacker",
	"admin", // the one administrator (--admin-users)
}

// envUser is the user of KERNELGATE_TOKEN.
const envUser = "default"

// srv is the server every test attacks.
var srv *server

type server struct {
	url        string // http://127.0.0.1:port
	addr       string
	runtimeDir string // canonical
	tokenFile  string
	tokens     map[string]string // user → token, envUser included
	envSecret  string            // value of a KERNELGATE_ variable that is not a flag
	logs       *syncBuffer
	stop       func() error
}

func TestMain(m *testing.M) {
	sandbox.MaybeRunHelper() // the server re-executes this binary as the sandbox helper
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "securitytest: must run as root (the sandbox creates cgroups and switches users)")
		return 1
	}
	s, cleanup, err := startServer()
	defer cleanup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "securitytest: start the server: %v\n", err)
		if s != nil {
			fmt.Fprintf(os.Stderr, "server log:\n%s\n", s.logs.tail(8000))
		}
		return 1
	}
	srv = s
	code := m.Run()
	if err := s.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "securitytest: server stopped with %v\n", err)
		code = 1
	}
	// Tokens never reach the log, even at debug level: checked over the
	// whole run (TestAttack_WrongToken checks it too, with a wrong token).
	for user, tok := range s.tokens {
		if strings.Contains(s.logs.String(), tok) {
			fmt.Fprintf(os.Stderr, "securitytest: %s's token is in the server's log\n", user)
			code = 1
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "server log (tail):\n%s\n", s.logs.tail(8000))
	}
	return code
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// startServer starts the shared server, with tokens, and its canary.
// cleanup removes what it made even when it fails.
func startServer() (*server, func(), error) {
	return launch(true)
}

// launch starts a server with the limits above and extra flags; withAuth
// gives it the users' tokens (a token file and KERNELGATE_TOKEN) and a
// canary, else it has no authentication and so serves loopback only, the
// default.
func launch(withAuth bool, extra ...string) (*server, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	// Unix socket paths are short: the runtime dir must be too.
	base, err := os.MkdirTemp("/tmp", "kgsec")
	if err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(base) })
	rt := filepath.Join(base, "rt")

	// The token file lives where an operator would keep one: on the host
	// tree the sandbox shows read-only (not under /tmp, which it hides), in
	// a searchable dir, readable by root only.
	tokDir, err := os.MkdirTemp("/var/tmp", "kgsec-")
	if err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(tokDir) })
	if err := os.Chmod(tokDir, 0o755); err != nil {
		return nil, cleanup, err
	}
	s := &server{tokens: map[string]string{}, logs: &syncBuffer{}, tokenFile: filepath.Join(tokDir, "tokens")}
	args := []string{
		"--addr", "127.0.0.1:0",
		"--runtime-dir", rt,
		"--sandbox", "bwrap",
		"--kernel-memory", fmt.Sprint(memoryLimit),
		"--kernel-pids", fmt.Sprint(pidsLimit),
		"--execution-timeout", executionTimeout.String(),
		"--max-kernels-per-user", fmt.Sprint(kernelsPerUser),
		"--kernel-file-size", fmt.Sprint(fileLimit),
		"--admin-users", "admin",
		"--log-level", "debug", // the strictest test of "tokens never reach logs"
	}
	args = append(args, extra...)
	getenv := os.Getenv
	if withAuth {
		var lines strings.Builder
		for _, u := range users {
			s.tokens[u] = "tok-" + u + "-" + randomHex(16)
			fmt.Fprintf(&lines, "%s %s\n", u, s.tokens[u])
		}
		if err := os.WriteFile(s.tokenFile, []byte(lines.String()), 0o600); err != nil {
			return nil, cleanup, err
		}
		args = append(args, "--token-file", s.tokenFile)
		// KERNELGATE_TOKEN comes from the process environment, as in
		// production; so does a secret-looking variable that is not a
		// flag. Kernels inherit the process environment minus KERNELGATE_*.
		s.tokens[envUser] = "tok-env-" + randomHex(16)
		s.envSecret = "envsecret-" + randomHex(16)
		os.Setenv("KERNELGATE_TOKEN", s.tokens[envUser])
		os.Setenv("KERNELGATE_SECURITYTEST_SECRET", s.envSecret)
	} else {
		getenv = func(k string) string {
			if k == "KERNELGATE_TOKEN" {
				return ""
			}
			return os.Getenv(k)
		}
	}
	cfg, _, err := config.Load("kernelgate", args, getenv, os.Environ(), io.Discard)
	if err != nil {
		return nil, cleanup, fmt.Errorf("config: %w", err)
	}
	s.runtimeDir = cfg.Kernel.RuntimeDir
	if real, err := filepath.EvalSymlinks(filepath.Dir(rt)); err == nil {
		s.runtimeDir = filepath.Join(real, "rt")
	}

	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- app.Serve(ctx, cfg, log, func(addr string) { ready <- addr }) }()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("app.Serve did not return within 60s of the cancel")
			}
		})
		return stopErr
	}
	cleanups = append(cleanups, func() { s.stop() })
	select {
	case s.addr = <-ready:
	case err := <-done:
		return s, cleanup, fmt.Errorf("app.Serve: %w", err)
	case <-time.After(60 * time.Second):
		return s, cleanup, errors.New("the server was not ready within 60s")
	}
	s.url = "http://" + s.addr

	// The server must really sandbox kernels: /readyz says how.
	code, body, err := s.request(http.MethodGet, "/readyz", "", nil, nil)
	if err != nil || code != 200 || !strings.Contains(string(body), "sandbox on: namespaces (network off), users 61000-61999:61000-61999, one per kernel") || !strings.Contains(string(body), "seccomp filter") {
		return s, cleanup, fmt.Errorf("GET /readyz = %d %q, %v; want the sandbox on", code, body, err)
	}
	if withAuth {
		// The canary: a kernel of its own user, with state the checks look at.
		r, err := s.execute("canary", "canary", "canary_alive = 42")
		if err != nil || r["status"] != "ok" {
			return s, cleanup, fmt.Errorf("start the canary: %v %v", r, err)
		}
	}
	return s, cleanup, nil
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		str = "…" + str[len(str)-n:]
	}
	return str
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

// request sends one HTTP request as user ("" for none) and returns the
// status and body.
func (s *server) request(method, path, user string, body any, hdr map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+s.tokens[user])
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// execute runs code in user's session over POST /api/execute and returns
// the JSON answer.
func (s *server) execute(user, session, code string) (map[string]any, error) {
	status, body, err := s.request(http.MethodPost, "/api/execute", user, map[string]any{"code": code}, map[string]string{"X-Session-ID": session})
	if err != nil {
		return nil, err
	}
	if status != 200 {
		return nil, fmt.Errorf("POST /api/execute: %d %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("POST /api/execute: %w: %.300s", err, body)
	}
	return m, nil
}

// runCell is execute for tests: any transport failure is fatal.
func runCell(t *testing.T, user, session, code string) map[string]any {
	t.Helper()
	r, err := srv.execute(user, session, code)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// prelude defines attempt, which runs a call and says how it ended ("ok",
// "ok: <value>", or the errno name and message), and report, which prints
// a JSON object on a line of its own for the test to read.
const prelude = `
import errno as _errno, json as _json, os
def attempt(f, *args):
    try:
        r = f(*args)
        return "ok" if r is None else "ok: " + repr(r)[:300]
    except OSError as e:
        name = _errno.errorcode.get(e.errno, "OSError") if isinstance(e.errno, int) else "OSError"
        return name + ": " + str(e)
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
def report(d):
    print("RESULT " + _json.dumps(d))
`

// result finds the report line in a cell's stdout.
func result(t *testing.T, stdout string) map[string]any {
	t.Helper()
	for l := range strings.SplitSeq(stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, "RESULT "); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte(rest), &m); err != nil {
				t.Fatalf("bad report %q: %v", rest, err)
			}
			return m
		}
	}
	t.Fatalf("the cell printed no report:\n%.2000s", stdout)
	return nil
}

// probe runs prelude+code in user's session and returns its report.
func probe(t *testing.T, user, session, code string) map[string]any {
	t.Helper()
	r := runCell(t, user, session, prelude+code)
	if r["status"] != "ok" {
		t.Fatalf("probe cell failed: %v", r)
	}
	return result(t, fmt.Sprint(r["output"]))
}

// denied fails the test unless the attempt named key failed, with one of
// the errno names given (any failure if none).
func denied(t *testing.T, res map[string]any, key string, errnos ...string) {
	t.Helper()
	v, ok := res[key].(string)
	if !ok {
		t.Errorf("%s: no result in %v", key, res)
		return
	}
	if strings.HasPrefix(v, "ok") {
		t.Errorf("ATTACK SUCCEEDED: %s: %s", key, v)
		return
	}
	for _, e := range errnos {
		if strings.HasPrefix(v, e+":") {
			return
		}
	}
	if len(errnos) > 0 {
		t.Errorf("%s failed with %q, want one of %v", key, v, errnos)
	}
}

// serverFine checks, after an attack, that the server answers /healthz and
// that the canary kernel, untouched since before the attacks, still runs
// 1+1 with its state.
func serverFine(t *testing.T) {
	t.Helper()
	code, body, err := srv.request(http.MethodGet, "/healthz", "", nil, nil)
	if err != nil || code != 200 || string(body) != "ok\n" {
		t.Errorf("after the attack GET /healthz = %d %q, %v", code, body, err)
	}
	r, err := srv.execute("canary", "canary", "assert canary_alive == 42, 'the canary lost its state'\n1+1")
	if err != nil || r["status"] != "ok" || r["result"] != "2" {
		t.Errorf("after the attack the canary session does not run 1+1: %v, %v", r, err)
	}
}

// ws is a WebSocket client of /ws.
type ws struct {
	t    *testing.T
	c    *websocket.Conn
	cell int
}

func dialWS(t *testing.T, user string) *ws {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.url, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + srv.tokens[user]}},
	})
	if err != nil {
		t.Fatalf("dial /ws as %s: %v (%v)", user, err, resp)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	w := &ws{t: t, c: c}
	if m := w.next(20 * time.Second); m["type"] != "connection_established" {
		t.Fatalf("first message %v", m)
	}
	return w
}

func (w *ws) send(v any) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 10*time.Second)
	defer cancel()
	raw, _ := json.Marshal(v)
	if err := w.c.Write(ctx, websocket.MessageText, raw); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ws) next(timeout time.Duration) map[string]any {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), timeout)
	defer cancel()
	_, raw, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read from /ws: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		w.t.Fatalf("invalid JSON: %v: %.300s", err, raw)
	}
	return m
}

// until reads messages until match says stop, within timeout in all.
func (w *ws) until(timeout time.Duration, match func(map[string]any) bool) []map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	var all []map[string]any
	for {
		left := time.Until(deadline)
		if left <= 0 {
			w.t.Fatalf("no matching message within %v; got %d messages, the last: %v", timeout, len(all), last(all))
		}
		m := w.next(left)
		all = append(all, m)
		if match(m) {
			return all
		}
	}
}

func last(ms []map[string]any) map[string]any {
	if len(ms) == 0 {
		return nil
	}
	return ms[len(ms)-1]
}

// cell is what the server sent while one cell ran.
type cell struct {
	id    string
	msgs  []map[string]any
	final map[string]any // execution_result, execution_error, or a fatal error
	took  time.Duration
}

// run executes code in session and reads until the cell's final message.
func (w *ws) run(session, code string, timeout time.Duration) cell {
	w.t.Helper()
	w.cell++
	id := fmt.Sprintf("c%d", w.cell)
	start := time.Now()
	w.send(map[string]any{"type": "execute", "code": code, "cell_id": id, "kernel_id": session})
	msgs := w.until(timeout, func(m map[string]any) bool {
		return m["cell_id"] == id && (m["type"] == "execution_result" || m["type"] == "execution_error" || m["type"] == "error" && m["is_last"] == true)
	})
	return cell{id: id, msgs: msgs, final: last(msgs), took: time.Since(start)}
}

func isRestarted(m map[string]any) bool {
	return m["type"] == "kernel_status" && m["event"] == "restarted"
}

// restarted waits until the session's kernel has been restarted, looking
// first among msgs, the messages already read.
func (w *ws) restarted(msgs []map[string]any, timeout time.Duration) {
	w.t.Helper()
	if !slices.ContainsFunc(msgs, isRestarted) {
		w.until(timeout, isRestarted)
	}
}

// runOK runs code until it succeeds, retrying while the session's kernel
// is restarting (a cell sent then gets "kernel is not ready").
func (w *ws) runOK(session, code string, timeout time.Duration) cell {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := w.run(session, code, time.Until(deadline))
		if c.final["status"] == "ok" {
			return c
		}
		if time.Now().After(deadline) || !strings.Contains(fmt.Sprint(c.final["error"]), "not ready") {
			w.t.Fatalf("%q in session %s: %v", code, session, c.final)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// errors returns the text of the cell's error messages and of its final
// message's error, for looking for what the user was told.
func (c cell) errors() string {
	var b strings.Builder
	for _, m := range c.msgs {
		if m["type"] == "error" || m["type"] == "execution_result" || m["type"] == "execution_error" || m["type"] == "kernel_status" {
			for _, k := range []string{"error", "reason"} {
				if v, ok := m[k]; ok && v != nil {
					fmt.Fprintf(&b, "%s: %v\n", m["type"], v)
				}
			}
		}
	}
	return b.String()
}

// kernelDirOf returns the host path of the kernel dir whose work dir a
// kernel reported as cwd, checking it is in the runtime dir.
func kernelDirOf(t *testing.T, cwd string) string {
	t.Helper()
	dir := filepath.Dir(cwd)
	if filepath.Dir(dir) != srv.runtimeDir || filepath.Base(cwd) != "work" {
		t.Fatalf("kernel cwd %s is not <runtime dir %s>/<kernel>/work", cwd, srv.runtimeDir)
	}
	return dir
}

// hostIPs are the machine's non-loopback addresses.
func hostIPs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// pyList renders strings as a Python list literal.
func pyList(ss []string) string {
	b, _ := json.Marshal(ss)
	if ss == nil {
		return "[]"
	}
	return string(b)
}
