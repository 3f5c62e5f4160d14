package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kernelgate/kernelgate/internal/kernelspec"
	"github.com/kernelgate/kernelgate/internal/sandbox"
)

const exampleFile = "../../docs/kernelgate.example.toml"

func ptr[T any](v T) *T { return &v }

// writeConfig writes a config file and returns its path.
func writeConfig(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kernelgate.toml")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExampleFile loads the shipped example, so that it cannot rot, and
// checks that it mentions every flag.
func TestExampleFile(t *testing.T) {
	c, _, _, err := load(t, env{}, "--config", exampleFile)
	if err != nil {
		t.Fatalf("the example config does not load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ConfigFile", c.ConfigFile, exampleFile},
		{"LogFormat", c.LogFormat, "json"},
		{"AdminUsers", c.AdminUsers, []string{"alice"}},
		{"AllowedOrigins", c.Flow.AllowedOrigins, []string{"localhost", "127.0.0.1", "notebooks.example.com"}},
		{"ExecutionTimeout", c.Flow.ExecutionTimeout, 30 * time.Minute},
		{"Sandbox", c.Sandbox, "bwrap"},
		{"MemoryBytes", c.SandboxPolicy.MemoryBytes, int64(2 << 30)},
		{"FileBytes", c.SandboxPolicy.FileBytes, int64(4 << 30)},
		{"TmpBytes", c.SandboxPolicy.TmpBytes, int64(0)},
		{"PythonPolicy", c.PythonPolicy, "none"},
		{"SpecPythonPolicy", c.SpecPythonPolicy, map[string]string{"python3": "audit"}},
		{"Specs", c.SandboxPolicy.Specs, map[string]sandbox.Override{"python3": {}}},
	}
	for _, ch := range checks {
		if diff := cmp.Diff(ch.want, ch.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ch.name, diff)
		}
	}
	if err := c.ApplyKernelSpecs(map[string]kernelspec.Spec{"python3": {}, "r": {}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Kernel.ExtraBootstrap["python3"], "addaudithook") || c.Kernel.ExtraBootstrap["r"] != "" {
		t.Errorf("ExtraBootstrap: python3 %d bytes, r %q; want the audit policy for python3 only",
			len(c.Kernel.ExtraBootstrap["python3"]), c.Kernel.ExtraBootstrap["r"])
	}

	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	names := flagNames(t)
	if len(names) < 40 {
		t.Fatalf("found only %d flags in the usage text: %q", len(names), names)
	}
	for _, name := range names {
		if name == "config" {
			continue
		}
		if !regexp.MustCompile(`(?m)^#? ?` + regexp.QuoteMeta(name) + ` = `).Match(data) {
			t.Errorf("flag -%s is not in %s: add it (commented, with its default)", name, exampleFile)
		}
	}
	for _, key := range sortedKeys(specKeys()) {
		if !strings.Contains(string(data), "# "+key+" = ") && !strings.Contains(string(data), "\n"+key+" = ") {
			t.Errorf("kernelspec key %s is not shown in %s", key, exampleFile)
		}
	}
}

// flagNames lists Load's flags, from its usage text.
func flagNames(t *testing.T) []string {
	t.Helper()
	_, _, usage, err := load(t, env{}, "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(usage, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestFilePrecedence(t *testing.T) {
	file := writeConfig(t, `
addr = "127.0.0.1:1111"
log-level = "debug"
session-ttl = "5m"
kernel-memory = "1GiB"
kernel-pids = 100
allowed-origins = ["a.example"]
`)
	other := writeConfig(t, `log-format = "json"`)
	for _, tt := range []struct {
		name string
		env  env
		args []string
		want func(c Config) []any
		vals []any
	}{
		{"file over defaults", env{}, []string{"--config", file}, nil,
			[]any{"127.0.0.1:1111", "debug", 5 * time.Minute, int64(1 << 30), int64(100), []string{"a.example"}, "text"}},
		{"env over file, flags over env", env{"KERNELGATE_LOG_LEVEL": "warn", "KERNELGATE_KERNEL_MEMORY": "512MiB", "KERNELGATE_KERNEL_PIDS": "64"},
			[]string{"--config", file, "--kernel-memory", "256MiB", "--allowed-origins", "b.example"}, nil,
			[]any{"127.0.0.1:1111", "warn", 5 * time.Minute, int64(256 << 20), int64(64), []string{"b.example"}, "text"}},
		{"file from the environment", env{"KERNELGATE_CONFIG": file}, nil, nil,
			[]any{"127.0.0.1:1111", "debug", 5 * time.Minute, int64(1 << 30), int64(100), []string{"a.example"}, "text"}},
		{"--config over KERNELGATE_CONFIG", env{"KERNELGATE_CONFIG": file}, []string{"--config=" + other}, nil,
			[]any{"127.0.0.1:8000", "info", 10 * time.Minute, int64(2 << 30), int64(512), Default().Flow.AllowedOrigins, "json"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, err := load(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{c.Addr, c.LogLevel, c.Flow.DetachedTTL, c.SandboxPolicy.MemoryBytes, c.SandboxPolicy.PIDs, c.Flow.AllowedOrigins, c.LogFormat}
			if diff := cmp.Diff(tt.vals, got); diff != "" {
				t.Errorf("addr, log-level, session-ttl, kernel-memory, kernel-pids, allowed-origins, log-format (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileKernelSpecs(t *testing.T) {
	file := writeConfig(t, `
python-policy = "audit"
[kernelspecs.big]
memory = "8GiB"
cpus = 2.5
pids = 100
nofile = 4096
file-size = 0
tmp-size = "auto"
network = true

[kernelspecs."r-4.3"]
tmp-size = "64MiB"
file-size = "1GiB"
python-policy = "none"
`)
	c, _, _, err := load(t, env{}, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]sandbox.Override{
		"big": {Network: ptr(true), MemoryBytes: ptr[int64](8 << 30), PIDs: ptr[int64](100), CPUQuota: ptr(2.5),
			NoFile: ptr[uint64](4096), TmpBytes: ptr[int64](0), FileBytes: ptr[int64](-1)},
		"r-4.3": {TmpBytes: ptr[int64](64 << 20), FileBytes: ptr[int64](1 << 30)},
	}
	if diff := cmp.Diff(want, c.SandboxPolicy.Specs); diff != "" {
		t.Errorf("Specs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"r-4.3": "none"}, c.SpecPythonPolicy); diff != "" {
		t.Errorf("SpecPythonPolicy (-want +got):\n%s", diff)
	}

	err = c.ApplyKernelSpecs(map[string]kernelspec.Spec{"python3": {}, "big": {}})
	if err == nil || !strings.Contains(err.Error(), "kernelspecs that do not exist: r-4.3 (found: big, python3)") {
		t.Errorf("ApplyKernelSpecs with r-4.3 missing: %v", err)
	}
	if err := c.ApplyKernelSpecs(map[string]kernelspec.Spec{"python3": {}, "big": {}, "r-4.3": {}}); err != nil {
		t.Fatal(err)
	}
	var with []string
	for name, code := range c.Kernel.ExtraBootstrap {
		if strings.Contains(code, "addaudithook") {
			with = append(with, name)
		}
	}
	slices.Sort(with)
	if diff := cmp.Diff([]string{"big", "python3"}, with); diff != "" {
		t.Errorf("kernelspecs with the audit policy (-want +got):\n%s", diff)
	}
}

func TestFileErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		want []string // fragments of the error
	}{
		{"unknown key", "addr = \"127.0.0.1:1\"\n\nadr = \"x\"\n", []string{"line 3: adr: unknown key", "kernelgate serve -h"}},
		{"two unknown keys, both reported", "a = 1\nlog-level = \"info\"\nb = 2\n", []string{"line 1: a: unknown key", "line 3: b: unknown key"}},
		{"bad size", "\n\nkernel-memory = \"lots\"\n", []string{"line 3: kernel-memory: invalid value \"lots\"", "binary: 1K = 1024"}},
		{"bad duration", "session-ttl = 10\n", []string{"line 1: session-ttl: invalid value \"10\"", "want a duration such as"}},
		{"bad bool", "kernel-network = \"yes please\"\n", []string{"line 1: kernel-network: invalid value"}},
		{"table for a flag", "[addr]\nx = 1\n", []string{"line 1: addr: want a value, not a map"}},
		{"nested list", "allowed-origins = [[\"a\"]]\n", []string{"line 1: allowed-origins: want a list of plain values"}},
		{"date", "session-ttl = 2024-01-01\n", []string{"line 1: session-ttl: dates are not settings"}},
		{"syntax", "addr = \"127.0.0.1:1\nlog-level = 3\n", []string{"line 1:", "kernelgate.toml"}},
		{"config in config", "config = \"/etc/other.toml\"\n", []string{"line 1: config: a config file cannot name another config file"}},
		{"unknown kernelspec key", "[kernelspecs.python3]\nmemory = \"1GiB\"\nmemroy = \"2GiB\"\n", []string{"line 3: kernelspecs.python3.memroy: unknown key", "cpus, file-size, memory, network, nofile, pids, python-policy, tmp-size"}},
		{"bad kernelspec value", "[kernelspecs.python3]\n\ncpus = \"two\"\n", []string{"line 3: kernelspecs.python3.cpus: invalid value \"two\""}},
		{"bad kernelspec policy", "[kernelspecs.python3]\npython-policy = \"strict\"\n", []string{"line 2: kernelspecs.python3.python-policy", "want none or audit"}},
		{"kernelspec name not lowercase", "[kernelspecs.Python3]\nmemory = \"1GiB\"\n", []string{"line 1: kernelspecs.Python3: not a kernelspec name"}},
		{"kernelspec not a table", "[kernelspecs]\npython3 = 5\n", []string{"line 2: kernelspecs.python3: want a table of limits"}},
		{"kernelspecs not a table", "kernelspecs = 5\n", []string{"line 1: kernelspecs: want tables"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.data)
			_, _, _, err := load(t, env{}, "--config", file)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "config file "+file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	_, _, _, err := load(t, env{"KERNELGATE_CONFIG": "/nonexistent/kernelgate.toml"})
	if err == nil || !strings.Contains(err.Error(), "config file /nonexistent/kernelgate.toml: open") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512MiB", 512 << 20, true},
		{"512mib", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"2G", 2 << 30, true},
		{"2gb", 2 << 30, true},
		{" 64 K ", 64 << 10, true},
		{"1.5GiB", 3 << 29, true},
		{"1TiB", 1 << 40, true},
		{"100B", 100, true},
		{"", 0, false},
		{"GiB", 0, false},
		{"-1", 0, false},
		{"-1GiB", 0, false},
		{"2 GiBs", 0, false},
		{"NaN", 0, false},
		{"9999999999TiB", 0, false},
	} {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0"}, {1000, "1000"}, {4 << 10, "4KiB"}, {2 << 30, "2GiB"}, {3 << 29, "1536MiB"}, {1 << 40, "1TiB"}} {
		if got := formatSize(tt.n); got != tt.want {
			t.Errorf("formatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSandboxFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  env
		args []string
		want sandbox.Policy // compared: NoFile, FileBytes, TmpBytes, MemoryBytes
		pol  string
	}{
		{"defaults", env{}, nil, sandbox.Policy{NoFile: 1024, FileBytes: 4 << 30, TmpBytes: 0, MemoryBytes: 2 << 30}, "none"},
		{"flags", env{}, []string{"--kernel-nofile", "4096", "--kernel-file-size", "1GiB", "--kernel-tmp-size", "64MiB", "--kernel-memory", "1.5GiB", "--python-policy", "audit"},
			sandbox.Policy{NoFile: 4096, FileBytes: 1 << 30, TmpBytes: 64 << 20, MemoryBytes: 3 << 29}, "audit"},
		{"zero means no limit", env{}, []string{"--kernel-file-size", "0", "--kernel-tmp-size", "0", "--kernel-nofile", "0", "--kernel-memory", "0"},
			sandbox.Policy{NoFile: 0, FileBytes: -1, TmpBytes: -1, MemoryBytes: 0}, "none"},
		{"env", env{"KERNELGATE_KERNEL_TMP_SIZE": "auto", "KERNELGATE_KERNEL_FILE_SIZE": "8MiB", "KERNELGATE_KERNEL_MEMORY": "268435456", "KERNELGATE_PYTHON_POLICY": "audit"}, nil,
			sandbox.Policy{NoFile: 1024, FileBytes: 8 << 20, TmpBytes: 0, MemoryBytes: 256 << 20}, "audit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, err := load(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			p := c.SandboxPolicy
			got := sandbox.Policy{NoFile: p.NoFile, FileBytes: p.FileBytes, TmpBytes: p.TmpBytes, MemoryBytes: p.MemoryBytes}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
			if c.PythonPolicy != tt.pol {
				t.Errorf("PythonPolicy %q, want %q", c.PythonPolicy, tt.pol)
			}
		})
	}
}

func TestSandboxAndAdminValidation(t *testing.T) {
	secret := writeConfig(t, strings.Repeat("s", 40))
	for _, tt := range []struct {
		name   string
		env    env
		args   []string
		file   string
		fields []string
		msg    string
	}{
		{"nofile too small", nil, []string{"--kernel-nofile", "10"}, "", []string{"kernel-nofile"}, "at least 64"},
		{"memory too small", nil, []string{"--kernel-memory", "1MiB"}, "", []string{"kernel-memory"}, "at least 16MiB"},
		{"file size too small", nil, []string{"--kernel-file-size", "1K"}, "", []string{"kernel-file-size"}, "at least 1MiB"},
		{"tmp size too small", nil, []string{"--kernel-tmp-size", "4K"}, "", []string{"kernel-tmp-size"}, "at least 1MiB"},
		{"pids too small", nil, []string{"--kernel-pids", "3"}, "", []string{"kernel-pids"}, "at least 8"},
		{"cpus too small", nil, []string{"--kernel-cpus", "0.001"}, "", []string{"kernel-cpus"}, "at least 0.01"},
		{"bad python policy", nil, []string{"--python-policy", "strict"}, "", []string{"python-policy"}, "want none or audit"},
		{"kernelspec limits", nil, nil, "[kernelspecs.r]\nmemory = \"1MiB\"\npids = 2\n", []string{"kernelspecs.r.memory", "kernelspecs.r.pids"}, "kernelspecs.r.memory=\"1MiB\""},
		{"anonymous admin with auth", env{"KERNELGATE_TOKEN": strings.Repeat("t", 20)}, []string{"--admin-users", "alice,anonymous"}, "", []string{"admin-users"}, "local user without authentication"},
		{"admin with a space", nil, nil, "admin-users = [\"bob smith\"]\n", []string{"admin-users"}, "no spaces"},
		{"roles claim without a key", nil, []string{"--jwt-roles-claim", "roles"}, "", []string{"jwt-roles-claim"}, "needs --jwt-hs256-secret-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			_, _, _, err := load(t, tt.env, args...)
			if diff := cmp.Diff(tt.fields, fieldNames(err)); diff != "" {
				t.Errorf("fields (-want +got):\n%s\nerr: %v", diff, err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v lacks %q", err, tt.msg)
			}
		})
	}
	// What is valid passes.
	if _, _, _, err := load(t, env{}, "--admin-users", "anonymous"); err != nil {
		t.Errorf("anonymous admin without auth: %v", err)
	}
	if _, _, _, err := load(t, env{}, "--jwt-hs256-secret-file", secret, "--jwt-roles-claim", "realm_access.roles", "--admin-users", " alice , bob "); err != nil {
		t.Errorf("roles claim with a key: %v", err)
	}
	c, _, _, _ := load(t, env{}, "--admin-users", " alice , bob ,")
	if diff := cmp.Diff([]string{"alice", "bob"}, c.AdminUsers); diff != "" {
		t.Errorf("AdminUsers (-want +got):\n%s", diff)
	}
}
