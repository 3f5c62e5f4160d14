package sandbox

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter bwrap installs (--seccomp FD) in the kernel's process
// right before it execs it. It is a deny list, not an allow list: a
// notebook may run anything a Python distribution ships (numpy, compilers,
// subprocesses), so it only refuses what a notebook never needs and an
// attacker who wants the host's kernel does: other processes' memory,
// kernel modules and kexec, eBPF, perf events, userfaultfd, the key
// store, (re)mounting, new namespaces, personality flags, reboot, swap,
// accounting, quotas, port I/O, file handles and the kernel log; and
// io_uring, a large surface with a history of exploits that no notebook
// library needs. Refused calls fail with EPERM, so well-behaved code gets
// an error it can handle. clone3 fails with ENOSYS (its flags live in
// memory a filter cannot read), so the C library falls back to clone,
// whose namespace flags the filter does see. System calls of another ABI
// (32-bit x86 through int 0x80, x32) kill the process: the filter's
// numbers would not mean the same there.

// seccomp_data's layout (linux/seccomp.h): nr, arch, instruction pointer,
// then six 64-bit arguments. The filter reads the low 32 bits of argument
// 0, which come first on the little-endian machines it supports.
const (
	seccompNR   = 0
	seccompArch = 4
	seccompArg0 = 16
)

// cloneNamespaces are clone's flags that create namespaces. CLONE_NEWTIME
// is left out: for clone it is a bit of the exit signal.
const cloneNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// deniedSyscalls fail with EPERM on every architecture the filter knows.
var deniedSyscalls = []uintptr{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_MOVE_MOUNT,
	unix.SYS_FSOPEN, unix.SYS_FSMOUNT, unix.SYS_FSCONFIG, unix.SYS_FSPICK,
	unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT,
	unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_SYSLOG,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
}

// errSeccompArch is why there is no filter on an architecture this
// package has no system call table for.
var errSeccompArch = errors.New("no seccomp filter for this architecture")

// bpfInsn is one instruction of a program being assembled; jt and jf name
// labels (empty: the next instruction).
type bpfInsn struct {
	label  string // a label of this instruction, or ""
	code   uint16
	k      uint32
	jt, jf string
}

// seccompFilter returns the classic BPF program of the filter, as bwrap's
// --seccomp reads it (an array of struct sock_filter), for the
// architecture this binary was built for.
func seccompFilter() ([]unix.SockFilter, error) {
	if filterArch == 0 {
		return nil, errSeccompArch
	}
	const (
		ld   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	p := []bpfInsn{
		{code: ld, k: seccompArch},
		{code: jeq, k: filterArch, jf: "kill"},
		{code: ld, k: seccompNR},
	}
	if x32Bit != 0 {
		p = append(p, bpfInsn{code: jge, k: x32Bit, jt: "kill"})
	}
	for _, nr := range append(append([]uintptr{}, deniedSyscalls...), archDeniedSyscalls...) {
		p = append(p, bpfInsn{code: jeq, k: uint32(nr), jt: "eperm"})
	}
	p = append(p,
		bpfInsn{code: jeq, k: unix.SYS_CLONE3, jt: "enosys"},
		bpfInsn{code: jeq, k: unix.SYS_CLONE, jt: "clone"},
		bpfInsn{code: jeq, k: unix.SYS_PERSONALITY, jt: "personality"},
		bpfInsn{code: ret, k: unix.SECCOMP_RET_ALLOW},
		// personality(PER_LINUX) and the query personality(0xffffffff) are
		// what programs use; the rest (ADDR_NO_RANDOMIZE,
		// READ_IMPLIES_EXEC, ...) weakens the process.
		bpfInsn{label: "personality", code: ld, k: seccompArg0},
		bpfInsn{code: jeq, k: 0, jt: "allow"},
		bpfInsn{code: jeq, k: 0xffffffff, jt: "allow", jf: "eperm"},
		bpfInsn{label: "clone", code: ld, k: seccompArg0},
		bpfInsn{code: jset, k: cloneNamespaces, jt: "eperm"},
		bpfInsn{label: "allow", code: ret, k: unix.SECCOMP_RET_ALLOW},
		bpfInsn{label: "eperm", code: ret, k: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		bpfInsn{label: "enosys", code: ret, k: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		bpfInsn{label: "kill", code: ret, k: unix.SECCOMP_RET_KILL_PROCESS},
	)
	return assemble(p)
}

// assemble resolves p's labels into jump offsets.
func assemble(p []bpfInsn) ([]unix.SockFilter, error) {
	at := map[string]int{}
	for i, in := range p {
		if in.label != "" {
			if _, dup := at[in.label]; dup {
				return nil, fmt.Errorf("bpf: label %q twice", in.label)
			}
			at[in.label] = i
		}
	}
	off := func(i int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		t, ok := at[label]
		switch {
		case !ok:
			return 0, fmt.Errorf("bpf: no label %q", label)
		case t <= i || t-i-1 > 255:
			return 0, fmt.Errorf("bpf: jump from %d to %q (%d) is not forward within 255", i, label, t)
		}
		return uint8(t - i - 1), nil
	}
	out := make([]unix.SockFilter, len(p))
	for i, in := range p {
		jt, err := off(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := off(i, in.jf)
		if err != nil {
			return nil, err
		}
		out[i] = unix.SockFilter{Code: in.code, Jt: jt, Jf: jf, K: in.k}
	}
	return out, nil
}

// filterBytes is the program as bwrap reads it from its fd: the raw
// struct sock_filter array, in the machine's byte order.
func filterBytes(p []unix.SockFilter) []byte {
	if len(p) == 0 {
		return nil
	}
	n := len(p) * int(unsafe.Sizeof(p[0]))
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), n)...)
}

// seccompFile returns a memfd that holds the filter, read from its start;
// flags are memfd_create's (MFD_CLOEXEC, or 0 in the helper, which passes
// it to bwrap).
func seccompFile(prog []byte, flags int) (int, error) {
	fd, err := unix.MemfdCreate("kernelgate-seccomp", flags)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	for b := prog; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("write seccomp filter: %w", err)
		}
		b = b[n:]
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("seek seccomp filter: %w", err)
	}
	return fd, nil
}
