// Package securitytest attacks a real kernelgate server the way a hostile
// notebook user, a network client without credentials, or one user going
// after another would, and fails when an attack succeeds.
//
// It has no code of its own outside its tests. TestMain starts one server
// in-process with app.Serve, as the kernelgate binary would: the sandbox
// required (--sandbox bwrap), small per-kernel limits (256 MiB of memory,
// 64 pids, a 5 s execution timeout, a 32 MiB file size limit), static
// tokens for several users (one from KERNELGATE_TOKEN in the process
// environment, the others from a --token-file), and a quota of two kernels
// per user. The server re-executes the test binary as its sandbox helper,
// so TestMain calls sandbox.MaybeRunHelper first.
//
// Each attack runs in sessions of its own user, so the tests run in
// parallel and one attack's damage (a dead kernel, a full pids cgroup)
// cannot be mistaken for another's. After each attack the test checks that
// the server still answers /healthz and that the canary, a kernel started
// before any attack in a session of its own, still executes 1+1 with its
// state intact.
//
// Attacks that succeed today, the known gaps, are TestKnownGap_* tests:
// they skip, saying KNOWN GAP, while the attack succeeds (so does
// TestAttack_PrintFlood/32_MiB_prints when its cell escapes the timeout).
//
// The tests need what the sandbox needs: root, /usr/bin/bwrap, the memory,
// pids and cpu cgroup controllers, and /usr/bin/python3 with ipykernel.
// Where the machine lacks them they fail, they do not skip. The threat
// model they check, and what they do not cover, is docs/security.md.
package securitytest
