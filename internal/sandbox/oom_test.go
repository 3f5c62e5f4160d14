package sandbox

import "testing"

func TestOOMKills(t *testing.T) {
	for in, want := range map[string]int{
		"oom_kill_disable 0\nunder_oom 0\noom_kill 2\n": 2,
		"low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n":     1,
		"oom_kill_disable 0\nunder_oom 0\n":             0,
		"":                                              0,
	} {
		if got := oomKills([]byte(in)); got != want {
			t.Errorf("oomKills(%q) = %d, want %d", in, got, want)
		}
	}
}
