package sandbox

import "golang.org/x/sys/unix"

const (
	// filterArch is the only AUDIT_ARCH the filter lets through (32-bit
	// arm system calls are killed).
	filterArch = unix.AUDIT_ARCH_AARCH64
	x32Bit     = 0 // no second ABI with the same arch value
)

var archDeniedSyscalls []uintptr
