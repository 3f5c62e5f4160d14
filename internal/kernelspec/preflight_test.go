package kernelspec

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPreflightArgv(t *testing.T) {
	want := []string{"/usr/bin/python3", "-c", "import ipykernel; print(ipykernel.__version__)"}
	if diff := cmp.Diff(want, PreflightArgv("/usr/bin/python3")); diff != "" {
		t.Errorf("PreflightArgv mismatch (-want +got):\n%s", diff)
	}
}

func TestPreflightError(t *testing.T) {
	exit1 := errors.New("exit status 1")
	// Verbatim output of pyenv's python3 on the development machine.
	noModule := "Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nModuleNotFoundError: No module named 'ipykernel'\n"
	noZMQ := "Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\n  File \"/usr/lib/python3/dist-packages/ipykernel/__init__.py\", line 5, in <module>\nModuleNotFoundError: No module named 'zmq'\n"
	notFound := &fs.PathError{Op: "fork/exec", Path: "/x", Err: syscall.ENOENT}

	tests := []struct {
		name   string
		python string
		output string
		err    error
		want   string // "" means nil
		is     []error
	}{
		{name: "success", python: "/usr/bin/python3", output: "6.17.0\n", err: nil},
		{
			name: "missing ipykernel", python: "/root/.pyenv/shims/python3", output: noModule, err: exit1,
			want: "kernel interpreter /root/.pyenv/shims/python3 cannot import ipykernel: install the Debian package python3-ipykernel (or point the kernelspec at an interpreter that has it)",
			is:   []error{ErrNoIPyKernel, exit1},
		},
		{
			name: "python2 wording", python: "python", output: "ImportError: No module named ipykernel\n", err: exit1,
			want: "kernel interpreter python cannot import ipykernel: install the Debian package python3-ipykernel (or point the kernelspec at an interpreter that has it)",
			is:   []error{ErrNoIPyKernel},
		},
		{
			name: "broken dependency reported verbatim", python: "/usr/bin/python3", output: noZMQ, err: exit1,
			want: "kernel interpreter /usr/bin/python3 cannot import ipykernel: ModuleNotFoundError: No module named 'zmq'",
			is:   []error{ErrNoIPyKernel, exit1},
		},
		{
			name: "no output falls back to the error", python: "/usr/bin/python3", err: errors.New("signal: killed"),
			want: "kernel interpreter /usr/bin/python3 cannot import ipykernel: signal: killed",
			is:   []error{ErrNoIPyKernel},
		},
		{
			name: "interpreter path missing", python: "/x", err: notFound,
			want: "kernel interpreter /x does not exist",
			is:   []error{ErrNoInterpreter, fs.ErrNotExist},
		},
		{
			name: "bare name not on PATH", python: "python9", err: errors.New(`exec: "python9": executable file not found in $PATH`),
			want: "kernel interpreter python9 does not exist",
			is:   []error{ErrNoInterpreter},
		},
		{
			name: "not executable", python: "/etc/passwd", err: &fs.PathError{Op: "fork/exec", Path: "/etc/passwd", Err: syscall.EACCES},
			want: "kernel interpreter /etc/passwd is not executable",
			is:   []error{fs.ErrPermission},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := PreflightError(tt.python, []byte(tt.output), tt.err)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("PreflightError = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("PreflightError = nil, want %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("message mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
		})
	}
}

func TestPreflightErrorTruncates(t *testing.T) {
	long := "RuntimeError: " + strings.Repeat("é", 500)
	err := PreflightError("p", []byte(long), errors.New("exit status 1"))
	if n := len([]rune(err.Error())); n > 300 {
		t.Errorf("message has %d runes, want it cut short", n)
	}
}
