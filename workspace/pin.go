package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

// Mount points of nested mounts.
//
// A sandbox that mounts workspace W at /workspace and W2 at /workspace/priv
// needs the directory priv inside W's host directory as the mount point. Whoever
// else may write W (the file API, another sandbox mounting W) could rename or
// replace priv or a directory leading to it: since Linux 3.18 a dentry that
// is a mount point in another mount namespace can be renamed (the mount
// moves with it) or unlinked (the mount is detached), so the owner's writes
// would land in W; and a symlink planted there would make the engine mount
// W2 wherever it points inside the container at the next start.
//
// berth pins such paths with the immutable inode flag (FS_IMMUTABLE_FL),
// which the kernel enforces for every writer in every namespace (may_delete
// refuses to unlink, rename or replace an immutable inode, and an immutable
// directory takes no new entries), and which only CAP_LINUX_IMMUTABLE may
// change — a capability sandboxes never have. It is set on the mount point
// and on each directory between the workspace root and it.
//
// Append-only (FS_APPEND_FL) would also pin the directories leading to the
// mount point and let sandboxes create files next to it, but nothing
// created there could be removed again while pinned, and the file API's
// writes (a temporary file renamed into place) would fail after creating a
// temporary they cannot remove. Immutable refuses at the first step, so a
// refused operation leaves nothing behind.
//
// The sandbox manager decides which paths are pinned (from its database);
// this file only does the filesystem part.

// pinFlag is FS_IMMUTABLE_FL of linux/fs.h (golang.org/x/sys/unix does not
// define it); pinAny also clears FS_APPEND_FL. Other flags found on an
// inode are kept.
const (
	pinFlag = 0x00000010
	pinAny  = pinFlag | 0x00000020
)

// PinSupported reports, once per Service, whether the data directory's
// filesystem keeps the inode flags that pin mount points and whether this
// process may set them (root with CAP_LINUX_IMMUTABLE). Without them nested
// mounts cannot be protected; the error says why.
func (s *Service) PinSupported() error {
	s.pinOnce.Do(func() { s.pinErr = probePin(s.dataDir) })
	return s.pinErr
}

func probePin(dataDir string) error {
	dir, err := os.MkdirTemp(dataDir, ".pin-probe-")
	if err != nil {
		return fmt.Errorf("create a probe directory in the data directory: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Join(fmt.Errorf("open the probe directory: %w", err), os.Remove(dir))
	}
	perr := setFlags(fd, pinFlag)
	var got uint32
	if perr == nil {
		got, perr = getFlags(fd)
		if perr == nil && got&pinFlag == 0 {
			perr = errors.New("the flag did not stick")
		}
		perr = errors.Join(perr, setFlags(fd, 0))
	}
	return errors.Join(wrapPinErr(perr), unix.Close(fd), os.Remove(dir))
}

func wrapPinErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("the data directory's filesystem or this process cannot set immutable/append-only flags (needs ext4, btrfs or xfs and root with CAP_LINUX_IMMUTABLE): %w", err)
}

func getFlags(fd int) (uint32, error) {
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return v, err
}

func setFlags(fd int, v uint32) error {
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(v))
}

// updateFlags sets the pin bits of fd to want (a subset of pinAny), keeping
// every other flag.
func updateFlags(fd int, want uint32) error {
	cur, err := getFlags(fd)
	if err != nil {
		return err
	}
	if next := cur&^pinAny | want; next != cur {
		return setFlags(fd, next)
	}
	return nil
}

// PinMountPoints makes each of rels (clean slash-separated paths relative to
// workspace id's root, never ".") a pinned mount point: every missing
// directory on the way is created, none is followed if it is a symlink, and
// all of them are made immutable. A symlink or anything but a directory in
// the way is Conflict, and then nothing is flagged and nothing of what is in
// the way changes: user data is never replaced.
//
// The caller serialises calls for one workspace (with UnpinMountPoints).
func (s *Service) PinMountPoints(id string, rels []string) error {
	var errs []error
	for _, rel := range rels {
		errs = append(errs, s.pinOne(id, rel))
	}
	return errors.Join(errs...)
}

func (s *Service) pinOne(id, rel string) (err error) {
	segs := strings.Split(rel, "/")
	root, err := unix.Open(s.Dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open workspace %s: %w", id, err)
	}
	// fds[0] is the root, fds[i] the directory of segs[i-1].
	fds := []int{root}
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd) // directory descriptors: nothing to flush
		}
	}()
	// First the whole path, creating what is missing, so that a symlink or
	// a file in the way refuses the pin before anything is flagged (a
	// flagged parent would keep the user from moving it away).
	for i, seg := range segs {
		fd, err := openPinDir(fds[i], seg, "/"+strings.Join(segs[:i+1], "/"))
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	// Then the flags, from the top: once a directory is flagged its name
	// cannot change, so checking after the flag that the name still leads
	// to the inode flagged proves the path is the one opened. On failure
	// every flag changed here is put back.
	type change struct {
		fd   int
		prev uint32
	}
	var changed []change
	defer func() {
		if err == nil {
			return
		}
		for _, c := range changed {
			err = errors.Join(err, setFlags(c.fd, c.prev))
		}
	}()
	for i, seg := range segs {
		fd, at := fds[i+1], "/"+strings.Join(segs[:i+1], "/")
		cur, err := getFlags(fd)
		if err != nil {
			return fmt.Errorf("pin %s in workspace %s: %w", at, id, wrapPinErr(err))
		}
		if next := cur&^pinAny | pinFlag; next != cur {
			if err := setFlags(fd, next); err != nil {
				return fmt.Errorf("pin %s in workspace %s: %w", at, id, wrapPinErr(err))
			}
			changed = append(changed, change{fd, cur})
		}
		if err := sameEntry(fds[i], seg, fd); err != nil {
			return errors.Join(berth.Errorf(berth.Conflict, "mount point %s in the parent workspace changed while it was being prepared; try again", at), err)
		}
	}
	return nil
}

// openPinDir opens directory name in parent without following a symlink,
// creating it if missing (lifting, for that moment, the immutable flag of
// a parent already pinned for another mount point).
func openPinDir(parent int, name, at string) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			return -1, berth.Errorf(berth.Conflict,
				"mount path %s exists in the parent workspace as a symlink or a file, not a directory; move it away (it is left untouched) or choose another mount path", at)
		case !errors.Is(err, unix.ENOENT) || attempt > 0:
			return -1, fmt.Errorf("open mount point %s: %w", at, err)
		}
		err = unix.Mkdirat(parent, name, 0o755)
		if errors.Is(err, unix.EPERM) {
			err = mkdirUnderImmutable(parent, name)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create mount point %s: %w", at, err)
		}
	}
}

func mkdirUnderImmutable(parent int, name string) error {
	cur, err := getFlags(parent)
	if err != nil || cur&pinFlag == 0 {
		return unix.EPERM
	}
	if err := setFlags(parent, cur&^pinFlag); err != nil {
		return err
	}
	return errors.Join(unix.Mkdirat(parent, name, 0o755), setFlags(parent, cur))
}

// sameEntry checks that name in dir is (without following it) fd's inode.
func sameEntry(dir int, name string, fd int) error {
	var a, b unix.Stat_t
	if err := unix.Fstatat(dir, name, &a, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if err := unix.Fstat(fd, &b); err != nil {
		return err
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return errors.New("entry replaced")
	}
	return nil
}

// UnpinMountPoints reconsiders the directories of rels (and those leading
// to them) in workspace id, given the mount points still in use there
// (keep): each stays immutable if it is, or leads to, one in keep, and loses
// the flag otherwise. Missing entries and symlinks are skipped; nothing is
// created.
//
// The caller serialises calls for one workspace (with PinMountPoints).
func (s *Service) UnpinMountPoints(id string, rels, keep []string) error {
	want := map[string]uint32{}
	for _, k := range keep {
		segs := strings.Split(k, "/")
		for i := range segs {
			want[strings.Join(segs[:i+1], "/")] = pinFlag
		}
	}
	var errs []error
	for _, rel := range rels {
		errs = append(errs, s.unpinOne(id, rel, want))
	}
	return errors.Join(errs...)
}

func (s *Service) unpinOne(id, rel string, want map[string]uint32) error {
	segs := strings.Split(rel, "/")
	root, err := unix.Open(s.Dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // the workspace is gone
	}
	if err != nil {
		return fmt.Errorf("open workspace %s: %w", id, err)
	}
	fds := []int{root}
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd) // directory descriptors: nothing to flush
		}
	}()
	for i, seg := range segs {
		fd, err := unix.Openat(fds[i], seg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			break // nothing of ours below
		}
		if err != nil {
			return fmt.Errorf("open %s in workspace %s: %w", strings.Join(segs[:i+1], "/"), id, err)
		}
		fds = append(fds, fd)
	}
	// Bottom-up, so that what stays pinned is always a chain from the root
	// (UnpinTree relies on it), even if this stops half-way.
	for i := len(fds) - 1; i > 0; i-- {
		p := strings.Join(segs[:i], "/")
		if err := updateFlags(fds[i], want[p]); err != nil {
			return fmt.Errorf("unpin %s in workspace %s: %w", p, id, err)
		}
	}
	return nil
}

// UnpinTree clears the pins below root, a workspace directory, so that
// the tree can be removed: before a workspace is deleted, and by tests
// cleaning up a data directory. A pin covers every directory from the root
// to a mount point (pins are set top-down and cleared bottom-up), so only
// pinned directories are descended into: the walk costs the root's listing
// and the pinned chains, however large the tree. Symlinks are never
// followed; a filesystem without the flags has nothing to clear.
func UnpinTree(root string) error {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unpin %s: %w", root, err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(root, e.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
				errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
			}
			continue
		}
		cur, err := getFlags(fd)
		switch {
		case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
			// no flags on this filesystem
		case err != nil:
			errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
		case cur&pinAny != 0:
			if err := setFlags(fd, cur&^pinAny); err != nil {
				errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
			} else {
				errs = append(errs, UnpinTree(p))
			}
		}
		errs = append(errs, unix.Close(fd))
	}
	return errors.Join(errs...)
}
