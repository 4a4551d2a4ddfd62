package files

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

// pinnedFlags are the inode flags with which berth pins the mount points of
// nested sandbox mounts and the directories leading to them (immutable; see
// workspace/pin.go), and append-only, which it clears with it. Only berth
// sets them (sandboxes lack CAP_LINUX_IMMUTABLE), so a flagged directory is
// one in use.
const pinnedFlags = 0x00000010 | 0x00000020 // FS_IMMUTABLE_FL | FS_APPEND_FL

// errPinned is the Conflict for a change to a pinned directory.
func errPinned(p string) error {
	return berth.Errorf(berth.Conflict,
		"%s is a sandbox's mount point or a directory leading to one; it cannot be moved, replaced or deleted (nor can entries in it) while that sandbox exists", p)
}

// refusePinned answers Conflict when rel (whose Lstat is info) is a pinned
// directory, before anything is changed: the kernel would refuse the
// operation anyway, but a tree delete or a replace would have half happened
// by then.
func (w *Workspace) refusePinned(rel string, info fs.FileInfo) error {
	if !info.IsDir() {
		return nil
	}
	f, err := w.root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fsErr(err, apiPath(rel))
	}
	defer closeRead(f)
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return nil // a filesystem without flags has nothing pinned
	}
	if err != nil {
		return fsErr(err, apiPath(rel))
	}
	if flags&pinnedFlags != 0 {
		return errPinned(apiPath(rel))
	}
	return nil
}
