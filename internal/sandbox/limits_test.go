package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTmpAndFileSizeDefaults checks how TmpBytes and FileBytes are resolved
// and that they reach bwrap's options and the helper's rlimits.
func TestTmpAndFileSizeDefaults(t *testing.T) {
	for _, tt := range []struct {
		name            string
		p               Policy
		wantTmp         int64
		wantFile        uint64
		statusFragments []string
	}{
		{"defaults without memory limit", Policy{}, DefaultTmpBytes, DefaultFileBytes, []string{"files up to 4 GiB", "tmpfs 1 GiB each"}},
		{"a quarter of the memory limit", Policy{MemoryBytes: 256 << 20}, 64 << 20, DefaultFileBytes, []string{"tmpfs 64 MiB each"}},
		{"explicit", Policy{MemoryBytes: 256 << 20, TmpBytes: 8 << 20, FileBytes: 1 << 20}, 8 << 20, 1 << 20, []string{"files up to 1 MiB", "tmpfs 8 MiB each"}},
		{"off", Policy{TmpBytes: -1, FileBytes: -1}, 0, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t, tt.p)
			if s.def.tmpBytes != tt.wantTmp || s.def.fileBytes != tt.wantFile {
				t.Errorf("tmpBytes %d, fileBytes %d; want %d, %d", s.def.tmpBytes, s.def.fileBytes, tt.wantTmp, tt.wantFile)
			}
			for _, f := range tt.statusFragments {
				if !strings.Contains(s.Status(), f) {
					t.Errorf("Status() = %q, missing %q", s.Status(), f)
				}
			}
			if tt.wantFile == 0 && strings.Contains(s.Status(), "files up to") || tt.wantTmp == 0 && strings.Contains(s.Status(), "tmpfs ") {
				t.Errorf("Status() = %q claims a limit that is off", s.Status())
			}
			args := s.baseArgs(s.def, s.p.UID, s.p.GID)
			sizes := 0
			for i, a := range args {
				if a == "--size" {
					sizes++
					if args[i+1] != fmt.Sprint(tt.wantTmp) || i+3 >= len(args) || args[i+2] != "--tmpfs" {
						t.Errorf("--size at %d is not %d right before a --tmpfs: %q", i, tt.wantTmp, args)
					}
				}
			}
			if want := map[bool]int{true: 3, false: 0}[tt.wantTmp > 0]; sizes != want {
				t.Errorf("%d --size options, want %d (/tmp, /dev/shm, /run): %q", sizes, want, args)
			}

			wrapped, release, err := s.Wrap(testID(), "", []string{"/bin/true"}, kernelDir(t))
			if err != nil {
				t.Fatal(err)
			}
			release()
			spec, _, err := parseHelperArgs(wrapped[2:])
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(spec.Rlimits, func(r rlimitSpec) bool { return r.Resource == "FSIZE" })
			switch {
			case tt.wantFile == 0 && i >= 0:
				t.Errorf("FSIZE set although FileBytes is off: %+v", spec.Rlimits)
			case tt.wantFile > 0 && (i < 0 || spec.Rlimits[i].Soft != tt.wantFile || spec.Rlimits[i].Hard != tt.wantFile):
				t.Errorf("rlimits %+v, want FSIZE %d/%d", spec.Rlimits, tt.wantFile, tt.wantFile)
			}
		})
	}
}

// TestDiskLimits runs a confined process that tries to fill the disk
// through its work dir, /tmp, /dev/shm and /run, and to lift the file size
// limit.
func TestDiskLimits(t *testing.T) {
	const fileLimit, tmpLimit = 8 << 20, 24 << 20
	s := newSandbox(t, Policy{MemoryBytes: 256 << 20, FileBytes: fileLimit, TmpBytes: tmpLimit})
	dir := kernelDir(t)
	out := mustRunPython(t, s, dir, `
import errno, os, resource
def fill(path):
    # Appends 1 MiB at a time, up to 1 GiB: (error name or "none", bytes).
    n = 0
    try:
        with open(path, "wb") as f:
            while n < (1 << 30):
                f.write(b"x" * (1 << 20))
                f.flush()
                n += 1 << 20
        return "none", n
    except OSError as e:
        return errno.errorcode[e.errno], n
def fill_many(d):
    # Files up to the size limit each, until the file system is full.
    total = 0
    for i in range(100):
        err, n = fill(os.path.join(d, "f%d" % i))
        total += n
        if err != "EFBIG":
            return "%s at %d bytes in all" % (err, total)
    return "no limit"
print("work: %s after %d bytes" % fill("big"))
print("tmp-one: %s after %d bytes" % fill("/tmp/big"))
os.remove("/tmp/big")
print("tmp:", fill_many("/tmp"))
print("shm:", fill_many("/dev/shm"))
print("run:", fill_many("/run"))
try:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("raise: ok")
except (ValueError, OSError) as e:
    print("raise:", type(e).__name__)
print("fsize:", resource.getrlimit(resource.RLIMIT_FSIZE))
`)
	t.Log(out)
	for _, want := range []string{
		fmt.Sprintf("work: EFBIG after %d bytes", fileLimit),
		fmt.Sprintf("tmp-one: EFBIG after %d bytes", fileLimit),
		"tmp: ENOSPC at ", "shm: ENOSPC at ", "run: ENOSPC at ",
		"raise: ValueError",
		fmt.Sprintf("fsize: (%d, %d)", fileLimit, fileLimit),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Each tmpfs filled up at its size, not before and not after.
	for _, l := range strings.Split(out, "\n") {
		var name string
		var n int64
		if _, err := fmt.Sscanf(l, "%s ENOSPC at %d bytes in all", &name, &n); err == nil {
			if n > tmpLimit || n < tmpLimit-4<<20 {
				t.Errorf("%s: full after %d bytes, want about %d", name, n, tmpLimit)
			}
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "work", "big"))
	if err != nil || fi.Size() != fileLimit {
		t.Errorf("work/big on the host: %v, %v; want %d bytes", fi, err, fileLimit)
	}
}
