package jupyterapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kernelgate/kernelgate/internal/kernel"
)

var jupyterTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestKernelsREST(t *testing.T) {
	s := newTestServer(t, func(k *kernel.Config, _ *Config) { k.MaxKernelsPerUser = 2 })

	code, hdr, body := s.do(t, "alice", "POST", "/api/kernels", "")
	if code != http.StatusCreated {
		t.Fatalf("POST /api/kernels with an empty body: %d %s; want 201", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	id, _ := m["id"].(string)
	if hdr.Get("Location") != "/api/kernels/"+id {
		t.Errorf("Location %q; want /api/kernels/%s", hdr.Get("Location"), id)
	}
	for _, f := range []string{"id", "name", "last_activity", "execution_state", "connections"} {
		if _, ok := m[f]; !ok {
			t.Errorf("kernel model lacks %q: %s", f, body)
		}
	}
	if m["name"] != "python3" || !jupyterTimeRE.MatchString(m["last_activity"].(string)) {
		t.Errorf("model %s: want name python3 and last_activity as %%Y-%%m-%%dT%%H:%%M:%%S.%%fZ", body)
	}
	if _, ok := m["connections"].(float64); !ok {
		t.Errorf("connections is %T; Jupyter Server's gateway client reads an int", m["connections"])
	}

	for _, c := range []struct {
		name, user, method, path, body string
		want                           int
		wantIn                         string
	}{
		{"version", "alice", "GET", "/api", "", 200, `"version"`},
		{"status", "alice", "GET", "/api/status", "", 200, `"kernels":1`},
		{"specs", "alice", "GET", "/api/kernelspecs", "", 200, `"default":"python3"`},
		{"spec", "alice", "GET", "/api/kernelspecs/python3", "", 200, `"display_name"`},
		{"unknown spec", "alice", "GET", "/api/kernelspecs/cobol", "", 404, "cobol"},
		{"spec resource unknown", "alice", "GET", "/kernelspecs/python3/kernel.json", "", 404, "not found"},
		{"spec resource traversal", "alice", "GET", "/kernelspecs/python3/..%2f..%2fetc%2fpasswd", "", 404, ""},
		{"list own", "alice", "GET", "/api/kernels", "", 200, id},
		{"get own", "alice", "GET", "/api/kernels/" + id, "", 200, `"execution_state":"idle"`},
		{"list other user", "bob", "GET", "/api/kernels", "", 200, "[]"},
		{"get other user", "bob", "GET", "/api/kernels/" + id, "", 404, "Kernel does not exist"},
		{"interrupt other user", "bob", "POST", "/api/kernels/" + id + "/interrupt", "", 404, "Kernel does not exist"},
		{"restart other user", "bob", "POST", "/api/kernels/" + id + "/restart", "", 404, "Kernel does not exist"},
		{"delete other user", "bob", "DELETE", "/api/kernels/" + id, "", 404, "Kernel does not exist"},
		{"channels other user", "bob", "GET", "/api/kernels/" + id + "/channels", "", 404, "Kernel does not exist"},
		{"admin lists all", "root", "GET", "/api/kernels?all=1", "", 200, id},
		{"admin without all", "root", "GET", "/api/kernels", "", 200, "[]"},
		{"admin gets", "root", "GET", "/api/kernels/" + id, "", 200, id},
		{"unknown id", "alice", "GET", "/api/kernels/00000000-0000-0000-0000-000000000000", "", 404, "Kernel does not exist"},
		{"bad JSON", "alice", "POST", "/api/kernels", `{"name":`, 400, "not valid JSON"},
		{"unknown kernelspec", "alice", "POST", "/api/kernels", `{"name":"cobol"}`, 404, "'cobol' kernel is not available"},
		{"interrupt", "alice", "POST", "/api/kernels/" + id + "/interrupt", "", 204, ""},
		{"restart", "alice", "POST", "/api/kernels/" + id + "/restart", "", 200, `"id":"` + id + `"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := s.do(t, c.user, c.method, c.path, c.body)
			if code != c.want || !strings.Contains(string(body), c.wantIn) {
				t.Errorf("%s %s as %s: %d %s; want %d containing %q", c.method, c.path, c.user, code, body, c.want, c.wantIn)
			}
			if code >= 400 && code != 404 || code == 404 && strings.HasPrefix(c.path, "/api/kernels") {
				var e map[string]any
				if json.Unmarshal(body, &e) != nil || e["message"] == nil {
					t.Errorf("error body %s; want Jupyter's {\"message\": …}", body)
				}
			}
		})
	}

	// Quota: the second kernel is allowed, the third is refused with 403.
	s.startKernel(t, "alice")
	code, _, body = s.do(t, "alice", "POST", "/api/kernels", `{"name":"python3"}`)
	if code != http.StatusForbidden || !strings.Contains(string(body), "quota") {
		t.Errorf("third kernel with a quota of 2: %d %s; want 403 naming the quota", code, body)
	}
	// bob's quota is his own.
	s.startKernel(t, "bob")

	code, _, body = s.do(t, "alice", "DELETE", "/api/kernels/"+id, "")
	if code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s; want 204", code, body)
	}
	if code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+id, ""); code != 404 {
		t.Errorf("GET after DELETE: %d; want 404", code)
	}
}

func TestSessionsREST(t *testing.T) {
	s := newTestServer(t, nil)
	for _, c := range []struct {
		name, body string
		want       int
		wantIn     string
	}{
		{"no path", `{"type":"notebook","kernel":{"name":"python3"}}`, 400, "path"},
		{"no type", `{"path":"a.ipynb","kernel":{"name":"python3"}}`, 400, "type"},
		{"unknown kernelspec", `{"path":"a.ipynb","type":"notebook","kernel":{"name":"cobol"}}`, 501, "cobol"},
		{"unknown kernel id", `{"path":"a.ipynb","type":"notebook","kernel":{"id":"00000000-0000-0000-0000-000000000000"}}`, 404, "Kernel does not exist"},
		{"bad JSON", `{`, 400, "JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, body := s.do(t, "alice", "POST", "/api/sessions", c.body)
			if code != c.want || !strings.Contains(string(body), c.wantIn) {
				t.Errorf("POST /api/sessions %s: %d %s; want %d containing %q", c.body, code, body, c.want, c.wantIn)
			}
		})
	}

	create := func(body string) sessionModel {
		t.Helper()
		code, _, b := s.do(t, "alice", "POST", "/api/sessions", body)
		if code != http.StatusCreated {
			t.Fatalf("POST /api/sessions: %d %s", code, b)
		}
		var m sessionModel
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := create(`{"path":"a.ipynb","name":"a","type":"notebook","kernel":{"name":"python3"}}`)
	if a.Kernel.ID == "" || a.Path != "a.ipynb" || a.Type != "notebook" {
		t.Fatalf("session %+v", a)
	}
	if again := create(`{"path":"a.ipynb","type":"notebook","kernel":{"name":"python3"}}`); again.ID != a.ID || again.Kernel.ID != a.Kernel.ID {
		t.Errorf("a second POST for the same path made session %s/%s; want the existing %s/%s", again.ID, again.Kernel.ID, a.ID, a.Kernel.ID)
	}
	if code, _, _ := s.do(t, "bob", "GET", "/api/sessions/"+a.ID, ""); code != 404 {
		t.Errorf("bob GETs alice's session: %d; want 404", code)
	}
	if _, _, b := s.do(t, "bob", "GET", "/api/sessions", ""); string(b) != "[]\n" {
		t.Errorf("bob's session list: %s; want []", b)
	}

	// PATCH: rename, then a new kernel by name replaces (and shuts down) the old.
	code, _, b := s.do(t, "alice", "PATCH", "/api/sessions/"+a.ID, `{"path":"b.ipynb","kernel":{"name":"python3"}}`)
	var p sessionModel
	if code != 200 || json.Unmarshal(b, &p) != nil || p.Path != "b.ipynb" || p.Kernel.ID == a.Kernel.ID || p.Kernel.ID == "" {
		t.Fatalf("PATCH: %d %s; want 200 with path b.ipynb and a new kernel", code, b)
	}
	if code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+a.Kernel.ID, ""); code != 404 {
		t.Errorf("the replaced kernel answers GET with %d; want 404 (shut down)", code)
	}
	// A kernel started through /api/kernels can be bound by id.
	k := s.startKernel(t, "alice")
	code, _, b = s.do(t, "alice", "PATCH", "/api/sessions/"+a.ID, `{"kernel":{"id":"`+k.ID+`"}}`)
	if code != 200 || !strings.Contains(string(b), k.ID) {
		t.Errorf("PATCH kernel id: %d %s", code, b)
	}
	code, _, _ = s.do(t, "alice", "DELETE", "/api/sessions/"+a.ID, "")
	if code != 204 {
		t.Errorf("DELETE session: %d; want 204", code)
	}
	if code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+k.ID, ""); code != 404 {
		t.Errorf("the deleted session's kernel answers %d; want 404", code)
	}
	if code, _, _ := s.do(t, "alice", "GET", "/api/sessions/"+a.ID, ""); code != 404 {
		t.Errorf("GET deleted session: %d; want 404", code)
	}
}

// A start request's env reaches the kernel, filtered: KERNEL_* and the
// allow-list only; a warm pool kernel gets it too.
func TestStartEnv(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "cold", true: "pooled"}[pooled], func(t *testing.T) {
			s := newTestServer(t, func(k *kernel.Config, c *Config) {
				c.AllowedEnv = []string{"TZ"}
				k.Bootstrap = true
				if pooled {
					k.Pool = kernel.PoolConfig{Sizes: map[string]int{"python3": 1}}
				}
			})
			if pooled {
				waitFor(t, func() bool { return strings.Contains(s.mgr.PoolStatus(), "1/1") })
			}
			code, _, body := s.do(t, "alice", "POST", "/api/kernels",
				`{"name":"python3","env":{"KERNEL_USERNAME":"lab-user","TZ":"UTC","LD_PRELOAD":"/evil.so","KERNELGATE_TOKEN":"x"}}`)
			if code != 201 {
				t.Fatalf("start: %d %s", code, body)
			}
			var m kernelModel
			json.Unmarshal(body, &m)
			c := s.connect(t, "alice", m.ID, newSession(), true)
			reply, msgs := c.execute("import os\nprint([os.environ.get(k) for k in ('KERNEL_USERNAME', 'TZ', 'LD_PRELOAD', 'KERNELGATE_TOKEN')])")
			if got := streamText(msgs, reply.ParentID()); got != "['lab-user', 'UTC', None, None]\n" {
				t.Errorf("kernel environment %q; want KERNEL_USERNAME and TZ only", got)
			}
		})
	}
}

// limitErr is what a limiter returns: a message and when to retry.
type limitErr struct{ retry time.Duration }

func (e limitErr) Error() string             { return "rate limit: too many executions for user \"alice\"" }
func (e limitErr) RetryAfter() time.Duration { return e.retry }

// refusing allows the first n executions and no kernel start.
type refusing struct{ executions atomic.Int32 }

func (r *refusing) KernelStart(context.Context, string) error {
	return limitErr{1500 * time.Millisecond}
}
func (r *refusing) Message(string) error { return nil }
func (r *refusing) Execution(string) error {
	if r.executions.Add(1) > 1 {
		return limitErr{time.Second}
	}
	return nil
}

func TestRateLimits(t *testing.T) {
	s := newTestServer(t, nil)
	k := s.startKernel(t, "alice")
	s.api.limits = &refusing{}
	code, hdr, body := s.do(t, "alice", "POST", "/api/kernels", "")
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "2" || !strings.Contains(string(body), "rate limit") {
		t.Errorf("start over the limit: %d Retry-After %q %s; want 429, Retry-After 2, the reason", code, hdr.Get("Retry-After"), body)
	}
	c := s.connect(t, "alice", k.ID, newSession(), false)
	if r, _ := c.execute("1"); !strings.Contains(string(r.Content), `"ok"`) {
		t.Fatalf("first execution: %s", r.Content)
	}
	r, _ := c.execute("2")
	if !strings.Contains(string(r.Content), "rate limit") || !strings.Contains(string(r.Content), `"error"`) {
		t.Errorf("execution over the limit: %s; want an error reply naming the rate limit", r.Content)
	}
}

// An idle kernel with no connection is culled; a connected one is not.
func TestCullIdle(t *testing.T) {
	s := newTestServer(t, func(_ *kernel.Config, c *Config) {
		c.CullIdleTimeout = 300 * time.Millisecond
		c.CullInterval = 50 * time.Millisecond
	})
	watched := s.startKernel(t, "alice")
	s.connect(t, "alice", watched.ID, newSession(), true)
	waitFor(t, func() bool { return s.api.connections(watched.ID) == 1 })
	lonely := s.startKernel(t, "alice")
	waitFor(t, func() bool { code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+lonely.ID, ""); return code == 404 })
	// The culler visits every kernel on each pass, and the connected one
	// has been idle longer than the culled one: it was seen and kept.
	if code, _, _ := s.do(t, "alice", "GET", "/api/kernels/"+watched.ID, ""); code != 200 {
		t.Errorf("the connected kernel was culled: %d", code)
	}
}

// Jupyter's convention: an unauthenticated upgrade of kernel channels is a
// 403 with Jupyter's error body; other refusals are left to the next one.
func TestRefuseUpgrades(t *testing.T) {
	var passed []string
	refuse := RefuseUpgrades(func(w http.ResponseWriter, r *http.Request, err error) {
		passed = append(passed, r.URL.Path)
		w.WriteHeader(http.StatusUnauthorized)
	})
	for _, c := range []struct {
		path    string
		upgrade bool
		want    int
	}{
		{"/api/kernels/k/channels", true, 403},
		{"/api/kernels/k/channels", false, 401},
		{"/ws", true, 401},
		{"/api/kernels", false, 401},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		if c.upgrade {
			r.Header.Set("Upgrade", "websocket")
		}
		w := httptest.NewRecorder()
		refuse(w, r, errors.New("unauthenticated: no token"))
		if w.Code != c.want {
			t.Errorf("%s upgrade=%v: %d, want %d", c.path, c.upgrade, w.Code, c.want)
		}
		if c.want == 403 && !strings.Contains(w.Body.String(), `"message":"unauthenticated: no token"`) {
			t.Errorf("403 body %s; want Jupyter's {\"message\": …}", w.Body.String())
		}
	}
	if len(passed) != 3 {
		t.Errorf("refusals passed on: %v; want the three that are not channel upgrades", passed)
	}
}
