// Package kernelspec discovers and parses Jupyter kernelspecs the way
// jupyter_core and jupyter_client do, so that a kernel installed for
// Jupyter (by a Debian package, `python3 -m ipykernel install`, conda, ...)
// is found by the gateway under the same name, from the same directory, and
// is launched with the same command line.
//
// The package is deliberately pure: it never reads the process environment
// (the config package owns that and passes values in through Env) and never
// runs processes (the supervisor package does). The ipykernel preflight is
// therefore split in two: PreflightArgv says what to run, PreflightError
// interprets the result.
package kernelspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Env carries the environment values that influence the kernelspec search
// path. Each field corresponds to one variable jupyter_core consults; an
// empty field means "unset".
type Env struct {
	// JupyterPath is $JUPYTER_PATH: a list of data dirs separated by
	// os.PathListSeparator, searched before everything else.
	JupyterPath string
	// JupyterDataDir is $JUPYTER_DATA_DIR, the user data dir override.
	JupyterDataDir string
	// Home is the user's home directory. jupyter_core resolves symlinks in
	// it; callers wanting identical strings should pass a resolved path.
	Home string
	// XDGDataHome is $XDG_DATA_HOME, used for the user data dir when
	// JupyterDataDir is empty.
	XDGDataHome string
	// Prefix plays the role of Python's sys.prefix: Prefix/share/jupyter is
	// the "environment" data dir (a venv or conda env). Optional.
	Prefix string
	// PreferEnvPath mirrors $JUPYTER_PREFER_ENV_PATH (see EnvFlag): when
	// true the environment dir is searched before the user dirs.
	PreferEnvPath bool
}

// systemDataDirs are jupyter_core's SYSTEM_JUPYTER_PATH on non-Windows.
var systemDataDirs = []string{"/usr/local/share/jupyter", "/usr/share/jupyter"}

// SearchDirs returns the kernels directories in jupyter_core's priority order
// (jupyter_core.paths.jupyter_path("kernels"), checked against jupyter_core
// 4.12 as shipped by Debian and unchanged in 5.x for Linux):
//
//  1. every $JUPYTER_PATH entry, in order — the explicit variable has the
//     highest priority, even above the user's own data dir;
//  2. the user dirs: $JUPYTER_DATA_DIR, else $XDG_DATA_HOME/jupyter, else
//     ~/.local/share/jupyter; then Python's user-site data dir
//     ~/.local/share/jupyter if it is not already listed (jupyter adds
//     site.getuserbase()/share/jupyter; $PYTHONUSERBASE is not modelled);
//  3. the environment dir Prefix/share/jupyter, unless it is one of the
//     system dirs (Debian's sys.prefix is /usr, so it is skipped there);
//     with PreferEnvPath, 3 comes before 2;
//  4. the system dirs /usr/local/share/jupyter, /usr/share/jupyter.
//
// Each dir gets "/kernels" appended. Unlike jupyter_core, empty
// $JUPYTER_PATH entries are dropped (Python would turn them into the
// cwd-relative path "kernels"), and user dirs are omitted when Home is empty
// rather than becoming relative paths.
func SearchDirs(env Env) []string {
	var dirs []string

	if env.JupyterPath != "" {
		for _, p := range strings.Split(env.JupyterPath, string(os.PathListSeparator)) {
			if p == "" {
				continue
			}
			dirs = append(dirs, filepath.Clean(p))
		}
	}

	var user []string
	if d := userDataDir(env); d != "" {
		user = append(user, d)
	}
	if env.Home != "" {
		site := filepath.Join(env.Home, ".local", "share", "jupyter")
		if !slices.Contains(user, site) {
			user = append(user, site)
		}
	}

	var envDirs []string
	if env.Prefix != "" {
		p := filepath.Join(env.Prefix, "share", "jupyter")
		if !slices.Contains(systemDataDirs, p) {
			envDirs = append(envDirs, p)
		}
	}

	if env.PreferEnvPath {
		dirs = append(dirs, envDirs...)
		dirs = append(dirs, user...)
	} else {
		dirs = append(dirs, user...)
		dirs = append(dirs, envDirs...)
	}
	dirs = append(dirs, systemDataDirs...)

	for i, d := range dirs {
		dirs[i] = filepath.Join(d, "kernels")
	}
	return dirs
}

// userDataDir is jupyter_core.paths.jupyter_data_dir() for Linux.
func userDataDir(env Env) string {
	if env.JupyterDataDir != "" {
		return filepath.Clean(env.JupyterDataDir)
	}
	if env.XDGDataHome != "" {
		return filepath.Join(env.XDGDataHome, "jupyter")
	}
	if env.Home != "" {
		return filepath.Join(env.Home, ".local", "share", "jupyter")
	}
	return ""
}

// EnvFlag interprets the value of a boolean Jupyter variable such as
// JUPYTER_PREFER_ENV_PATH with jupyter_core's envset() rule: any value other
// than no, n, false, off, 0 or 0.0 (case-insensitive) counts as true — even
// the empty string, so call it only when the variable is actually set.
func EnvFlag(value string) bool {
	switch strings.ToLower(value) {
	case "no", "n", "false", "off", "0", "0.0":
		return false
	}
	return true
}
