package kernelspec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeSpec(t *testing.T, dir, kernelJSON string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kernel.json"), []byte(kernelJSON), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    Spec
		wantErr string // substring; empty means success
	}{
		{
			name: "full",
			json: `{"argv":["/usr/bin/python3","-m","ipykernel_launcher","-f","{connection_file}"],
				"display_name":"Python 3 (ipykernel)","language":"python","interrupt_mode":"message",
				"env":{"A":"b"},"metadata":{"debugger":true},"unknown_key":1}`,
			want: Spec{
				Argv:          []string{"/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"},
				DisplayName:   "Python 3 (ipykernel)",
				Language:      "python",
				InterruptMode: InterruptMessage,
				Env:           map[string]string{"A": "b"},
				Metadata:      json.RawMessage(`{"debugger":true}`),
			},
		},
		{
			name: "interrupt mode defaults to signal",
			json: `{"argv":["k"]}`,
			want: Spec{Argv: []string{"k"}, InterruptMode: InterruptSignal},
		},
		{
			name: "interrupt mode is caseless",
			json: `{"argv":["k"],"interrupt_mode":"Message"}`,
			want: Spec{Argv: []string{"k"}, InterruptMode: InterruptMessage},
		},
		{
			name: "null metadata dropped",
			json: `{"argv":["k"],"metadata":null}`,
			want: Spec{Argv: []string{"k"}, InterruptMode: InterruptSignal},
		},
		{name: "bad interrupt mode", json: `{"argv":["k"],"interrupt_mode":"sigint"}`, wantErr: `"interrupt_mode" is "sigint", want "signal" or "message"`},
		{name: "missing argv", json: `{"display_name":"x"}`, wantErr: `"argv" is missing`},
		{name: "null argv", json: `{"argv":null}`, wantErr: `"argv" is missing`},
		{name: "empty argv", json: `{"argv":[]}`, wantErr: `"argv" is empty`},
		{name: "empty program", json: `{"argv":[""]}`, wantErr: `"argv"[0] (the program) is empty`},
		{name: "argv not strings", json: `{"argv":[1]}`, wantErr: "cannot unmarshal"},
		{name: "env not strings", json: `{"argv":["k"],"env":{"A":1}}`, wantErr: "cannot unmarshal"},
		{name: "metadata not object", json: `{"argv":["k"],"metadata":[1]}`, wantErr: `"metadata" must be an object`},
		{name: "syntax", json: `{"argv":`, wantErr: "invalid kernel.json: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "MyKernel")
			writeSpec(t, dir, tt.json)
			got, err := Load(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidSpec) {
					t.Errorf("Load error %v does not wrap ErrInvalidSpec", err)
				}
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("Load error %q does not name the spec dir", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.want.Name = "mykernel"
			tt.want.Dir = dir
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Load of empty dir = %v, want fs.ErrNotExist and not ErrInvalidSpec", err)
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	first := filepath.Join(root, "first")
	second := filepath.Join(root, "second")

	writeSpec(t, filepath.Join(first, "Python3"), `{"argv":["first-python"]}`)
	writeSpec(t, filepath.Join(first, "broken"), `{"argv":`)
	writeSpec(t, filepath.Join(first, "noargv"), `{"display_name":"x"}`)
	writeSpec(t, filepath.Join(first, "bad name!"), `{"argv":["x"]}`)
	if err := os.MkdirAll(filepath.Join(first, "no-kernel-json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(first, "stray-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	writeSpec(t, filepath.Join(second, "python3"), `{"argv":["second-python"]}`)
	writeSpec(t, filepath.Join(second, "broken"), `{"argv":["second-broken"]}`)
	writeSpec(t, filepath.Join(second, "ir"), `{"argv":["R"],"language":"R"}`)

	notADir := filepath.Join(root, "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	specs, err := Find([]string{filepath.Join(root, "missing"), notADir, first, second})

	got := map[string]string{}
	for name, s := range specs {
		if s.Name != name {
			t.Errorf("spec %q has Name %q", name, s.Name)
		}
		got[name] = s.Argv[0] + " @ " + s.Dir
	}
	want := map[string]string{
		// First dir wins, and names are lowercased.
		"python3": "first-python @ " + filepath.Join(first, "Python3"),
		"ir":      "R @ " + filepath.Join(second, "ir"),
		// "broken" is claimed by the broken first spec: no fallback.
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Find specs mismatch (-want +got):\n%s", diff)
	}

	if err == nil {
		t.Fatal("Find returned no error for broken specs")
	}
	if !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Find error does not wrap ErrInvalidSpec: %v", err)
	}
	var n int
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n = len(j.Unwrap())
	}
	if n != 3 {
		t.Errorf("Find reported %d problems, want 3 (broken, noargv, bad name): %v", n, err)
	}
	for _, s := range []string{`kernelspec "broken"`, `kernelspec "noargv"`, `"argv" is missing`, `invalid kernel name "bad name!"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Find error lacks %q:\n%v", s, err)
		}
	}
}

func TestFindEmpty(t *testing.T) {
	specs, err := Find([]string{filepath.Join(t.TempDir(), "nope")})
	if err != nil || specs == nil || len(specs) != 0 {
		t.Errorf("Find(missing) = %v, %v; want empty non-nil map, nil", specs, err)
	}
}

func TestDefault(t *testing.T) {
	got := Default("/usr/bin/python3")
	want := Spec{
		Name:          "python3",
		Argv:          []string{"/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"},
		DisplayName:   "Python 3 (ipykernel)",
		Language:      "python",
		InterruptMode: "signal",
		Env:           map[string]string{"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default mismatch (-want +got):\n%s", diff)
	}
	if py, ok := got.Python(); !ok || py != "/usr/bin/python3" {
		t.Errorf("Default().Python() = %q, %v", py, ok)
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		conn string
		want []string
	}{
		{
			name: "standard",
			spec: Spec{Dir: "/k/py", Argv: []string{"python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"}},
			conn: "/run/k.json",
			want: []string{"python3", "-m", "ipykernel_launcher", "-f", "/run/k.json"},
		},
		{
			name: "substrings, resource dir, unknown left alone",
			spec: Spec{Dir: "/k/r", Argv: []string{"R", "--conn={connection_file}", "{resource_dir}/init.R", "{prefix}", "{unknown}", "{not valid}", "{}"}},
			conn: "/c.json",
			want: []string{"R", "--conn=/c.json", "/k/r/init.R", "{prefix}", "{unknown}", "{not valid}", "{}"},
		},
		{
			name: "single pass: substituted text is not expanded again",
			spec: Spec{Dir: "/k/r", Argv: []string{"k", "{connection_file}"}},
			conn: "/tmp/{resource_dir}.json",
			want: []string{"k", "/tmp/{resource_dir}.json"},
		},
		{
			name: "no dir keeps resource_dir placeholder",
			spec: Spec{Argv: []string{"k", "{resource_dir}", "{connection_file}{connection_file}"}},
			conn: "c",
			want: []string{"k", "{resource_dir}", "cc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]string(nil), tt.spec.Argv...)
			if diff := cmp.Diff(tt.want, tt.spec.Command(tt.conn)); diff != "" {
				t.Errorf("Command mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(orig, tt.spec.Argv); diff != "" {
				t.Errorf("Command modified the spec's argv:\n%s", diff)
			}
		})
	}
}

func TestPython(t *testing.T) {
	tests := []struct {
		argv   []string
		want   string
		wantOK bool
	}{
		{[]string{"/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"}, "/usr/bin/python3", true},
		{[]string{"python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"}, "python3", true},
		{[]string{"python", "-m", "ipykernel", "-f", "{connection_file}"}, "python", true},
		{[]string{"/opt/py/bin/python3.11", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"}, "/opt/py/bin/python3.11", true},
		{[]string{"python3", "-X", "frozen_modules=off", "-mipykernel_launcher"}, "python3", true},
		{[]string{"python3", "-m", "ipykernel.kernelapp"}, "python3", true},
		{[]string{"python3", "-W", "-m", "-m", "ipykernel"}, "python3", true},
		{[]string{"python3", "-m", "other_kernel", "ipykernel_launcher"}, "", false},
		{[]string{"python3", "-c", "import x", "-m", "ipykernel"}, "", false},
		{[]string{"python3", "script.py", "-m", "ipykernel"}, "", false},
		{[]string{"python3", "-m"}, "", false},
		{[]string{"/usr/bin/R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"}, "", false},
		{[]string{"/usr/bin/pythonista", "-m", "ipykernel"}, "", false},
		{[]string{"ipykernel_launcher"}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := Spec{Argv: tt.argv}.Python()
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Python(%q) = %q, %v; want %q, %v", tt.argv, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestWithInterpreter(t *testing.T) {
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"python3", "-m", "ipykernel_launcher"}, []string{"/usr/bin/python3", "-m", "ipykernel_launcher"}},
		{[]string{"python", "-m", "ipykernel_launcher"}, []string{"/usr/bin/python3", "-m", "ipykernel_launcher"}},
		{[]string{"python3.9", "-m", "ipykernel_launcher"}, []string{"python3.9", "-m", "ipykernel_launcher"}},
		{[]string{"/opt/bin/python3", "-m", "ipykernel_launcher"}, []string{"/opt/bin/python3", "-m", "ipykernel_launcher"}},
		{[]string{"R"}, []string{"R"}},
		{nil, nil},
	}
	for _, tt := range tests {
		orig := append([]string(nil), tt.argv...)
		s := Spec{Name: "k", Argv: tt.argv}
		got := s.WithInterpreter("/usr/bin/python3")
		if diff := cmp.Diff(tt.want, got.Argv); diff != "" {
			t.Errorf("WithInterpreter(%q) mismatch (-want +got):\n%s", tt.argv, diff)
		}
		if diff := cmp.Diff(orig, tt.argv); diff != "" {
			t.Errorf("WithInterpreter modified the original argv:\n%s", diff)
		}
		if got.Name != "k" {
			t.Errorf("WithInterpreter lost the name: %q", got.Name)
		}
	}
}

func TestSpecJSON(t *testing.T) {
	b, err := json.Marshal(Spec{Name: "n", Dir: "/d", Argv: []string{"k"}, InterruptMode: "signal", Metadata: json.RawMessage(`{"debugger":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"argv":["k"],"display_name":"","language":"","interrupt_mode":"signal","metadata":{"debugger":true}}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("Spec JSON mismatch (-want +got):\n%s", diff)
	}
}
