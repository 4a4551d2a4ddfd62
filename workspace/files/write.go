package files

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

// bufSize is the one buffer a stream holds; big enough for disk speed, small
// enough that a thousand concurrent uploads fit in memory.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// WriteOptions tune Write.
type WriteOptions struct {
	// MakeParents creates missing parent directories (as uploads do).
	MakeParents bool
}

// Write replaces (or creates) the regular file at p with the contents of r,
// atomically: the data streams into a temporary file in the same directory,
// is fsynced, then renamed over p, so readers and concurrent writers see the
// old file or one whole new one, never a mix. If r fails, ctx is cancelled or
// the quota is crossed (checked while streaming; the size is not known in
// advance), the temporary file is removed and the old file stays.
//
// A directory at p is a Conflict. A symlink at p is replaced by the new file,
// never followed. The old file's permissions are kept.
func (w *Workspace) Write(ctx context.Context, p string, r io.Reader, opt WriteOptions) (Entry, error) {
	rel, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	if rel == "." {
		return Entry{}, berth.Errorf(berth.Invalid, "cannot write to the workspace root")
	}
	dirRel, base := splitRel(rel)
	if opt.MakeParents && dirRel != "." {
		if err := w.root.MkdirAll(dirRel, 0o755); err != nil {
			return Entry{}, fsErr(err, apiPath(dirRel))
		}
	}
	// All steps go through one handle on the parent directory, so the
	// temporary file and the rename stay in the same directory even if the
	// sandbox renames things around us.
	dir, err := openDir(w.root, dirRel)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(dirRel))
	}
	defer dir.Close()

	var oldSize int64
	perm := fs.FileMode(0o644)
	if old, err := dir.Lstat(base); err == nil {
		switch {
		case old.IsDir():
			return Entry{}, berth.Errorf(berth.Conflict, "%s: is a directory", apiPath(rel))
		case old.Mode().IsRegular():
			oldSize, perm = old.Size(), old.Mode().Perm()
		}
	} else if !isNotExist(err) {
		return Entry{}, fsErr(err, apiPath(rel))
	}

	res, err := w.reserve(ctx, oldSize)
	if err != nil {
		return Entry{}, err
	}
	tmp, err := writeTemp(ctx, dir, r, res, perm)
	if err != nil {
		res.done(false)
		return Entry{}, fsErr(err, apiPath(rel))
	}
	if err := dir.Rename(tmp, base); err != nil {
		dir.Remove(tmp)
		res.done(false)
		return Entry{}, fsErr(err, apiPath(rel))
	}
	res.done(true)
	syncDir(dir)
	info, err := dir.Lstat(base)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(rel))
	}
	return newEntry(rel, info), nil
}

// Create makes a new file (with contents, which may be nil) or directory
// named name in the directory at dirPath. An existing name is a Conflict,
// decided atomically: a file is written to a temporary name and hard-linked
// into place, which fails if the name was taken meanwhile.
func (w *Workspace) Create(ctx context.Context, dirPath, name, typ string, contents io.Reader) (Entry, error) {
	dirRel, err := Clean(dirPath)
	if err != nil {
		return Entry{}, err
	}
	raw, err := ValidName(name)
	if err != nil {
		return Entry{}, err
	}
	rel := joinRel(dirRel, raw)
	dir, err := openDir(w.root, dirRel)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(dirRel))
	}
	defer dir.Close()

	switch typ {
	case TypeDirectory:
		if err := dir.Mkdir(raw, 0o755); err != nil {
			return Entry{}, fsErr(err, apiPath(rel))
		}
	case TypeFile:
		if _, err := dir.Lstat(raw); err == nil {
			return Entry{}, berth.Errorf(berth.Conflict, "%s: already exists", apiPath(rel))
		}
		res, err := w.reserve(ctx, 0)
		if err != nil {
			return Entry{}, err
		}
		tmp, err := writeTemp(ctx, dir, contents, res, 0o644)
		if err != nil {
			res.done(false)
			return Entry{}, fsErr(err, apiPath(rel))
		}
		err = dir.Link(tmp, raw)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// No hard links here (some filesystems): fall back to a
			// checked rename, which can lose a race to a concurrent create.
			if _, serr := dir.Lstat(raw); serr == nil {
				err = syscall.EEXIST
			} else {
				err = dir.Rename(tmp, raw)
			}
		}
		dir.Remove(tmp)
		if err != nil {
			res.done(false)
			return Entry{}, fsErr(err, apiPath(rel))
		}
		res.done(true)
		syncDir(dir)
	default:
		return Entry{}, berth.Errorf(berth.Invalid, "type must be %q or %q", TypeFile, TypeDirectory)
	}
	info, err := dir.Lstat(raw)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(rel))
	}
	return newEntry(rel, info), nil
}

// writeTemp streams r into a new temporary file in dir and fsyncs it. It
// returns the temporary name; on error nothing is left.
func writeTemp(ctx context.Context, dir *os.Root, r io.Reader, res *reservation, perm fs.FileMode) (_ string, err error) {
	name := tempName()
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			dir.Remove(name)
		}
	}()
	if perm&^0o777 == 0 {
		f.Chmod(perm) // undo the umask so the old file's mode survives
	}
	if r != nil {
		if err = copyStream(ctx, newWriteback(f), r, res); err != nil {
			return "", err
		}
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return name, nil
}

// copyStream copies r to f through one pooled buffer, checking ctx and the
// quota reservation before every write.
func copyStream(ctx context.Context, f io.Writer, r io.Reader, res *reservation) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := res.grow(int64(n)); err != nil {
				return err
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			var be *berth.Error
			if errors.As(rerr, &be) {
				return rerr
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return berth.Wrap(berth.Invalid, rerr, "reading the contents failed")
		}
	}
}

// writebackChunk is how much freshly written data is handed to the disk at
// a time while a stream is still arriving.
const writebackChunk = 8 << 20

// writeback starts writing each chunk out to the disk as soon as it is
// written (sync_file_range without waiting), so that the disk works while
// the rest of the stream arrives and the final fsync waits only for the
// tail, not the whole file. It changes nothing about durability: the fsync
// still decides. A failure to start writeback is ignored for the same reason.
type writeback struct {
	f       *os.File
	rc      syscall.RawConn
	off     int64 // bytes written
	flushed int64 // bytes handed to the disk
}

func newWriteback(f *os.File) *writeback {
	rc, _ := f.SyscallConn()
	return &writeback{f: f, rc: rc}
}

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.rc != nil && w.off-w.flushed >= writebackChunk {
		off, length := w.flushed, w.off-w.flushed
		w.rc.Control(func(fd uintptr) {
			unix.SyncFileRange(int(fd), off, length, unix.SYNC_FILE_RANGE_WRITE)
		})
		w.flushed = w.off
	}
	return n, err
}

func syncDir(dir *os.Root) {
	if d, err := dir.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
}

// reserve starts a quota reservation for a write that will free credit bytes.
// With a quota set it first waits for the initial usage scan.
func (w *Workspace) reserve(ctx context.Context, credit int64) (*reservation, error) {
	q := w.quota.Load()
	if q > 0 {
		if err := w.usage.wait(ctx); err != nil {
			return nil, fsErr(err, "/")
		}
	}
	return &reservation{u: w.usage, quota: q, credit: credit}, nil
}
