package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStat is what kgbench reads from /proc/<pid>/stat: the parent, to
// find a gateway's kernels, and CPU time, to say what a workload cost.
type ProcStat struct {
	PID, PPID    int
	UTime, STime uint64 // clock ticks
}

// ParseStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so the fields
// are counted from the last ')'.
func ParseStat(s string) (ProcStat, error) {
	var st ProcStat
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 1 || end < open {
		return st, fmt.Errorf("stat: no command name in %q", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return st, fmt.Errorf("stat: pid: %w", err)
	}
	// After ')': state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return st, fmt.Errorf("stat: %d fields after the name, want at least 13", len(f))
	}
	st.PID = pid
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return st, fmt.Errorf("stat: ppid: %w", err)
	}
	if st.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return st, fmt.Errorf("stat: utime: %w", err)
	}
	if st.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return st, fmt.Errorf("stat: stime: %w", err)
	}
	return st, nil
}

// ParseKB returns the "Key:   123 kB" values of a /proc status or
// smaps_rollup file, in kB, for the keys asked for (missing keys are absent).
func ParseKB(s string, keys ...string) map[string]uint64 {
	out := map[string]uint64{}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		for _, want := range keys {
			if k != want {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					out[k] = n
				}
			}
		}
	}
	return out
}

// Descendants returns every process below root in a parent map (pid →
// ppid), root excluded, in no particular order.
func Descendants(parents map[int]int, root int) []int {
	children := map[int][]int{}
	for pid, ppid := range parents {
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	seen := map[int]bool{root: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// Mem is a process's (or a group's) memory in kB.
type Mem struct {
	RSS, PSS, HWM uint64 // HWM: peak RSS (VmHWM), for single processes
	Procs         int
}

// MB formats kB as MB with one decimal.
func MB(kb uint64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return ParseStat(string(b))
}

// procMem reads one process's RSS and peak RSS (status) and PSS
// (smaps_rollup, which needs the same privilege as ptrace: kgbench runs as
// root, as `make bench` does).
func procMem(pid int) (Mem, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	kv := ParseKB(string(st), "VmRSS", "VmHWM")
	m := Mem{RSS: kv["VmRSS"], HWM: kv["VmHWM"], Procs: 1}
	if sr, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.PSS = ParseKB(string(sr), "Pss")["Pss"]
	}
	return m, nil
}

// resetPeak resets a process's VmHWM to its current RSS (writing 5 to
// clear_refs), so a later VmHWM is the peak of what happened in between.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// processTable maps every live pid to its parent.
func processTable() map[int]int {
	out := map[int]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out[pid] = st.PPID
		}
	}
	return out
}

// treeMem sums the memory of every descendant of root (a gateway's
// kernels, with the sandbox helpers and bwrap processes in between: what
// each kernel costs the machine), and their CPU ticks.
func treeMem(root int) (Mem, uint64) {
	var total Mem
	var ticks uint64
	for _, pid := range Descendants(processTable(), root) {
		m, err := procMem(pid)
		if err != nil {
			continue // exited meanwhile
		}
		total.RSS += m.RSS
		total.PSS += m.PSS
		total.Procs++
		if st, err := readStat(pid); err == nil {
			ticks += st.UTime + st.STime
		}
	}
	return total, ticks
}

// cpuTicks is a process's user+system CPU time in clock ticks.
func cpuTicks(pid int) uint64 {
	st, err := readStat(pid)
	if err != nil {
		return 0
	}
	return st.UTime + st.STime
}

// clockTick is USER_HZ: 100 on every Linux architecture kgbench runs on
// (the kernel exports clock ticks at this fixed rate whatever CONFIG_HZ is).
const clockTick = 100
