package config

import "testing"

func TestSandboxIsolationFlags(t *testing.T) {
	c, _, _, err := load(t, env{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.SandboxPolicy
	if p.NoSeccomp || p.UID != 61000 || p.GID != 61000 || p.UIDs != 1000 || p.WorkBytes != 0 {
		t.Errorf("defaults: seccomp off %v, ids %d:%d x%d, work %d; want seccomp on, 61000:61000 x1000, work on disk", p.NoSeccomp, p.UID, p.GID, p.UIDs, p.WorkBytes)
	}
	c, _, _, err = load(t, env{"KERNELGATE_SANDBOX_SECCOMP": "false"}, "--kernel-uid-range", "70000-70009", "--kernel-work-size", "1GiB")
	if err != nil {
		t.Fatal(err)
	}
	p = c.SandboxPolicy
	if !p.NoSeccomp || p.UID != 70000 || p.GID != 70000 || p.UIDs != 10 || p.WorkBytes != 1<<30 {
		t.Errorf("set: seccomp off %v, ids %d:%d x%d, work %d", p.NoSeccomp, p.UID, p.GID, p.UIDs, p.WorkBytes)
	}
	c, _, _, err = load(t, env{}, "--sandbox-seccomp=false", "--sandbox-seccomp", "--kernel-uid-range", "65000")
	if err != nil || c.SandboxPolicy.NoSeccomp || c.SandboxPolicy.UIDs != 1 || c.SandboxPolicy.UID != 65000 {
		t.Errorf("--sandbox-seccomp after =false, one uid: %+v, %v", c.SandboxPolicy, err)
	}
	if _, _, _, err := load(t, env{}, "--kernel-work-size", "4096"); err == nil {
		t.Error("--kernel-work-size 4096 accepted")
	}
	for _, bad := range []string{"0-10", "61000-60000", "x-y", "500", "1000-9999999"} {
		if _, _, _, err := load(t, env{}, "--kernel-uid-range", bad); err == nil {
			t.Errorf("--kernel-uid-range %q accepted", bad)
		}
	}
}
