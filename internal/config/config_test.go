package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kernelgate/kernelgate/internal/kernelspec"
)

// env is a fake environment for Load's getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// load calls Load with a fake environment, no inherited process
// environment, and usage output collected.
func load(t *testing.T, e env, args ...string) (Config, []string, string, error) {
	t.Helper()
	var usage bytes.Buffer
	c, rest, err := Load("kernelgate", args, e.get, nil, &usage)
	return c, rest, usage.String(), err
}

// fieldErrors flattens an error tree into its *FieldErrors.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func fieldNames(err error) []string {
	var names []string
	for _, fe := range fieldErrors(err) {
		names = append(names, fe.Field)
	}
	return names
}

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"Addr", c.Addr, "127.0.0.1:8000"},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "text"},
		{"KernelSpec", c.KernelSpec, "python3"},
		{"Python", c.Python, "/usr/bin/python3"},
		{"ShutdownTimeout", c.ShutdownTimeout, 15 * time.Second},
		{"Kernel.Transport", c.Kernel.Transport, "ipc"},
		{"Kernel.AutoRestart", c.Kernel.AutoRestart, true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("Default().%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadNothingSetIsDefault(t *testing.T) {
	c, rest, usage, err := load(t, env{"TMPDIR": "/scratch"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(rest) != 0 {
		t.Errorf("rest = %q, want none", rest)
	}
	if usage != "" {
		t.Errorf("usage output %q on a good load", usage)
	}
	want := Default()
	ignore := cmpopts.IgnoreFields(Config{}, "Kernel.Env", "Kernel.RuntimeDir")
	if diff := cmp.Diff(want, c, ignore); diff != "" {
		t.Errorf("Load with nothing set differs from Default (-want +got):\n%s", diff)
	}
}

func TestLoadEnvAndFlags(t *testing.T) {
	fullEnv := env{
		"KERNELGATE_ADDR":                 "127.0.0.2:9000",
		"KERNELGATE_LOG_LEVEL":            "debug",
		"KERNELGATE_LOG_FORMAT":           "json",
		"KERNELGATE_SHUTDOWN_TIMEOUT":     "5s",
		"KERNELGATE_KERNEL":               "ir",
		"KERNELGATE_PYTHON":               "/opt/py/bin/python3",
		"KERNELGATE_RUNTIME_DIR":          "/var/run/kg",
		"KERNELGATE_TRANSPORT":            "ipc",
		"KERNELGATE_KERNEL_START_TIMEOUT": "1m",
		"KERNELGATE_HEARTBEAT_INTERVAL":   "0s",
		"KERNELGATE_AUTO_RESTART":         "false",
	}
	fromEnv := func() Config {
		c := Default()
		c.Addr = "127.0.0.2:9000"
		c.LogLevel = "debug"
		c.LogFormat = "json"
		c.ShutdownTimeout = 5 * time.Second
		c.KernelSpec = "ir"
		c.Python = "/opt/py/bin/python3"
		c.Kernel.RuntimeDir = "/var/run/kg"
		c.Kernel.Transport = "ipc"
		c.Kernel.StartTimeout = time.Minute
		c.Kernel.HeartbeatInterval = 0
		c.Kernel.AutoRestart = false
		return c
	}
	tests := []struct {
		name     string
		env      env
		args     []string
		want     func() Config
		wantRest []string
	}{
		{
			name: "env only",
			env:  fullEnv,
			want: fromEnv,
		},
		{
			name: "flags only",
			env:  env{},
			args: []string{
				"-addr", "127.0.0.1:7000", "-log-level", "warn", "-log-format", "json",
				"-shutdown-timeout", "1s", "-kernel", "julia", "-python", "/usr/local/bin/python3",
				"-runtime-dir", "/run/x", "-transport", "ipc", "-kernel-start-timeout", "2m",
				"-heartbeat-interval", "10s", "-auto-restart=false",
			},
			want: func() Config {
				c := Default()
				c.Addr = "127.0.0.1:7000"
				c.LogLevel = "warn"
				c.LogFormat = "json"
				c.ShutdownTimeout = time.Second
				c.KernelSpec = "julia"
				c.Python = "/usr/local/bin/python3"
				c.Kernel.RuntimeDir = "/run/x"
				c.Kernel.Transport = "ipc"
				c.Kernel.StartTimeout = 2 * time.Minute
				c.Kernel.HeartbeatInterval = 10 * time.Second
				c.Kernel.AutoRestart = false
				return c
			},
		},
		{
			name: "flags override env",
			env:  fullEnv,
			args: []string{"-addr=127.0.0.1:1234", "-log-level", "error", "-transport", "tcp", "-sandbox", "off", "-auto-restart", "-heartbeat-interval", "250ms"},
			want: func() Config {
				c := fromEnv()
				c.Addr = "127.0.0.1:1234"
				c.LogLevel = "error"
				c.Kernel.Transport = "tcp"
				c.Sandbox = "off"
				c.Kernel.AutoRestart = true
				c.Kernel.HeartbeatInterval = 250 * time.Millisecond
				return c
			},
		},
		{
			name: "empty env values are unset",
			env:  env{"KERNELGATE_ADDR": "", "KERNELGATE_LOG_LEVEL": ""},
			want: Default,
		},
		{
			name:     "positional arguments are returned",
			env:      env{"KERNELGATE_LOG_LEVEL": "warn"},
			args:     []string{"-log-level", "debug", "a.py", "-not-a-flag", "b.py"},
			wantRest: []string{"a.py", "-not-a-flag", "b.py"},
			want: func() Config {
				c := Default()
				c.LogLevel = "debug"
				return c
			},
		},
		{
			name: "spec search from the environment",
			env: env{
				"JUPYTER_PATH":     "/a:/b",
				"JUPYTER_DATA_DIR": "/data",
				"HOME":             "/home/u",
				"XDG_DATA_HOME":    "/xdg",
			},
			want: func() Config {
				c := Default()
				c.SpecSearch = kernelspec.Env{JupyterPath: "/a:/b", JupyterDataDir: "/data", Home: "/home/u", XDGDataHome: "/xdg"}
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rest, _, err := load(t, tt.env, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.want()
			opts := []cmp.Option{cmpopts.IgnoreFields(Config{}, "Kernel.Env")}
			if want.Kernel.RuntimeDir == "" {
				opts = append(opts, cmpopts.IgnoreFields(Config{}, "Kernel.RuntimeDir"))
			}
			if diff := cmp.Diff(want, got, opts...); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRest, rest, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadBadValues(t *testing.T) {
	tests := []struct {
		name       string
		env        env
		args       []string
		wantFields []string
		wantMsg    []string
	}{
		{
			name:       "bad addr flag",
			args:       []string{"-addr", "localhost"},
			wantFields: []string{"addr"},
			wantMsg:    []string{`config addr="localhost"`, "host:port"},
		},
		{
			name:       "bad addr env",
			env:        env{"KERNELGATE_ADDR": "nonsense"},
			wantFields: []string{"addr"},
			wantMsg:    []string{`addr="nonsense"`},
		},
		{
			name:       "bad log level",
			args:       []string{"-log-level", "verbose"},
			wantFields: []string{"log-level"},
			wantMsg:    []string{`log-level="verbose"`, "debug, info, warn or error"},
		},
		{
			name:       "bad log format",
			env:        env{"KERNELGATE_LOG_FORMAT": "xml"},
			wantFields: []string{"log-format"},
			wantMsg:    []string{`log-format="xml"`},
		},
		{
			name:       "bad transport",
			args:       []string{"-transport", "udp"},
			wantFields: []string{"transport"},
			wantMsg:    []string{`transport="udp"`, "tcp or ipc"},
		},
		{
			name:       "relative python",
			args:       []string{"-python", "python3"},
			wantFields: []string{"python"},
			wantMsg:    []string{`python="python3"`, "absolute path"},
		},
		{
			name:       "relative python env",
			env:        env{"KERNELGATE_PYTHON": "bin/python"},
			wantFields: []string{"python"},
			wantMsg:    []string{`python="bin/python"`},
		},
		{
			name:       "negative heartbeat",
			args:       []string{"-heartbeat-interval", "-1s"},
			wantFields: []string{"heartbeat-interval"},
			wantMsg:    []string{`heartbeat-interval="-1s"`, "must not be negative"},
		},
		{
			name:       "negative heartbeat env",
			env:        env{"KERNELGATE_HEARTBEAT_INTERVAL": "-3s"},
			wantFields: []string{"heartbeat-interval"},
			wantMsg:    []string{`heartbeat-interval="-3s"`},
		},
		{
			name:       "zero start timeout",
			args:       []string{"-kernel-start-timeout", "0s"},
			wantFields: []string{"kernel-start-timeout"},
			wantMsg:    []string{"must be positive"},
		},
		{
			name:       "unparsable env duration names the variable",
			env:        env{"KERNELGATE_HEARTBEAT_INTERVAL": "soon"},
			wantFields: []string{"KERNELGATE_HEARTBEAT_INTERVAL"},
			wantMsg:    []string{`config KERNELGATE_HEARTBEAT_INTERVAL="soon"`},
		},
		{
			name:       "unparsable env bool names the variable",
			env:        env{"KERNELGATE_AUTO_RESTART": "maybe"},
			wantFields: []string{"KERNELGATE_AUTO_RESTART"},
			wantMsg:    []string{`KERNELGATE_AUTO_RESTART="maybe"`},
		},
		{
			name:       "all problems reported at once",
			args:       []string{"-addr", "x", "-log-level", "loud", "-transport", "pigeon", "-python", "py", "-heartbeat-interval", "-1ms"},
			wantFields: []string{"addr", "log-level", "transport", "heartbeat-interval", "python"},
			wantMsg:    []string{"addr=", "log-level=", "transport=", "heartbeat-interval=", "python="},
		},
		{
			name:       "all env problems reported at once",
			env:        env{"KERNELGATE_SHUTDOWN_TIMEOUT": "long", "KERNELGATE_KERNEL_START_TIMEOUT": "short"},
			wantFields: []string{"KERNELGATE_KERNEL_START_TIMEOUT", "KERNELGATE_SHUTDOWN_TIMEOUT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env == nil {
				tt.env = env{}
			}
			_, _, _, err := load(t, tt.env, tt.args...)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Load error %v (%T) holds no *FieldError", err, err)
			}
			got := fieldNames(err)
			if diff := cmp.Diff(tt.wantFields, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("fields named (-want +got):\n%s\nerror: %v", diff, err)
			}
			for _, sub := range tt.wantMsg {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not contain %q", err, sub)
				}
			}
			for _, fe := range fieldErrors(err) {
				if fe.Err == nil || !errors.Is(fe, fe.Err) {
					t.Errorf("FieldError %v does not unwrap to its cause", fe)
				}
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := Default()
	c.Addr = "nope"
	c.LogLevel = "trace"
	c.LogFormat = "yaml"
	c.Kernel.Transport = ""
	c.Kernel.StartTimeout = -time.Second
	c.Kernel.HeartbeatInterval = -time.Second
	c.Python = "./python"
	want := []string{"addr", "log-level", "log-format", "transport", "kernel-start-timeout", "heartbeat-interval", "python"}
	if diff := cmp.Diff(want, fieldNames(c.Validate())); diff != "" {
		t.Errorf("Validate fields (-want +got):\n%s", diff)
	}
}

func TestFieldError(t *testing.T) {
	cause := errors.New("want host:port")
	err := error(&FieldError{Field: "addr", Value: `a"b`, Err: cause})
	if got, want := err.Error(), `config addr="a\"b": want host:port`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Error("FieldError does not unwrap to its cause")
	}
}

func TestKernelEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{
			name: "nil",
			want: []string{"PYDEVD_DISABLE_FILE_VALIDATION=1"},
		},
		{
			name: "secrets stripped, order kept",
			environ: []string{
				"PATH=/usr/bin",
				"KERNELGATE_TOKEN=s3cr3t",
				"HOME=/home/u",
				"KERNELGATE_ADDR=0.0.0.0:80",
				"KERNELGATE_=x",
				"LANG=C.UTF-8",
			},
			want: []string{"PATH=/usr/bin", "HOME=/home/u", "LANG=C.UTF-8", "PYDEVD_DISABLE_FILE_VALIDATION=1"},
		},
		{
			name: "only the exact prefix is stripped",
			environ: []string{
				"MY_KERNELGATE_X=1",
				"kernelgate_lower=1",
				"KERNELGATEX=1",
				"X=KERNELGATE_IN_VALUE",
			},
			want: []string{"MY_KERNELGATE_X=1", "kernelgate_lower=1", "KERNELGATEX=1", "X=KERNELGATE_IN_VALUE", "PYDEVD_DISABLE_FILE_VALIDATION=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.environ)
			got := kernelEnv(tt.environ)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("kernelEnv (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(in, tt.environ); diff != "" {
				t.Errorf("kernelEnv modified its input (-before +after):\n%s", diff)
			}
		})
	}
}

func TestLoadKernelEnvHasNoSecrets(t *testing.T) {
	environ := []string{"PATH=/bin", "KERNELGATE_TOKEN=s3cr3t", "KERNELGATE_PYTHON=/usr/bin/python3"}
	c, _, err := Load("kernelgate", nil, env{"KERNELGATE_TOKEN": "s3cr3t"}.get, environ, io.Discard)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, kv := range c.Kernel.Env {
		if strings.HasPrefix(kv, "KERNELGATE_") || strings.Contains(kv, "s3cr3t") {
			t.Errorf("kernel environment leaks %q", kv)
		}
	}
	if !slices.Contains(c.Kernel.Env, "PYDEVD_DISABLE_FILE_VALIDATION=1") {
		t.Errorf("kernel environment %q lacks PYDEVD_DISABLE_FILE_VALIDATION=1", c.Kernel.Env)
	}
	if !slices.Contains(c.Kernel.Env, "PATH=/bin") {
		t.Errorf("kernel environment %q lost PATH", c.Kernel.Env)
	}
}

func TestLoadRuntimeDir(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		env  env
		args []string
		want string
	}{
		{name: "under TMPDIR", env: env{"TMPDIR": "/scratch/tmp"}, want: filepath.Join("/scratch/tmp", "kernelgate-"+pid)},
		{name: "TMPDIR with trailing slash", env: env{"TMPDIR": "/scratch/"}, want: filepath.Join("/scratch", "kernelgate-"+pid)},
		{name: "no TMPDIR", env: env{}, want: filepath.Join("/tmp", "kernelgate-"+pid)},
		{name: "env wins", env: env{"TMPDIR": "/scratch", "KERNELGATE_RUNTIME_DIR": "/run/kg"}, want: "/run/kg"},
		{name: "flag wins", env: env{"TMPDIR": "/scratch", "KERNELGATE_RUNTIME_DIR": "/run/kg"}, args: []string{"-runtime-dir", "/run/flag"}, want: "/run/flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, err := load(t, tt.env, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Kernel.RuntimeDir != tt.want {
				t.Errorf("RuntimeDir = %q, want %q", c.Kernel.RuntimeDir, tt.want)
			}
		})
	}
}

func TestLoadUnknownFlag(t *testing.T) {
	_, _, usage, err := load(t, env{}, "-no-such-flag")
	if err == nil {
		t.Fatal("Load with an unknown flag succeeded")
	}
	if errors.Is(err, flag.ErrHelp) {
		t.Errorf("unknown flag reported as help: %v", err)
	}
	if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error %q does not name the flag", err)
	}
	if !strings.Contains(usage, "no-such-flag") {
		t.Errorf("usage output %q does not name the bad flag", usage)
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			_, _, usage, err := load(t, env{}, arg)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Load(%s) error = %v, want flag.ErrHelp", arg, err)
			}
			for _, want := range []string{
				"kernelgate", "-addr", "-log-level", "-log-format", "-shutdown-timeout", "-kernel",
				"-python", "-runtime-dir", "-transport", "-kernel-start-timeout",
				"-heartbeat-interval", "-auto-restart", "KERNELGATE_ADDR", "127.0.0.1:8000",
			} {
				if !strings.Contains(usage, want) {
					t.Errorf("usage output does not mention %q:\n%s", want, usage)
				}
			}
		})
	}
}

// With ipc the runtime dir must leave room for socket paths (107 bytes).
func TestValidate_IPCRuntimeDirLength(t *testing.T) {
	long := "/" + strings.Repeat("d", 90)
	for _, tt := range []struct {
		transport, dir string
		ok             bool
	}{
		{"ipc", "/tmp/kernelgate-1", true},
		{"ipc", long, false},
		{"tcp", long, true},
	} {
		c := Default()
		c.Sandbox = "off" // tcp needs it off; this test is about path lengths
		c.Kernel.Transport, c.Kernel.RuntimeDir = tt.transport, tt.dir
		err := c.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "runtime-dir")) {
			t.Errorf("transport %s, dir of %d bytes: err = %v, want ok=%v", tt.transport, len(tt.dir), err, tt.ok)
		}
	}
}

// Listening beyond loopback needs authentication.
func TestValidate_AuthOffLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8000", "", true},
		{"localhost:8000", "", true},
		{"[::1]:8000", "", true},
		{"0.0.0.0:8000", "", false},
		{":8000", "", false},
		{"10.1.2.3:8000", "", false},
		{"0.0.0.0:8000", "secret-secret-secret", true},
	} {
		c := Default()
		c.Addr, c.Token = tt.addr, tt.token
		err := c.Validate()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "requires authentication")) {
			t.Errorf("addr %s token %v: err = %v, want ok=%v", tt.addr, tt.token != "", err, tt.ok)
		}
	}
}

// A sandbox without network cannot reach a kernel over tcp.
func TestValidate_SandboxNeedsIPC(t *testing.T) {
	c := Default()
	c.Kernel.Transport = "tcp"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "need --transport ipc") {
		t.Fatalf("tcp with the sandbox: %v", err)
	}
	c.Sandbox = "off"
	if err := c.Validate(); err != nil {
		t.Fatalf("tcp without the sandbox: %v", err)
	}
	c.Sandbox = "maybe"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "want auto, bwrap or none") {
		t.Fatalf("bad sandbox mode: %v", err)
	}
}
