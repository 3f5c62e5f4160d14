package sandbox

import "fmt"

// idPool hands each kernel a uid (and the gid at the same offset) of its
// own, from a range, so that a kernel that escaped its namespaces still
// cannot signal, trace or read another kernel's processes and files.
//
// A kernel is known by its private dir: every process Wrap starts for the
// same dir (a restart) gets the same id, since the files in the dir's work
// dir are that id's. An id stays bound to its dir while any of those
// processes lives, and afterwards until the dir is gone (between a crash
// and the restart nothing runs, but the files are still there). It is
// reused only then, and in turn, least recently freed last.
//
// idPool is pure; the caller says which dirs are gone. It is not safe for
// concurrent use.
type idPool struct {
	first, n int
	next     int                 // where the search for a free id starts
	leases   map[string]*idLease // by kernel dir
	used     map[int]bool        // offsets leased
}

type idLease struct {
	off  int // the id is first+off
	live int // processes started and not yet released
}

func newIDPool(first, n int) *idPool {
	return &idPool{first: first, n: n, leases: map[string]*idLease{}, used: map[int]bool{}}
}

// acquire returns the offset of dir's id for one more process, leasing a
// free one if dir has none. gone reports whether a dir whose processes are
// all released no longer exists; such leases are ended first.
func (p *idPool) acquire(dir string, gone func(dir string) bool) (int, error) {
	if l, ok := p.leases[dir]; ok {
		l.live++
		return l.off, nil
	}
	for d, l := range p.leases {
		if l.live == 0 && gone(d) {
			delete(p.leases, d)
			delete(p.used, l.off)
		}
	}
	for i := range p.n {
		off := (p.next + i) % p.n
		if !p.used[off] {
			p.used[off] = true
			p.leases[dir] = &idLease{off: off, live: 1}
			p.next = (off + 1) % p.n
			return off, nil
		}
	}
	return 0, fmt.Errorf("all %d kernel uids (%d-%d) are in use by kernels that are running or restarting", p.n, p.first, p.first+p.n-1)
}

// release ends one process of dir's. The lease stays until acquire finds
// the dir gone.
func (p *idPool) release(dir string) {
	if l, ok := p.leases[dir]; ok && l.live > 0 {
		l.live--
	}
}

// inUse returns the number of ids leased.
func (p *idPool) inUse() int { return len(p.used) }
