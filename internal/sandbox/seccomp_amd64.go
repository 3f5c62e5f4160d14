package sandbox

import "golang.org/x/sys/unix"

const (
	// filterArch is the only AUDIT_ARCH the filter lets through; 32-bit
	// system calls (int 0x80) arrive as AUDIT_ARCH_I386 and are killed.
	filterArch = unix.AUDIT_ARCH_X86_64
	// x32Bit marks x32 system calls, which share x86_64's arch value.
	x32Bit = 0x40000000
)

// archDeniedSyscalls are refused on this architecture only: port I/O.
var archDeniedSyscalls = []uintptr{unix.SYS_IOPL, unix.SYS_IOPERM}
