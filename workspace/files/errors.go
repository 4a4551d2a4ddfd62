package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/berth-dev/berth"
)

// fsErr translates an error from an os.Root call on the API path p into a
// berth error. Whatever the workspace's contents did (escaping or looping
// symlinks, odd file types, a tree changed under us) is the workspace's fault
// and gets a 4xx kind; only what we cannot explain stays Internal.
func fsErr(err error, p string) error {
	if err == nil {
		return nil
	}
	var be *berth.Error
	if errors.As(err, &be) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return berth.Wrap(berth.Unavailable, err, "request cancelled")
	}
	if e := escapeErr.Load(); e != nil && errors.Is(err, *e) {
		return berth.Errorf(berth.Invalid, "%s: resolves outside the workspace", p)
	}
	if errors.Is(err, os.ErrClosed) {
		return berth.Wrap(berth.Unavailable, err, p+": workspace closed")
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			// os.Root reports a few conditions without an errno, chiefly
			// OpenRoot on something that is not a directory.
			return berth.Errorf(berth.NotFound, "%s: not found or not a directory", p)
		}
		return berth.Wrap(berth.Internal, err, p)
	}
	switch errno {
	case syscall.ENOENT:
		return berth.Errorf(berth.NotFound, "%s: not found", p)
	case syscall.ENOTDIR:
		return berth.Errorf(berth.NotFound, "%s: a parent is not a directory", p)
	case syscall.EEXIST:
		return berth.Errorf(berth.Conflict, "%s: already exists", p)
	case syscall.ENOTEMPTY:
		return berth.Errorf(berth.Conflict, "%s: directory not empty", p)
	case syscall.EISDIR:
		return berth.Errorf(berth.Conflict, "%s: is a directory", p)
	case syscall.ELOOP:
		return berth.Errorf(berth.Invalid, "%s: too many levels of symbolic links", p)
	case syscall.ENAMETOOLONG:
		return berth.Errorf(berth.Invalid, "%s: name too long", p)
	case syscall.EINVAL:
		return berth.Errorf(berth.Invalid, "%s: invalid operation", p)
	case syscall.EXDEV:
		return berth.Errorf(berth.Conflict, "%s: crosses a mount point", p)
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
		return berth.Errorf(berth.QuotaExceeded, "%s: no space left", p)
	case syscall.EPERM:
		// As root, the only EPERM a workspace gives is from the flags that
		// pin a sandbox's mount point and the directories leading to it.
		return berth.Errorf(berth.Conflict,
			"%s: not permitted: it is in a sandbox's mount point or in a directory leading to one, where nothing may be created, removed, moved or replaced while that sandbox exists", p)
	case syscall.EACCES, syscall.EROFS:
		return berth.Errorf(berth.Forbidden, "%s: permission denied", p)
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EAGAIN, syscall.EBUSY:
		return berth.Wrap(berth.Unavailable, err, p+": temporarily unavailable")
	case syscall.ENXIO, syscall.ENODEV, syscall.EOPNOTSUPP:
		return berth.Errorf(berth.Invalid, "%s: not a regular file", p)
	}
	return berth.Wrap(berth.Internal, err, p)
}

// escapeErr is os.Root's unexported "path escapes from parent" error, learnt
// from the first root opened (see noteEscapeErr), so that it can be matched
// with errors.Is rather than by its text.
var escapeErr atomic.Pointer[error]

func noteEscapeErr(r *os.Root) {
	if escapeErr.Load() != nil {
		return
	}
	// ".." from the root escapes lexically, before any system call.
	_, err := r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		e := pe.Err
		escapeErr.Store(&e)
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func errChanged(p string) error {
	return berth.Errorf(berth.Conflict, "%s: changed while in use", p)
}
