package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/wsproto"

	"github.com/kernelgate/kernelgate/internal/proctest"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

// The test binary doubles as the kernelgate binary when this variable is
// set, so signal handling and shutdown are tested on a real process.
const asMain = "KERNELGATE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	sandbox.MaybeRunHelper() // sandboxed kernels re-execute this binary
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func kernelgate(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asMain+"=1")
	return cmd
}

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb proctest.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// proctest.Buffer is a bytes.Buffer safe for the concurrent writers a process's
// stderr has (the logger and the console), as os.Stderr is.

func TestRun_CLI(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "hello.py")
	if err := os.WriteFile(file, []byte("for i in range(3):\n    print('line', i)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An interpreter without Debian's site-packages: it cannot import ipykernel.
	bare := filepath.Join(t.TempDir(), "python3")
	if err := os.WriteFile(bare, []byte("#!/bin/sh\nexec /usr/bin/python3 -I -S \"$@\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Kernelspecs naming those interpreters, found through JUPYTER_PATH.
	jpath := t.TempDir()
	for name, argv0 := range map[string]string{"bare": bare, "missing": "/nonexistent/python3"} {
		dir := filepath.Join(jpath, "kernels", name)
		spec := fmt.Sprintf(`{"argv": [%q, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": %q, "language": "python"}`, argv0, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(spec), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	jupyterPath := []string{"JUPYTER_PATH=" + jpath}
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string   // regexp
		stderr string   // regexp
		env    []string // run as a subprocess with this environment
	}{
		{name: "output and result", args: []string{"run", "-c", "print('hi'); 1+1"}, stdout: `^hi\n2\n$`},
		{name: "file", args: []string{"run", file}, stdout: `^line 0\nline 1\nline 2\n$`},
		{name: "error exits non-zero with traceback", args: []string{"run", "-c", "1/0"}, code: 1, stderr: `ZeroDivisionError`},
		{name: "stderr stream", args: []string{"run", "-c", "import sys; print('oops', file=sys.stderr)"}, stderr: `oops\n`},
		{name: "input answered from stdin", stdin: "Ada\n", args: []string{"run", "-c", "n = input('name? '); print('hello', n)"}, stdout: `name\? .*hello Ada\n`},
		{name: "plot note", args: []string{"run", "-c", "import matplotlib.pyplot as plt; plt.plot([1,2]); plt.show()"}, stdout: `^\[image/png \d+x\d+\]\n$`},
		{name: "dataframe note", args: []string{"run", "-c", "import pandas as pd; pd.DataFrame({'a': [1]})"}, stdout: `\[application/vnd\.dataresource\+json \d+ B\] \[text/html \d+ B\]\n\s+a\n0\s+1\n`},
		{name: "kernel death", args: []string{"run", "-c", "import os; os._exit(3)"}, code: 1, stderr: `kernel died: kernel process exited with status 3`},
		{name: "missing interpreter", args: []string{"run", "--python", "/nonexistent/python3", "-c", "1", "--kernel", "nope"}, code: 1, stderr: `default kernelspec "nope" not found`},
		{name: "spec with missing interpreter", env: jupyterPath, args: []string{"run", "--kernel", "missing", "-c", "1"}, code: 1, stderr: `kernel interpreter /nonexistent/python3 does not exist`},
		{name: "spec without ipykernel", env: jupyterPath, args: []string{"run", "--kernel", "bare", "-c", "1"}, code: 1, stderr: `cannot import ipykernel: install the Debian package python3-ipykernel`},
		{name: "neither code nor file", args: []string{"run"}, code: 2, stderr: `give either -c CODE or one FILE.py`},
		{name: "missing file", args: []string{"run", "/nonexistent.py"}, code: 1, stderr: `no such file`},
		{name: "bad flag value", args: []string{"run", "--transport", "udp", "-c", "1"}, code: 1, stderr: `transport.*want tcp or ipc`},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "sandbox required but impossible", args: []string{"run", "--sandbox", "bwrap", "--bwrap", "/nonexistent/bwrap", "-c", "1"}, code: 1, stderr: `--sandbox bwrap, but kernels cannot be sandboxed here`},
		{name: "sandbox impossible: loud fallback", args: []string{"run", "--sandbox", "auto", "--bwrap", "/nonexistent/bwrap", "-c", "print(1)"}, stdout: `^1\n$`, stderr: `WARNING: kernels run WITHOUT a sandbox`},
		{name: "help", args: []string{"help"}, stdout: `kernelgate serve`},
		{name: "flag help", args: []string{"serve", "-h"}, stderr: `-addr address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if len(args) > 0 && args[0] == "run" {
				args = append([]string{"run", "--runtime-dir", filepath.Join(t.TempDir(), "rt")}, args[1:]...)
			}
			var stdout, stderr string
			var code int
			if tt.env != nil {
				stdout, stderr, code = runProcess(t, tt.env, tt.stdin, args...)
			} else {
				stdout, stderr, code = runCLI(t, tt.stdin, args...)
			}
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stdout != "" && !regexp.MustCompile(tt.stdout).MatchString(stdout) {
				t.Errorf("stdout %q does not match %q", stdout, tt.stdout)
			}
			if tt.stderr != "" && !regexp.MustCompile(tt.stderr).MatchString(stderr) {
				t.Errorf("stderr %q does not match %q", stderr, tt.stderr)
			}
		})
	}
}

func runProcess(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := kernelgate(t, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code = waitExit(t, cmd)
	return out.String(), errb.String(), code
}

// serve starts `kernelgate serve` on a free loopback port with args and
// returns it, its URL and its log; the process is killed when the test ends.
func serve(t *testing.T, args ...string) (*exec.Cmd, string, *proctest.Buffer) {
	t.Helper()
	cmd := kernelgate(t, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(proctest.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, readURL(t, stdout), stderr
}

func TestServe_HealthMetricsAndGracefulShutdown(t *testing.T) {
	t.Parallel()
	rt := filepath.Join(t.TempDir(), "rt")
	cmd, url, stderr := serve(t, "--runtime-dir", rt)

	for path, want := range map[string]string{
		"/healthz": "ok\n",
		"/readyz":  "sandbox on: namespaces (network off)",
		"/metrics": "kernelgate_kernels_running 0",
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %q, want 200 containing %q", path, resp.StatusCode, body, want)
		}
	}
	if _, err := os.Stat(rt); err != nil {
		t.Fatalf("runtime dir not created: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(rt); !os.IsNotExist(err) {
		t.Fatalf("runtime dir left behind: %v", err)
	}
	if !strings.Contains(stderr.String(), "kernelgate stopped") {
		t.Fatalf("no shutdown log line in:\n%s", stderr.String())
	}
}

// A kernel started through the server, running a cell that started a child,
// is stopped with everything it started when the server gets SIGTERM.
func TestServe_SIGTERMStopsKernelsAndTheirChildren(t *testing.T) {
	t.Parallel()
	rt := filepath.Join(t.TempDir(), "rt")
	// Unsandboxed: the test reads host pids from the kernel (a sandboxed
	// kernel sees its own pid namespace); TestRun_Sandboxed covers the rest.
	cmd, url, _ := serve(t, "--runtime-dir", rt, "--sandbox", "none")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	code := "import os, subprocess, time\nprint(os.getpid(), subprocess.Popen(['sleep', '1000']).pid, flush=True)\ntime.sleep(100)"
	if err := wsjson.Write(ctx, c, map[string]any{"type": "execute", "code": code, "cell_id": "c1"}); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for len(pids) == 0 {
		var m map[string]any
		if err := wsjson.Read(ctx, c, &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "stream_output" && m["is_last"] == false {
			for _, f := range strings.Fields(m["content"].(string)) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("output %q", m["content"])
				}
				pids = append(pids, pid)
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	for _, pid := range pids {
		if proctest.Alive(pid) {
			t.Errorf("process %d outlived the server", pid)
		}
	}
	if _, err := os.Stat(rt); !os.IsNotExist(err) {
		t.Errorf("runtime dir left behind: %v", err)
	}
}

// A SIGTERM to `kernelgate run` while the code runs stops the kernel and
// everything it started: nothing outlives the gateway.
func TestRun_SIGTERMLeavesNoProcess(t *testing.T) {
	t.Parallel()
	rt := filepath.Join(t.TempDir(), "rt")
	code := "import subprocess, time\nprint(subprocess.Popen(['sleep', '1000']).pid, flush=True)\ntime.sleep(100)"
	cmd := kernelgate(t, "run", "--runtime-dir", rt, "--sandbox", "none", "-c", code) // host pids, as above
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("first line %q is not a pid", line)
	}
	kernels := proctest.Mentioning(rt)
	if len(kernels) == 0 {
		t.Fatal("found no kernel process for the runtime dir")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Errorf("exit code after SIGTERM = %d, want 130", code)
	}
	for _, pid := range append(kernels, child) {
		if proctest.Alive(pid) {
			t.Errorf("process %d survived kernelgate", pid)
		}
	}
}

// A SIGTERM while the code waits in input() ends the run at once, although
// the terminal read it was blocked in never returns on its own.
func TestRun_SIGTERMWhileWaitingForInput(t *testing.T) {
	t.Parallel()
	cmd := kernelgate(t, "run", "--runtime-dir", filepath.Join(t.TempDir(), "rt"), "-c", "print('asking', flush=True); input('name? ')")
	stdin, err := cmd.StdinPipe() // kept open: no answer, no EOF
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "asking\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	prompt := make([]byte, len("name? "))
	if _, err := io.ReadFull(r, prompt); err != nil || string(prompt) != "name? " {
		t.Fatalf("prompt %q, %v", prompt, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd); code != 130 {
		t.Fatalf("exit code %d, want 130", code)
	}
}

func readURL(t *testing.T, r io.Reader) string {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the serve banner: %v", err)
	}
	m := regexp.MustCompile(`http://\S+`).FindString(line)
	if m == "" {
		t.Fatalf("no URL in %q", line)
	}
	return m
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("process did not exit within 60s")
	}
	return -1
}

// With tokens, every route but the probes needs one, WebSockets take it as
// ?token=, and two users never share a session even under the same name.
func TestServe_TokensAndUserIsolation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const alice, bob = "alice-token-0123456789", "bob-token-0123456789ab"
	file := filepath.Join(dir, "tokens")
	if err := os.WriteFile(file, []byte("alice "+alice+"\nbob "+bob+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, url, stderr := serve(t, "--runtime-dir", filepath.Join(dir, "rt"), "--token-file", file)

	call := func(token, code string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/api/execute", strings.NewReader(fmt.Sprintf(`{"code": %q}`, code)))
		req.Header.Set("X-Session-ID", "shared-name")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := call("", "1"); code != 401 || !strings.Contains(fmt.Sprint(body["error"]), "no token") {
		t.Fatalf("no token: %d %v", code, body)
	}
	if code, body := call("wrong-wrong-wrong-wrong", "1"); code != 401 || !strings.Contains(fmt.Sprint(body["error"]), "invalid token") {
		t.Fatalf("wrong token: %d %v", code, body)
	}
	if code, _ := call(alice, "secret = 'alice'"); code != 200 {
		t.Fatalf("alice: %d", code)
	}
	if _, body := call(bob, "secret"); !strings.Contains(fmt.Sprint(body["error_details"]), "NameError") {
		t.Fatalf("bob sees alice's session: %v", body)
	}
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz must stay open for probes: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// One kernel, two APIs: the kernel of alice's /api/execute session is
	// hers in the Jupyter API (bob's list lacks it) and keeps its state there.
	kernels := func(token string) []map[string]any {
		t.Helper()
		req, _ := http.NewRequest("GET", url+"/api/kernels", nil)
		req.Header.Set("Authorization", "token "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []map[string]any
		json.NewDecoder(resp.Body).Decode(&list)
		return list
	}
	if got := kernels(bob); len(got) != 1 {
		t.Fatalf("bob's /api/kernels: %v; want his one session kernel only", got)
	}
	aliceKernels := kernels(alice)
	if len(aliceKernels) != 1 {
		t.Fatalf("alice's /api/kernels: %v; want her session's kernel", aliceKernels)
	}
	kid := aliceKernels[0]["id"].(string)
	jc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/api/kernels/"+kid+"/channels?session_id=lab", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"token " + alice}}})
	if err != nil {
		t.Fatalf("alice's channels: %v", err)
	}
	defer jc.CloseNow()
	req, _ := jmsg.New(jmsg.ExecuteRequest, "lab", "alice", nil, jmsg.ExecuteRequestContent{Code: "print(secret)", UserExpressions: map[string]string{}})
	frame, _, _ := wsproto.EncodeLegacy(jmsg.Shell, req)
	if err := jc.Write(ctx, websocket.MessageText, frame); err != nil {
		t.Fatal(err)
	}
	// The print may arrive in pieces: read the cell's output to its idle.
	var printed strings.Builder
	for {
		typ, data, err := jc.Read(ctx)
		if err != nil {
			t.Fatalf("reading alice's channels: %v", err)
		}
		ch, m, err := wsproto.DecodeServerFrame(data, typ == websocket.MessageBinary, false)
		if err != nil {
			t.Fatal(err)
		}
		if m.ParentID() != req.Header.MsgID || ch != jmsg.IOPub {
			continue
		}
		if m.Type() == jmsg.Stream {
			var sc jmsg.StreamContent
			m.Decode(&sc)
			printed.WriteString(sc.Text)
		}
		if m.Type() == jmsg.Status && strings.Contains(string(m.Content), `"idle"`) {
			break
		}
	}
	if printed.String() != "alice\n" {
		t.Fatalf("through the Jupyter API the session's kernel printed %q; want alice's variable", printed.String())
	}
	if _, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/api/kernels/"+kid+"/channels", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"token " + bob}}}); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("bob opening alice's kernel channels: %v %v; want 404", resp, err)
	}
	// Jupyter's convention for an upgrade without a user: 403, not 401.
	if _, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/api/kernels/"+kid+"/channels", nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("channels without a token: %v %v; want 403", resp, err)
	}
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/ws"
	if _, resp, err := websocket.Dial(ctx, wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("websocket without token: %v %v", resp, err)
	}
	c, _, err := websocket.Dial(ctx, wsURL+"?token="+bob, nil)
	if err != nil {
		t.Fatalf("websocket with ?token=: %v", err)
	}
	c.CloseNow()
	if strings.Contains(stderr.String(), alice) || strings.Contains(stderr.String(), bob) {
		t.Fatal("a token appeared in the logs")
	}
}

// Kernels are sandboxed by default where the machine allows it (it does
// here): no network, a read-only system, a private /tmp, not root, and a
// memory limit whose breach is reported as a likely out-of-memory death.
func TestRun_Sandboxed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code := fmt.Sprintf(`import os, socket
def attempt(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return "denied"
print("network", attempt(lambda: socket.create_connection(("127.0.0.1", %d), timeout=2)))
print("write /usr", attempt(lambda: open("/usr/kernelgate-test", "w")))
print("write cwd", attempt(lambda: open("ok.txt", "w")))
print("root", os.getuid() == 0)
`, ln.Addr().(*net.TCPAddr).Port)
	stdout, stderr, exit := runCLI(t, "", "run", "--runtime-dir", filepath.Join(t.TempDir(), "rt"), "--sandbox", "bwrap", "-c", code)
	want := "network denied\nwrite /usr denied\nwrite cwd allowed\nroot False\n"
	if exit != 0 || stdout != want {
		t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %s", exit, stdout, want, stderr)
	}
	_, stderr, exit = runCLI(t, "", "run", "--runtime-dir", filepath.Join(t.TempDir(), "rt"), "--sandbox", "bwrap",
		"--kernel-memory", fmt.Sprint(256<<20), "-c", "x = bytearray(1 << 30)")
	if exit != 1 || !strings.Contains(stderr, "memory limit of 256 MiB exceeded") {
		t.Fatalf("allocating past the limit: exit %d, stderr %s", exit, stderr)
	}
}
