package kernelspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSearchDirs(t *testing.T) {
	sep := string(os.PathListSeparator)
	sys := []string{"/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels"}
	tests := []struct {
		name string
		env  Env
		want []string
	}{
		{
			name: "home only",
			env:  Env{Home: "/home/u"},
			want: append([]string{"/home/u/.local/share/jupyter/kernels"}, sys...),
		},
		{
			name: "nothing set",
			env:  Env{},
			want: sys,
		},
		{
			// Matches jupyter_path("kernels") with JUPYTER_PATH=/a:/b/: XDG_DATA_HOME=/xdg
			// except for the empty entry, which jupyter turns into "kernels".
			name: "jupyter path first, then xdg, then user site",
			env:  Env{JupyterPath: "/a" + sep + "/b/" + sep, XDGDataHome: "/xdg", Home: "/home/u"},
			want: append([]string{
				"/a/kernels", "/b/kernels",
				"/xdg/jupyter/kernels",
				"/home/u/.local/share/jupyter/kernels",
			}, sys...),
		},
		{
			name: "data dir beats xdg",
			env:  Env{JupyterDataDir: "/jd", XDGDataHome: "/xdg", Home: "/home/u"},
			want: append([]string{"/jd/kernels", "/home/u/.local/share/jupyter/kernels"}, sys...),
		},
		{
			name: "prefix after user",
			env:  Env{Home: "/home/u", Prefix: "/opt/venv"},
			want: append([]string{"/home/u/.local/share/jupyter/kernels", "/opt/venv/share/jupyter/kernels"}, sys...),
		},
		{
			name: "prefer env path puts prefix before user",
			env:  Env{Home: "/home/u", Prefix: "/opt/venv", PreferEnvPath: true, JupyterPath: "/p"},
			want: append([]string{"/p/kernels", "/opt/venv/share/jupyter/kernels", "/home/u/.local/share/jupyter/kernels"}, sys...),
		},
		{
			// Debian's sys.prefix is /usr; jupyter drops it from the env list.
			name: "system prefix not duplicated",
			env:  Env{Home: "/home/u", Prefix: "/usr"},
			want: append([]string{"/home/u/.local/share/jupyter/kernels"}, sys...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, SearchDirs(tt.env)); diff != "" {
				t.Errorf("SearchDirs(%+v) mismatch (-want +got):\n%s", tt.env, diff)
			}
		})
	}
}

// TestSearchDirsFind checks the order end to end: the same name in the
// JUPYTER_PATH dir, the user dir and the prefix dir resolves to JUPYTER_PATH.
func TestSearchDirsFind(t *testing.T) {
	root := t.TempDir()
	env := Env{
		JupyterPath: filepath.Join(root, "jp"),
		Home:        filepath.Join(root, "home"),
		Prefix:      filepath.Join(root, "venv"),
	}
	writeSpec(t, filepath.Join(root, "jp", "kernels", "k"), `{"argv":["jp"]}`)
	writeSpec(t, filepath.Join(root, "home", ".local", "share", "jupyter", "kernels", "k"), `{"argv":["home"]}`)
	writeSpec(t, filepath.Join(root, "home", ".local", "share", "jupyter", "kernels", "u"), `{"argv":["home"]}`)
	writeSpec(t, filepath.Join(root, "venv", "share", "jupyter", "kernels", "u"), `{"argv":["venv"]}`)
	writeSpec(t, filepath.Join(root, "venv", "share", "jupyter", "kernels", "v"), `{"argv":["venv"]}`)

	dirs := SearchDirs(env)
	// Keep only our temp dirs so the machine's system kernels don't matter.
	var mine []string
	for _, d := range dirs {
		if strings.HasPrefix(d, root) {
			mine = append(mine, d)
		}
	}
	specs, err := Find(mine)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	got := map[string]string{}
	for n, s := range specs {
		got[n] = s.Argv[0]
	}
	want := map[string]string{"k": "jp", "u": "home", "v": "venv"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("winners mismatch (-want +got):\n%s", diff)
	}
}

func TestEnvFlag(t *testing.T) {
	for v, want := range map[string]bool{
		"": true, "1": true, "yes": true, "True": true,
		"0": false, "no": false, "N": false, "FALSE": false, "off": false, "0.0": false,
	} {
		if got := EnvFlag(v); got != want {
			t.Errorf("EnvFlag(%q) = %v, want %v", v, got, want)
		}
	}
}
