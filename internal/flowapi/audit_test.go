package flowapi

import (
	"encoding/json"
	"github.com/kernelgate/kernelgate/internal/proctest"
	"github.com/kernelgate/kernelgate/internal/ratelimit"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// auditLines returns the "cell done" lines logged so far, by cell_id.
func auditLines(t *testing.T, log *proctest.Buffer) map[string]map[string]any {
	t.Helper()
	lines := map[string]map[string]any{}
	for line := range strings.Lines(log.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "cell done" {
			lines[m["cell_id"].(string)] = m
		}
	}
	return lines
}

// Every cell that leaves the queue gets one "cell done" line at Info with
// who ran it where, how it ended, how much it printed and the limits it
// hit, and never its code.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	var buf proctest.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := NewTestServerRates(t, log, ratelimit.Rates{Messages: 50, Executions: 10, KernelStarts: 0.001}, // one kernel, then one per 1000s
		func(c *Config) { c.ExecutionTimeout = 2 * time.Second })
	c := s.dial(t)
	for _, cell := range []struct{ id, kernel, code string }{
		{"ok1", "a", "# TOPSECRET-1\nimport sys\nprint('hello')\nsys.stderr.write('oops')"},
		{"err1", "a", "1/0  # TOPSECRET-2"},
		{"slow1", "a", "import time  # TOPSECRET-3\ntime.sleep(60)"},
		{"nokernel", "b", "print('TOPSECRET-4')"},
	} {
		c.send(map[string]any{"type": "execute", "cell_id": cell.id, "kernel_id": cell.kernel, "code": cell.code})
		for {
			m := c.next()
			if m["cell_id"] == cell.id && (m["type"] == "execution_result" || m["is_last"] == true && m["type"] == "error") {
				break
			}
		}
	}

	want := map[string]map[string]any{
		"ok1":      {"status": "ok", "session_id": "a", "stdout_bytes": 6.0, "stderr_bytes": 4.0, "timeout": false, "output_truncated": false},
		"err1":     {"status": "error", "session_id": "a", "timeout": false},
		"slow1":    {"status": "cancelled", "session_id": "a", "timeout": true},
		"nokernel": {"status": "error", "session_id": "b", "rate_limited": "kernel starts", "stdout_bytes": 0.0},
	}
	var lines map[string]map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The line follows the cell's last message.
		if lines = auditLines(t, &buf); len(lines) == len(want) || time.Now().After(deadline) {
			break
		}
	}
	for id, fields := range want {
		line, ok := lines[id]
		if !ok {
			t.Errorf("no audit line for %s in:\n%s", id, buf.String())
			continue
		}
		if line["level"] != "INFO" || line["user"] != "tester" {
			t.Errorf("%s: %v", id, line)
		}
		if _, ok := line["duration_ms"].(float64); !ok {
			t.Errorf("%s: no duration_ms in %v", id, line)
		}
		for k, v := range fields {
			if line[k] != v {
				t.Errorf("%s: %s = %v, want %v (line %v)", id, k, line[k], v, line)
			}
		}
	}
	if strings.Contains(buf.String(), "TOPSECRET") {
		t.Errorf("the log holds code:\n%s", buf.String())
	}
	if n := strings.Count(buf.String(), `"msg":"cell done"`); n != len(want) {
		t.Errorf("%d audit lines, want %d", n, len(want))
	}
}
