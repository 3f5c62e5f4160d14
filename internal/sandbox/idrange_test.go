package sandbox

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNamedIDs(t *testing.T) {
	passwd := `root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
alice:x:61000:61000::/home/alice:/bin/bash
bob:x:61999:100::/home/bob:/bin/bash
carol:x:62000:100::/home/carol:/bin/bash
broken line
nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin
`
	for _, c := range []struct {
		first, n int
		want     []string
	}{
		{61000, 1000, []string{"alice (61000)", "bob (61999)"}},
		{61001, 998, nil},
		{0, 2, []string{"root (0)", "daemon (1)"}},
		{62000, 1, []string{"carol (62000)"}},
		{70000, 100, nil},
	} {
		got := namedIDs(strings.NewReader(passwd), c.first, c.n)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("namedIDs(%d, %d) (-want +got):\n%s", c.first, c.n, diff)
		}
	}
}

// The default range is free on this machine (the tests and CI run as root
// on it, with sandboxed kernels).
func TestCheckIDRangeDefault(t *testing.T) {
	if err := CheckIDRange(Policy{UID: 61000, GID: 61000, UIDs: 1000}); err != nil {
		t.Fatal(err)
	}
	// Debian's daemon account has id 1.
	err := CheckIDRange(Policy{UID: 1, GID: 1, UIDs: 1})
	if os.Geteuid() == 0 && (err == nil || !strings.Contains(err.Error(), "user daemon (1)")) {
		t.Fatalf("a range holding the daemon account: %v; want an error naming it", err)
	}
}
