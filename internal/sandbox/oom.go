package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MemoryLimitHit reports whether the memory cgroup of kernel id (as given
// to Wrap) killed a process for exceeding its limit, and that limit in
// words. Call it after the process died and before its release: the
// cgroup's counters go with it. A kernel "killed by SIGKILL" is then
// explained exactly rather than as a likely out-of-memory.
func (s *Sandbox) MemoryLimitHit(id string) (limit string, hit bool) {
	s.memMu.Lock()
	mem, ok := s.mem[id]
	s.memMu.Unlock()
	if !ok {
		mem = s.def.p.MemoryBytes
	}
	if mem == 0 {
		return "", false
	}
	h := s.cg.usable("memory")
	if h == nil {
		return "", false
	}
	file := "memory.oom_control" // v1: "oom_kill N"
	if h.v2 {
		file = "memory.events" // v2: "oom_kill N"
	}
	data, err := os.ReadFile(filepath.Join(h.base(), id, file))
	if err != nil {
		return "", false
	}
	return formatBytes(mem), oomKills(data) > 0
}

// oomKills reads the "oom_kill N" line of a memory.oom_control or
// memory.events file.
func oomKills(data []byte) int {
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}
