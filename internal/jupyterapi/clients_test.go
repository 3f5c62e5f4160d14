package jupyterapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/kernelgate/kernelgate/internal/auth"
	"github.com/kernelgate/kernelgate/internal/jmsg"
	"github.com/kernelgate/kernelgate/internal/kernel"
	"github.com/kernelgate/kernelgate/internal/kerneltest"
	"github.com/kernelgate/kernelgate/internal/proctest"
)

// authedServer is the API behind token auth, as kernelgate serves it.
func authedServer(t *testing.T, tokens map[string]string) (*httptest.Server, *kernel.Manager) {
	t.Helper()
	mgr := kerneltest.NewManager(t, nil)
	tk := auth.NewTokens()
	for user, tok := range tokens {
		if err := tk.Add(user, tok); err != nil {
			t.Fatal(err)
		}
	}
	api := New(DefaultConfig(), mgr, auth.User, nil, nil, nil, nil)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(auth.Middleware(mux, tk))
	t.Cleanup(func() {
		api.Close()
		srv.Close()
	})
	return srv, mgr
}

// npmInstall installs the JS client's packages (pinned by its lock file)
// unless they are there already.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@jupyterlab", "services", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s (make test-deps installs Node.js and npm): %v\n%s", dir, err, out)
	}
}

// TestJupyterLabServicesClient drives the API with @jupyterlab/services,
// JupyterLab's own client library, in both WebSocket framings.
func TestJupyterLabServicesClient(t *testing.T) {
	dir, _ := filepath.Abs("testdata/jsclient")
	npmInstall(t, dir)
	srv, _ := authedServer(t, map[string]string{"lab": "lab-token-1234567890"})
	for _, framing := range []string{"v1", "legacy"} {
		t.Run(framing, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "run.js", srv.URL, "lab-token-1234567890", framing)
			cmd.Dir = dir
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			// The library logs to stdout too; the report is the last line.
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			var report map[string]any
			if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &report); jerr != nil {
				t.Fatalf("node run.js: %v; stdout %q; stderr %s", err, out, stderr.String())
			}
			if err != nil || report["error"] != nil {
				t.Fatalf("node run.js failed: %v\n%v\nstderr: %s", err, report["error"], stderr.String())
			}
			wantProtocol := ""
			if framing == "v1" {
				wantProtocol = "v1.kernel.websocket.jupyter.org"
			}
			want := map[string]any{
				"framing":               framing,
				"default_spec":          "python3",
				"spec_names":            []any{"python3"},
				"kernel_id":             report["kernel_id"],
				"protocol_version":      report["protocol_version"],
				"selected_protocol":     wantProtocol,
				"stream":                "tick 0\ntick 1\ntick 2\n",
				"stream_status":         "ok",
				"input_prompt":          "who? ",
				"input_stdout":          "hello lab\n",
				"interrupt_status":      "error",
				"interrupt_ename":       "KeyboardInterrupt",
				"after_restart_ename":   "NameError",
				"after_restart_stdout":  "alive\n",
				"listed":                true,
				"listed_after_shutdown": false,
			}
			if diff := cmp.Diff(want, report); diff != "" {
				t.Errorf("@jupyterlab/services report (-want +got):\n%s\nstderr: %s", diff, stderr.String())
			}
			if v, _ := report["protocol_version"].(string); !strings.HasPrefix(v, "5.") {
				t.Errorf("protocol_version %q", v)
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestJupyterServerGateway starts Debian's Jupyter Server with
// --gateway-url pointing here: a kernel created and used through Jupyter
// Server's own API runs in kernelgate.
func TestJupyterServerGateway(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/jupyter_server"); err != nil {
		t.Fatalf("needs Debian's python3-jupyter-server (make test-deps): %v", err)
	}
	srv, mgr := authedServer(t, map[string]string{"gw": "gateway-token-4567890"})
	// Jupyter Server's handlers may stall under load (its gateway requests
	// wait up to request_timeout): no request may hang the test.
	jsHTTP := &http.Client{Timeout: 2 * time.Minute}
	home := t.TempDir()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "-m", "jupyter_server",
		"--no-browser", "--allow-root", "--ip=127.0.0.1", fmt.Sprintf("--port=%d", port), "--port-retries=0",
		"--ServerApp.token=js-token", "--ServerApp.root_dir="+home,
		"--gateway-url="+srv.URL, "--GatewayClient.auth_token=gateway-token-4567890",
		"--GatewayClient.request_timeout=60")
	cmd.Env = append(os.Environ(), "HOME="+home, "JUPYTER_CONFIG_DIR="+filepath.Join(home, "cfg"),
		"JUPYTER_DATA_DIR="+filepath.Join(home, "data"), "JUPYTER_RUNTIME_DIR="+filepath.Join(home, "rt"))
	var logs proctest.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("jupyter_server log:\n%s", logs.String())
		}
	})
	js := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", js+path, nil)
		req.Header.Set("Authorization", "token js-token")
		resp, err := jsHTTP.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, []byte(b.String())
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code, _ := get("/api"); code == 200 {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("jupyter_server exited (%v):\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jupyter_server did not answer within 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Kernelspecs come from kernelgate.
	if code, body := get("/api/kernelspecs"); code != 200 || !strings.Contains(string(body), `"python3"`) {
		t.Fatalf("kernelspecs through Jupyter Server: %d %s", code, body)
	}
	// Start a kernel through Jupyter Server's REST API.
	req, _ := http.NewRequest("POST", js+"/api/kernels", strings.NewReader(`{"name":"python3"}`))
	req.Header.Set("Authorization", "token js-token")
	resp, err := jsHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var model kernelModel
	json.NewDecoder(resp.Body).Decode(&model)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || model.ID == "" {
		t.Fatalf("start through Jupyter Server: %d %+v", resp.StatusCode, model)
	}
	k, err := mgr.Get(model.ID)
	if err != nil || k.Info().Owner != "gw" {
		t.Fatalf("kernel %s is not kernelgate's (err %v): Jupyter Server did not use the gateway", model.ID, err)
	}
	// Execute through Jupyter Server's WebSocket (it speaks the legacy
	// framing to us).
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	ws, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(js, "http")+"/api/kernels/"+model.ID+"/channels?session_id=js-client",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"token js-token"}}})
	if err != nil {
		t.Fatalf("channels through Jupyter Server: %v", err)
	}
	c := newClient(t, ws, "js-client", false)
	// Jupyter Server 1.23 drops what a client sends before its own
	// connection to the gateway is up; clients nudge with kernel_info
	// until it answers, as JupyterLab does.
	nudged := false
	for deadline := time.Now().Add(30 * time.Second); !nudged; {
		if time.Now().After(deadline) {
			t.Fatal("no kernel_info_reply through Jupyter Server within 30s")
		}
		info := c.request(jmsg.KernelInfoRequest, struct{}{})
		c.send(jmsg.Shell, info)
		for {
			r, err := c.next(500 * time.Millisecond)
			if err != nil {
				break // no answer yet: ask again
			}
			if r.m.Type() == jmsg.KernelInfoReply {
				nudged = true
				break
			}
		}
	}
	reply, msgs := c.execute("import os\nprint('pid', os.getpid(), 'via gateway')")
	if got := streamText(msgs, reply.ParentID()); !strings.Contains(got, fmt.Sprintf("pid %d via gateway", k.Info().Pid)) {
		t.Errorf("output through Jupyter Server: %q; want it from kernelgate's kernel, pid %d", got, k.Info().Pid)
	}
	var rc jmsg.ExecuteReplyContent
	if json.Unmarshal(reply.Content, &rc); rc.Status != "ok" {
		t.Errorf("reply %s", reply.Content)
	}
	// Jupyter Server polls and lists it; deleting there shuts it down here.
	if code, body := get("/api/kernels"); code != 200 || !strings.Contains(string(body), model.ID) {
		t.Errorf("Jupyter Server's kernel list: %d %s", code, body)
	}
	req, _ = http.NewRequest("DELETE", js+"/api/kernels/"+model.ID, nil)
	req.Header.Set("Authorization", "token js-token")
	resp, err = jsHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE through Jupyter Server: %d", resp.StatusCode)
	}
	waitFor(t, func() bool { _, err := mgr.Get(model.ID); return errors.Is(err, kernel.ErrNotFound) })
}
