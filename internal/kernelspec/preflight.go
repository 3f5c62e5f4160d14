package kernelspec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// The ipykernel preflight exists because a kernel whose interpreter lacks
// ipykernel dies instantly with a Python traceback on its stderr, and the
// gateway would only see "kernel died before replying". Probing first turns
// that into one actionable sentence. This package does not run the probe
// (process execution belongs to the supervisor package); it only builds the
// command and interprets the outcome.

var (
	// ErrNoIPyKernel means the interpreter runs but cannot import ipykernel.
	ErrNoIPyKernel = errors.New("ipykernel is not importable")
	// ErrNoInterpreter means the interpreter could not be found at all.
	ErrNoInterpreter = errors.New("kernel interpreter does not exist")
)

// preflightScript prints the version on success, which is useful in logs.
const preflightScript = "import ipykernel; print(ipykernel.__version__)"

// PreflightArgv returns the command that checks python can import ipykernel.
// It deliberately runs without -I/-E so that it sees the same PYTHONPATH and
// user site-packages the kernel will see when started with the same
// environment. On success its trimmed output is ipykernel's version.
func PreflightArgv(python string) []string {
	return []string{python, "-c", preflightScript}
}

// missingIPyKernel matches Python's message for a missing ipykernel package
// itself, as opposed to a missing dependency of ipykernel (e.g. zmq), which
// needs a different fix and is reported verbatim.
var missingIPyKernel = regexp.MustCompile(`(?m)No module named '?ipykernel'?\s*$`)

// PreflightError turns the result of running PreflightArgv(python) — its
// combined output and the error from running it — into one clear sentence,
// or nil when err is nil. The returned error wraps err as well as
// ErrNoIPyKernel or ErrNoInterpreter where they apply, so callers can use
// errors.Is / errors.As on either.
func PreflightError(python string, output []byte, err error) error {
	if err == nil {
		return nil
	}
	var msg string
	var kind error
	switch {
	// os.StartProcess reports a missing file as *fs.PathError(ENOENT);
	// os/exec reports a bare name missing from PATH as exec.ErrNotFound,
	// matched by text because this package must not import os/exec.
	case errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "executable file not found"):
		msg = fmt.Sprintf("kernel interpreter %s does not exist", python)
		kind = ErrNoInterpreter
	case errors.Is(err, fs.ErrPermission):
		msg = fmt.Sprintf("kernel interpreter %s is not executable", python)
	case missingIPyKernel.Match(output):
		msg = fmt.Sprintf("kernel interpreter %s cannot import ipykernel: install the Debian package python3-ipykernel (or point the kernelspec at an interpreter that has it)", python)
		kind = ErrNoIPyKernel
	default:
		detail := lastLine(output)
		if detail == "" {
			detail = err.Error()
		}
		msg = fmt.Sprintf("kernel interpreter %s cannot import ipykernel: %s", python, detail)
		kind = ErrNoIPyKernel
	}
	return &preflightError{msg: msg, kind: kind, cause: err}
}

// lastLine returns the last non-blank line of a traceback, which is the
// exception and its message; long lines are cut so the sentence stays short.
func lastLine(output []byte) string {
	lines := bytes.Split(bytes.TrimSpace(output), []byte("\n"))
	line := strings.TrimSpace(string(lines[len(lines)-1]))
	const maxRunes = 200
	if r := []rune(line); len(r) > maxRunes {
		line = string(r[:maxRunes]) + "..."
	}
	return line
}

// preflightError keeps the message to the one sentence PreflightError
// promises while still exposing the sentinel and the underlying error.
type preflightError struct {
	msg   string
	kind  error
	cause error
}

func (e *preflightError) Error() string { return e.msg }

func (e *preflightError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}
