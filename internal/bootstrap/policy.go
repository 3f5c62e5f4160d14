package bootstrap

import (
	_ "embed"
	"fmt"
)

// Python-level policies a kernel can run under. They are defence in depth
// on top of the sandbox, never a boundary: audit hooks can be bypassed
// (ctypes, native code).
const (
	// PolicyNone installs nothing.
	PolicyNone = "none"
	// PolicyAudit installs an audit hook that refuses starting programs and
	// non-loopback sockets with PermissionError (policy_audit.py).
	PolicyAudit = "audit"
)

//go:embed policy_audit.py
var auditPolicy string

// PolicyNames are the valid policy names.
func PolicyNames() []string { return []string{PolicyNone, PolicyAudit} }

// Policy returns the Python code that installs the named policy, to run
// right after Code in the same execute ("" for PolicyNone), or an error
// naming the valid policies.
func Policy(name string) (string, error) {
	switch name {
	case PolicyNone:
		return "", nil
	case PolicyAudit:
		return auditPolicy, nil
	}
	return "", fmt.Errorf("unknown Python policy %q (want %s or %s)", name, PolicyNone, PolicyAudit)
}
