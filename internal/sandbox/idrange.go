package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// namedIDs returns the entries of an /etc/passwd or /etc/group file whose
// id (the third field) lies in [first, first+n), as "name (id)".
func namedIDs(r io.Reader, first, n int) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 3 {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err == nil && id >= first && id < first+n {
			out = append(out, fmt.Sprintf("%s (%d)", f[0], id))
		}
	}
	return out
}

// CheckIDRange refuses a kernel id range that a user or group of the
// machine already has: a host user with a kernel's uid could signal,
// ptrace and read that kernel from outside the sandbox. Only a root server
// switches ids, so only then is the range checked.
func CheckIDRange(p Policy) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, n := p.UID, p.GID, max(p.UIDs, 1)
	if uid == 0 {
		uid = DefaultUID
	}
	if gid == 0 {
		gid = DefaultGID
	}
	var clash []string
	for _, f := range []struct {
		path, what string
		first      int
	}{{"/etc/passwd", "user", uid}, {"/etc/group", "group", gid}} {
		file, err := os.Open(f.path)
		if err != nil {
			continue // no such database: nothing to clash with
		}
		for _, e := range namedIDs(file, f.first, n) {
			clash = append(clash, f.what+" "+e)
		}
		file.Close()
	}
	if len(clash) > 0 {
		return fmt.Errorf("kernel ids %d-%d (--kernel-uid-range) include existing %s; pick a range no account of this machine has",
			uid, uid+n-1, strings.Join(clash, ", "))
	}
	return nil
}
