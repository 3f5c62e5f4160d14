package kernelspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Interrupt modes of a kernelspec (jupyter_client's KernelSpec.interrupt_mode).
const (
	// InterruptSignal interrupts the kernel with SIGINT; it is the default.
	InterruptSignal = "signal"
	// InterruptMessage interrupts by sending interrupt_request on the
	// control channel, for kernels that cannot take signals.
	InterruptMessage = "message"
)

// ErrInvalidSpec is wrapped by every error about the content of a
// kernel.json (as opposed to failing to read it).
var ErrInvalidSpec = errors.New("invalid kernel.json")

// Spec is one kernelspec: the parsed kernel.json plus where it came from.
// The JSON tags give jupyter_client's KernelSpec.to_dict() shape, which is
// what the /api/kernelspecs REST endpoint returns as "spec".
type Spec struct {
	// Name is the kernel name: the lowercased name of the spec directory.
	Name string `json:"-"`
	// Dir is the spec's resource directory (holding kernel.json, logos);
	// it is what {resource_dir} expands to.
	Dir           string            `json:"-"`
	Argv          []string          `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env,omitempty"`
	// Metadata is kept raw because its schema is open-ended (e.g.
	// {"debugger": true}) and the gateway only passes it through.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// fileSpec is the on-disk form. Argv is a pointer so that a missing argv can
// be told apart from an empty one in error messages.
type fileSpec struct {
	Argv          *[]string         `json:"argv"`
	DisplayName   string            `json:"display_name"`
	Language      string            `json:"language"`
	InterruptMode string            `json:"interrupt_mode"`
	Env           map[string]string `json:"env"`
	Metadata      json.RawMessage   `json:"metadata"`
}

// Load parses dir/kernel.json. The spec's Name is the lowercased base name
// of dir and its Dir is dir as given. Unknown keys are ignored, as
// jupyter_client does. Content problems wrap ErrInvalidSpec.
func Load(dir string) (Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kernel.json"))
	if err != nil {
		return Spec{}, fmt.Errorf("load kernelspec %s: %w", dir, err)
	}
	s, err := parse(data)
	if err != nil {
		return Spec{}, fmt.Errorf("load kernelspec %s: %w", dir, err)
	}
	s.Name = strings.ToLower(filepath.Base(dir))
	s.Dir = dir
	return s, nil
}

func parse(data []byte) (Spec, error) {
	var f fileSpec
	if err := json.Unmarshal(data, &f); err != nil {
		return Spec{}, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	// A kernelspec without a command cannot be launched; jupyter_client
	// would only notice at start time, we report it at discovery.
	if f.Argv == nil {
		return Spec{}, fmt.Errorf("%w: \"argv\" is missing", ErrInvalidSpec)
	}
	if len(*f.Argv) == 0 {
		return Spec{}, fmt.Errorf("%w: \"argv\" is empty", ErrInvalidSpec)
	}
	if (*f.Argv)[0] == "" {
		return Spec{}, fmt.Errorf("%w: \"argv\"[0] (the program) is empty", ErrInvalidSpec)
	}
	// jupyter_client's trait is a CaselessStrEnum defaulting to "signal".
	mode := strings.ToLower(f.InterruptMode)
	switch mode {
	case "":
		mode = InterruptSignal
	case InterruptSignal, InterruptMessage:
	default:
		return Spec{}, fmt.Errorf("%w: \"interrupt_mode\" is %q, want %q or %q",
			ErrInvalidSpec, f.InterruptMode, InterruptSignal, InterruptMessage)
	}
	meta := f.Metadata
	if t := bytes.TrimSpace(meta); len(t) == 0 || string(t) == "null" {
		meta = nil
	} else if t[0] != '{' {
		return Spec{}, fmt.Errorf("%w: \"metadata\" must be an object", ErrInvalidSpec)
	}
	return Spec{
		Argv:          *f.Argv,
		DisplayName:   f.DisplayName,
		Language:      f.Language,
		InterruptMode: mode,
		Env:           f.Env,
		Metadata:      meta,
	}, nil
}

// validName is jupyter_client's _kernel_name_pat (it is case-insensitive, but
// names are lowercased before matching anyway).
var validName = regexp.MustCompile(`^[a-z0-9._-]+$`)

// Find collects the kernelspecs under dirs (as returned by SearchDirs).
//
// It follows jupyter_client's KernelSpecManager: a kernelspec is a
// subdirectory holding a kernel.json file; its name is the lowercased
// directory name; and the first directory in dirs that has a spec of a given
// name owns that name. Missing or non-directory entries in dirs are skipped
// silently, since most search dirs do not exist on a typical machine.
//
// One bad spec must not hide every other kernel, so problems are collected
// rather than fatal: Find always returns the specs it could load, plus an
// errors.Join of one error per problem (nil if none). A broken kernel.json
// still claims its name — like jupyter, the gateway will not silently fall
// back to a lower-priority spec the user did not choose. Directory names
// outside ^[a-z0-9._-]+$ are reported and skipped (jupyter_client only warns
// and keeps them, but such names are not safe in URLs and file names).
// Within one directory, entries are visited in sorted order, so collisions
// like "Python3" vs "python3" resolve deterministically.
func Find(dirs []string) (map[string]Spec, error) {
	specs := make(map[string]Spec)
	claimed := make(map[string]bool)
	var errs []error
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("kernelspec dir %s: %w", d, err))
			}
			continue
		}
		if !fi.IsDir() {
			continue
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("kernelspec dir %s: %w", d, err))
			continue
		}
		for _, e := range entries {
			path := filepath.Join(d, e.Name())
			if !isKernelDir(path) {
				continue
			}
			name := strings.ToLower(e.Name())
			if !validName.MatchString(name) {
				errs = append(errs, fmt.Errorf("kernelspec %s: invalid kernel name %q: names may only contain ASCII letters, digits, '-', '.' and '_'", path, e.Name()))
				continue
			}
			if claimed[name] {
				continue
			}
			claimed[name] = true
			s, err := Load(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("kernelspec %q: %w", name, err))
				continue
			}
			specs[name] = s
		}
	}
	return specs, errors.Join(errs...)
}

// isKernelDir is jupyter_client's _is_kernel_dir: a directory containing a
// regular kernel.json (symlinks followed). Anything else, e.g. a stray file
// or a half-removed spec, is not a kernelspec and not worth an error.
func isKernelDir(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	fi, err = os.Stat(filepath.Join(path, "kernel.json"))
	return err == nil && fi.Mode().IsRegular()
}

// DefaultName is the name of the built-in Python kernel (jupyter_client's
// NATIVE_KERNEL_NAME).
const DefaultName = "python3"

// Default returns the built-in "python3" spec used when no python3 spec is
// installed — the equivalent of the spec jupyter_client synthesises from
// ipykernel when it runs in a Python that has it. python is the interpreter
// to run; it should be one that passed the ipykernel preflight.
//
// PYDEVD_DISABLE_FILE_VALIDATION silences debugpy's frozen-modules warning,
// which otherwise lands on the kernel's stderr at every start.
func Default(python string) Spec {
	return Spec{
		Name:          DefaultName,
		Argv:          []string{python, "-m", "ipykernel_launcher", "-f", "{connection_file}"},
		DisplayName:   "Python 3 (ipykernel)",
		Language:      "python",
		InterruptMode: InterruptSignal,
		Env:           map[string]string{"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
	}
}

// template matches the placeholders jupyter_client's format_kernel_cmd
// recognises.
var template = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// Command returns the argv to launch the kernel with connectionFile.
//
// Like jupyter_client, {connection_file} and {resource_dir} are replaced
// wherever they occur inside an element (e.g. "--conn={connection_file}"),
// in a single pass so that a substituted path containing braces is not
// expanded again; any other {name} is left untouched. jupyter_client also
// knows {prefix} (its own sys.prefix), which has no meaning for the gateway.
// {resource_dir} is left alone when the spec has no Dir (see Default).
// jupyter_client passes the real path of the connection file, so callers
// should pass an absolute path: the kernel may run in another directory.
func (s Spec) Command(connectionFile string) []string {
	ns := map[string]string{"connection_file": connectionFile}
	if s.Dir != "" {
		ns["resource_dir"] = s.Dir
	}
	out := make([]string, len(s.Argv))
	for i, a := range s.Argv {
		out[i] = template.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := ns[m[1:len(m)-1]]; ok {
				return v
			}
			return m
		})
	}
	return out
}

// pythonName matches interpreter file names: python, python3, python3.11.
var pythonName = regexp.MustCompile(`^python[0-9]*(\.[0-9]+)?$`)

// Python reports the interpreter of an ipykernel spec: ok is true when
// argv[0]'s base name looks like a Python interpreter and the command runs
// the ipykernel or ipykernel_launcher module (python [opts] -m ipykernel...).
// It is best-effort, for deciding whether to preflight `import ipykernel`
// before launching; interpreter may be a bare name that the caller resolves.
func (s Spec) Python() (interpreter string, ok bool) {
	if len(s.Argv) == 0 || !pythonName.MatchString(filepath.Base(s.Argv[0])) {
		return "", false
	}
	if mod, ok := moduleArg(s.Argv[1:]); ok && isIPyKernelModule(mod) {
		return s.Argv[0], true
	}
	return "", false
}

// moduleArg finds the module of `python [options] -m module`. Options that
// consume the next argument are skipped so their value is not mistaken for
// -m; -c or a script path ends option parsing without a module.
func moduleArg(args []string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-m":
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", false
		case strings.HasPrefix(a, "-m"):
			return a[2:], true
		case a == "-X" || a == "-W" || a == "--check-hash-based-pycs":
			i++
		case a == "-c" || a == "-" || a == "--" || !strings.HasPrefix(a, "-"):
			return "", false
		}
	}
	return "", false
}

func isIPyKernelModule(mod string) bool {
	return mod == "ipykernel" || mod == "ipykernel_launcher" || strings.HasPrefix(mod, "ipykernel.")
}

// WithInterpreter returns s with argv[0] replaced by python when argv[0] is
// the bare name "python" or "python3"; otherwise s is returned unchanged.
//
// Some kernelspecs in the wild (conda packages, hand-written specs) say just
// "python3" and rely on jupyter_client, which swaps such a name for its own
// sys.executable. The gateway has no sys.executable, and the python3 first
// on PATH may be a different interpreter without ipykernel (on the
// development machine it is a pyenv shim lacking ipykernel, while Debian's
// /usr/bin/python3 has it). Callers therefore pass the interpreter they
// verified with the preflight. Versioned names such as "python3.9" are a
// deliberate choice of interpreter and are kept, as are absolute paths.
// The Argv slice is copied; s itself is not modified.
func (s Spec) WithInterpreter(python string) Spec {
	if len(s.Argv) == 0 || (s.Argv[0] != "python" && s.Argv[0] != "python3") {
		return s
	}
	s.Argv = slices.Clone(s.Argv)
	s.Argv[0] = python
	return s
}
