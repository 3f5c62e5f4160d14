package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kernelgate/kernelgate"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string // direct imports of non-test files
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// The rules from docs/architecture.md: each library or effect has one home.
func TestImportRules(t *testing.T) {
	rules := []struct {
		imported string
		allowed  []string // importers allowed (module-relative); all others fail
	}{
		{"github.com/go-zeromq/zmq4", []string{"internal/zmqconn"}},
		// kgbench runs the Python baseline it measures against; it is a tool,
		// not part of the server.
		{"os/exec", []string{"internal/supervisor", "cmd/kgbench"}},
		{"github.com/prometheus/client_golang/prometheus", []string{"internal/metrics"}},
		{module + "/internal/zmqconn", []string{"internal/kernel"}},
		{module + "/internal/supervisor", []string{"internal/kernel", "internal/app"}},
		{module + "/internal/app", []string{"cmd/kernelgate", "cmd/kgbench"}},
	}
	// The codecs are pure: no I/O of any kind.
	pure := []string{"internal/jmsg", "internal/zmqwire", "internal/wsproto"}
	effects := []string{"net", "os", "os/exec", "net/http", "syscall"}

	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if slices.Contains(p.Imports, r.imported) && !slices.Contains(r.allowed, rel) {
				t.Errorf("%s imports %s; only %v may", rel, r.imported, r.allowed)
			}
		}
		if slices.Contains(pure, rel) {
			for _, e := range effects {
				if slices.Contains(p.Imports, e) {
					t.Errorf("pure package %s imports %s", rel, e)
				}
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}
