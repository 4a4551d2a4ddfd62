// Package mountns attaches a host directory to, and detaches it from, a
// running container: it clones the directory as a detached mount
// (open_tree) in berth's own mount namespace, then moves that mount into
// the container's namespace (setns, move_mount) onto a target that it
// walks to, and creates, without following any symlink. Nothing crosses a
// shared mount point: no propagation is set up, so a container cannot see
// or alter anything else of the host through it.
//
// Each operation runs on an OS thread of its own that unshares its
// filesystem attributes first (a thread that shares them with others may
// not join a mount namespace) and is thrown away afterwards (the
// goroutine exits while locked), so no other goroutine ever runs inside a
// container's namespace. It needs root (CAP_SYS_ADMIN) on the container's
// host: it works only for containers of the engine on the same machine.
package mountns

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSymlink is returned when the target path, inside the container, goes
// through a symlink or meets a non-directory.
var ErrSymlink = errors.New("the path goes through a symlink or a file inside the sandbox")

// Attach bind-mounts the host directory source (recursively) at target in
// the mount namespace of process pid, read-only if readOnly, creating
// target and its missing parents (mode 0755) without following symlinks.
func Attach(pid int, source, target string, readOnly bool) error {
	return inNamespace(pid, func() (func() error, error) {
		// In berth's namespace: clone the source as a detached mount.
		tree, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return nil, fmt.Errorf("clone %s: %w", source, err)
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Propagation: unix.MS_PRIVATE}
		if readOnly {
			attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
		}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			_ = unix.Close(tree)
			return nil, fmt.Errorf("set the attributes of %s: %w", source, err)
		}
		// In the container's namespace: make the target and move the
		// clone onto it.
		return func() error {
			defer func() { _ = unix.Close(tree) }()
			dir, err := walk(target, true)
			if err != nil {
				return err
			}
			defer func() { _ = unix.Close(dir) }()
			if err := unix.MoveMount(tree, "", dir, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
				return fmt.Errorf("mount at %s: %w", target, err)
			}
			return nil
		}, nil
	})
}

// Detach unmounts (lazily: processes that use it keep it until they let
// go) every mount stacked at target in the mount namespace of process pid,
// and every other mount there of the host directory source (its root is
// source) whose mount point is not in keep: the sandbox may have moved
// the mount elsewhere by renaming a parent directory, and a detach must
// not leave it reachable. A target that is not a mount point (or no
// longer exists) is not an error.
func Detach(pid int, target, source string, keep []string) error {
	var st unix.Stat_t
	srcKnown := unix.Stat(source, &st) == nil
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return fmt.Errorf("the sandbox's mounts: %w", err)
	}
	var others []string
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if mp != target && !slices.Contains(keep, mp) && strings.HasPrefix(mp, "/") {
			others = append(others, mp)
		}
	}
	return inNamespace(pid, func() (func() error, error) {
		return func() error {
			if err := unmountAll(target, nil); err != nil {
				return err
			}
			if !srcKnown {
				return nil
			}
			var errs []error
			for _, mp := range others {
				errs = append(errs, unmountAll(mp, &st))
			}
			return errors.Join(errs...)
		}, nil
	})
}

// unmountAll lazily unmounts every mount stacked at p, reached without
// following symlinks; with root set, only if the top one's root directory
// is root (the same device and inode).
func unmountAll(p string, root *unix.Stat_t) error {
	i := strings.LastIndex(p, "/")
	parent, name := p[:i], p[i+1:]
	if parent == "" {
		parent = "/"
	}
	if name == "" {
		return nil // never the container's root
	}
	dir, err := walk(parent, false)
	if err != nil {
		if root != nil || errors.Is(err, unix.ENOENT) {
			return nil // gone, or not a path berth would mount on
		}
		return err
	}
	defer func() { _ = unix.Close(dir) }()
	if root != nil {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Dev != root.Dev || st.Ino != root.Ino {
			return nil
		}
	}
	// umount2 takes a path: resolve it from the parent reached safely (the
	// thread's working directory is its own), and never follow a symlink
	// in its last component.
	if err := unix.Fchdir(dir); err != nil {
		return err
	}
	for range 64 {
		err := unix.Unmount(name, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("unmount %s: too many mounts stacked there", p)
}

// unescape undoes the octal escapes of /proc/*/mountinfo (\040 for a
// space, \011, \012, \134).
func unescape(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// inNamespace runs before on a fresh locked thread in berth's namespace,
// then the function it returns in the mount namespace of pid.
func inNamespace(pid int, before func() (func() error, error)) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return fmt.Errorf("the sandbox's mount namespace: %w", err)
	}
	defer func() { _ = ns.Close() }()
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine, so that no
		// other goroutine runs in the container's namespace.
		goruntime.LockOSThread()
		inside, err := before()
		if err != nil {
			done <- err
			return
		}
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare the thread's filesystem attributes: %w", err)
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
			done <- fmt.Errorf("enter the sandbox's mount namespace: %w", err)
			return
		}
		done <- inside()
	}()
	return <-done
}

// walk opens the directory at the absolute, clean path p from the root of
// the calling thread, one component at a time with no symlink followed
// (RESOLVE_NO_SYMLINKS), creating missing ones if create.
func walk(p string, create bool) (int, error) {
	how := func(flags uint64) *unix.OpenHow {
		return &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH}
	}
	dir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" {
			continue
		}
		if seg == "." || seg == ".." {
			_ = unix.Close(dir)
			return -1, fmt.Errorf("path %s: not clean", p)
		}
		next, err := unix.Openat2(dir, seg, how(unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW))
		if errors.Is(err, unix.ENOENT) && create {
			if merr := unix.Mkdirat(dir, seg, 0o755); merr != nil && !errors.Is(merr, unix.EEXIST) {
				_ = unix.Close(dir)
				return -1, fmt.Errorf("create %s in %s: %w", seg, p, merr)
			}
			next, err = unix.Openat2(dir, seg, how(unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW))
		}
		_ = unix.Close(dir)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
			return -1, fmt.Errorf("path %s: %w", p, ErrSymlink)
		}
		if err != nil {
			return -1, fmt.Errorf("path %s: %w", p, err)
		}
		dir = next
	}
	return dir, nil
}
