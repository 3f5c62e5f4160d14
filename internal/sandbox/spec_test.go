package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestForSpec(t *testing.T) {
	base := Policy{Bwrap: "/usr/bin/bwrap", MemoryBytes: 1 << 30, PIDs: 64, CPUQuota: 1, NoFile: 256, TmpBytes: 8 << 20, FileBytes: 4 << 20, UID: 7, GID: 8,
		Specs: map[string]Override{
			"all": {Network: ptr(true), MemoryBytes: ptr[int64](0), PIDs: ptr[int64](128), CPUQuota: ptr(2.5), NoFile: ptr[uint64](4096), TmpBytes: ptr[int64](-1), FileBytes: ptr[int64](-1)},
			"mem": {MemoryBytes: ptr[int64](8 << 30)},
		}}
	plain := base
	plain.Specs = nil
	for _, tt := range []struct {
		spec string
		want Policy
	}{
		{"", plain},
		{"unknown", plain},
		{"mem", func() Policy { p := plain; p.MemoryBytes = 8 << 30; return p }()},
		{"all", Policy{Bwrap: "/usr/bin/bwrap", Network: true, MemoryBytes: 0, PIDs: 128, CPUQuota: 2.5, NoFile: 4096, TmpBytes: -1, FileBytes: -1, UID: 7, GID: 8}},
	} {
		if diff := cmp.Diff(tt.want, base.ForSpec(tt.spec)); diff != "" {
			t.Errorf("ForSpec(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
	if base.Specs["mem"].PIDs != nil || base.MemoryBytes != 1<<30 {
		t.Error("ForSpec changed the policy it was called on")
	}
}

// TestSpecLimits runs the same probe in a kernel of the default policy and
// in one of a kernelspec with every limit overridden, and checks that each
// got its own: rlimits, tmpfs size, network and cgroup limits.
func TestSpecLimits(t *testing.T) {
	s := newSandbox(t, Policy{
		MemoryBytes: 256 << 20, PIDs: 64, CPUQuota: 1, NoFile: 256, TmpBytes: 16 << 20, FileBytes: 8 << 20,
		Specs: map[string]Override{
			"big": {Network: ptr(true), MemoryBytes: ptr[int64](512 << 20), PIDs: ptr[int64](100), CPUQuota: ptr(0.5),
				NoFile: ptr[uint64](512), TmpBytes: ptr[int64](32 << 20), FileBytes: ptr[int64](16 << 20)},
			"same": {},
		},
	})
	st := s.Status()
	t.Log(st)
	for _, want := range []string{
		"memory 256 MiB", "nofile 256", "files up to 8 MiB", "tmpfs 16 MiB each",
		`kernelspec "big": network shared, memory 512 MiB, pids 100, cpu 0.5 cores, nofile 512, files up to 16 MiB, tmpfs 32 MiB each`,
		`kernelspec "same": the default limits`,
	} {
		if !strings.Contains(st, want) {
			t.Errorf("Status() lacks %q", want)
		}
	}
	const probe = `
import os, resource, socket
print("nofile", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
print("fsize", resource.getrlimit(resource.RLIMIT_FSIZE)[0])
st = os.statvfs("/tmp")
print("tmp", st.f_blocks * st.f_frsize)
print("ifaces", len(socket.if_nameindex()))
`
	memV1 := !s.cg.usable("memory").v2
	for _, tt := range []struct {
		spec                       string
		nofile, fsize, tmp, memory int64
		pids                       string
		cpuUS                      int64
		network                    bool
	}{
		{"", 256, 8 << 20, 16 << 20, 256 << 20, "64", 100000, false},
		{"python3", 256, 8 << 20, 16 << 20, 256 << 20, "64", 100000, false},
		{"same", 256, 8 << 20, 16 << 20, 256 << 20, "64", 100000, false},
		{"big", 512, 16 << 20, 32 << 20, 512 << 20, "100", 50000, true},
	} {
		t.Run("spec="+tt.spec, func(t *testing.T) {
			sb := wrapSpec(t, s, tt.spec, kernelDir(t), python, "-c", probe)
			out, err := sb.cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := map[string]int64{}
			for l := range strings.Lines(string(out)) {
				var k string
				var v int64
				if _, err := fmt.Sscan(l, &k, &v); err == nil {
					got[k] = v
				}
			}
			want := map[string]int64{"nofile": tt.nofile, "fsize": tt.fsize, "tmp": tt.tmp}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d\n%s", k, got[k], v, out)
				}
			}
			// Without the network only lo; with it the host's interfaces.
			if ifaces := got["ifaces"]; (ifaces > 1) != tt.network {
				t.Errorf("%d network interfaces; network shared = %v\n%s", ifaces, tt.network, out)
			}
			read := func(ctrl, file string) string {
				b, err := os.ReadFile(filepath.Join(sb.cgroupOf(t, ctrl), file))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
			memFile := "memory.max"
			if memV1 {
				memFile = "memory.limit_in_bytes"
			}
			var cpu []string
			if s.cg.usable("cpu").v2 {
				cpu = strings.Fields(read("cpu", "cpu.max"))
			} else {
				cpu = strings.Fields(read("cpu", "cpu.cfs_quota_us"))
			}
			if got := read("memory", memFile); got != strconv.FormatInt(tt.memory, 10) {
				t.Errorf("%s = %s, want %d", memFile, got, tt.memory)
			}
			if got := read("pids", "pids.max"); got != tt.pids {
				t.Errorf("pids.max = %s, want %s", got, tt.pids)
			}
			if len(cpu) == 0 || cpu[0] != strconv.FormatInt(tt.cpuUS, 10) {
				t.Errorf("cpu quota %q, want %d", cpu, tt.cpuUS)
			}
		})
	}
}

// TestSpecMemoryLimitHit checks that an out-of-memory kill in a kernel of a
// kernelspec with its own memory limit is reported with that limit.
func TestSpecMemoryLimitHit(t *testing.T) {
	s := newSandbox(t, Policy{MemoryBytes: 512 << 20, Specs: map[string]Override{"small": {MemoryBytes: ptr[int64](64 << 20)}}})
	id := testID()
	wrapped, release, err := s.Wrap(id, "small", []string{python, "-c", "x = [bytes([i % 251]) * (1 << 20) for i in range(200)]"}, kernelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sb := &sandboxed{cmd: exec.Command(wrapped[0], wrapped[1:]...)}
	sb.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := sb.cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("allocating 200 MiB under 64 MiB: %v, want the process killed\n%s", err, out)
	}
	limit, hit := s.MemoryLimitHit(id)
	if !hit || limit != "64 MiB" {
		t.Errorf("MemoryLimitHit = %q, %v; want 64 MiB, true", limit, hit)
	}
	release()
	// Released: the id's limit is forgotten (and its cgroup is gone).
	s.memMu.Lock()
	_, kept := s.mem[id]
	s.memMu.Unlock()
	if kept {
		t.Error("release kept the kernel's memory limit")
	}
}
