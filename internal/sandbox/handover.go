package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// maxHandOverDepth bounds the recursion of handOver.
const maxHandOverDepth = 32

// handOver gives the kernel's private dir to uid:gid, so that the kernel,
// which runs as that user, can read its connection file, bind its ipc
// sockets and use dir/work as its home:
//
//   - dir itself stays owned by root, with group gid and mode 0710: the
//     kernel can reach the paths it is given but can neither list nor
//     change dir. The gateway later writes new connection files and ipc
//     dirs into dir as root, so a kernel must not be able to plant
//     symlinks there.
//   - Everything below dir that root owns (connection files, dir/work,
//     dir/iN and what root put in them) is chowned to uid:gid. Directories
//     are descended only while root owns them, so only what the gateway
//     made is walked; what the kernel made is its own already.
//
// The walk goes by file descriptors opened with O_NOFOLLOW and chowns with
// AT_SYMLINK_NOFOLLOW, so a symlink is never followed; regular files with
// more than one link are left alone.
func handOver(dir string, uid, gid int) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Uid == 0 {
		if err := unix.Fchown(fd, 0, gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := unix.Fchmod(fd, 0o710); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return handOverEntries(fd, dir, uid, gid, 0)
}

// handOverEntries chowns the root-owned entries of the open directory fd.
func handOverEntries(fd int, path string, uid, gid, depth int) error {
	if depth > maxHandOverDepth {
		return fmt.Errorf("%s: nested deeper than %d", path, maxHandOverDepth)
	}
	// Read the names through a dup, so closing the os.File leaves fd open.
	dup, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	unix.CloseOnExec(dup)
	if _, err := unix.Seek(dup, 0, 0); err != nil {
		unix.Close(dup)
		return err
	}
	f := os.NewFile(uintptr(dup), path)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("list %s: %w", path, err)
	}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("stat %s/%s: %w", path, name, err)
		}
		if st.Uid != 0 {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s/%s: %w", path, name, err)
			}
			err = handOverEntries(sub, path+"/"+name, uid, gid, depth+1)
			if err == nil {
				err = unix.Fchown(sub, uid, gid)
			}
			unix.Close(sub)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", path, name, err)
			}
		case unix.S_IFREG:
			if st.Nlink != 1 {
				continue
			}
			if err := unix.Fchownat(fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown %s/%s: %w", path, name, err)
			}
		}
	}
	return nil
}
