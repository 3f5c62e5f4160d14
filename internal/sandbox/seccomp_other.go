//go:build !amd64 && !arm64

package sandbox

// No system call table here: Sandbox reports seccomp as unavailable.
const (
	filterArch = 0
	x32Bit     = 0
)

var archDeniedSyscalls []uintptr
