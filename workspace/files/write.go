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
// advance), the temporary file is removed and the old file stays; so are
// the parent directories the write created.
//
// A directory at p is a Conflict. A symlink at p is replaced by the new file,
// never followed. The old file's permissions are kept. A path with a
// reserved name (see reserved) is Invalid.
func (w *Workspace) Write(ctx context.Context, p string, r io.Reader, opt WriteOptions) (Entry, error) {
	// One write keeps its directory open from the temporary file to the
	// rename, so both stay in the same directory even if the sandbox
	// renames things around us.
	s, err := w.stage(ctx, p, r, opt, true)
	if err != nil {
		return Entry{}, err
	}
	e, err := s.Commit()
	if err != nil {
		if aerr := s.Abort(); aerr != nil {
			w.log.Warn("workspace: cleaning up a failed write", "dir", w.dir, "path", apiPath(s.rel), "err", aerr)
		}
		return Entry{}, err
	}
	return e, nil
}

// Staged is a file written in full and fsynced under a temporary name in
// its target's directory, its bytes held against the quota, until Commit
// puts it in place or Abort removes it (with the parent directories Stage
// created). It lets a request that writes several files (an upload) write
// them all before any of them replaces anything, and leave nothing behind
// when it fails. A Staged holds no descriptor (an upload may stage many
// files), so Check, Commit and Abort open the directory again by its path. A
// Staged is used by one goroutine.
type Staged struct {
	w     *Workspace
	rel   string
	dir   *os.Root // the target's directory, open while Stage writes
	tmp   string   // temporary name in the target's directory, "" if none
	res   *reservation
	made  []madeDir // parent directories created, outermost first
	state int
}

const (
	stagedOpen = iota
	stagedCommitted
	stagedAborted
)

// madeDir is a directory created for a write, to remove again if it fails.
type madeDir struct {
	rel  string
	info fs.FileInfo
}

// Stage writes r as the future contents of the file at p (see Write) and
// returns it staged. On error nothing is left.
func (w *Workspace) Stage(ctx context.Context, p string, r io.Reader, opt WriteOptions) (*Staged, error) {
	return w.stage(ctx, p, r, opt, false)
}

// stage is Stage; with keepDir the Staged keeps its directory open.
func (w *Workspace) stage(ctx context.Context, p string, r io.Reader, opt WriteOptions, keepDir bool) (_ *Staged, err error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return nil, berth.Errorf(berth.Invalid, "cannot write to the workspace root")
	}
	if err := checkDest(rel); err != nil {
		return nil, err
	}
	s := &Staged{w: w, rel: rel}
	defer func() {
		if err != nil {
			if aerr := s.Abort(); aerr != nil {
				w.log.Warn("workspace: cleaning up a failed write", "dir", w.dir, "path", apiPath(rel), "err", aerr)
			}
		}
	}()
	dirRel, base := splitRel(rel)
	if opt.MakeParents && dirRel != "." {
		if s.made, err = w.mkdirs(dirRel); err != nil {
			return nil, fsErr(err, apiPath(dirRel))
		}
	}
	// All steps go through one handle on the parent directory, so the
	// temporary file and the rename stay in the same directory even if the
	// sandbox renames things around us.
	if s.dir, err = openDir(w.root, dirRel); err != nil {
		return nil, fsErr(err, apiPath(dirRel))
	}
	var credit int64
	perm := fs.FileMode(0o644)
	if old, err := s.dir.Lstat(base); err == nil {
		switch {
		case old.IsDir():
			return nil, berth.Errorf(berth.Conflict, "%s: is a directory", apiPath(rel))
		case old.Mode().IsRegular():
			credit, perm = freedBy(old), old.Mode().Perm()
		}
	} else if !isNotExist(err) {
		return nil, fsErr(err, apiPath(rel))
	}
	if s.res, err = w.reserve(ctx, credit); err != nil {
		return nil, err
	}
	if s.tmp, err = w.writeTemp(ctx, s.dir, streamFrom(ctx, r, s.res), perm); err != nil {
		return nil, fsErr(err, apiPath(rel))
	}
	if !keepDir {
		dir := s.dir
		s.dir = nil
		if err := dir.Close(); err != nil {
			return nil, fsErr(err, apiPath(dirRel))
		}
	}
	return s, nil
}

// withDir calls fn with the target's directory: the one kept open, or else
// opened again for the call.
func (s *Staged) withDir(fn func(*os.Root) error) error {
	if s.dir != nil {
		return fn(s.dir)
	}
	dirRel, _ := splitRel(s.rel)
	d, err := openDir(s.w.root, dirRel)
	if err != nil {
		return fsErr(err, apiPath(dirRel))
	}
	err = fn(d)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fsErr(cerr, apiPath(dirRel))
	}
	return err
}

// closeDir closes the directory kept open, if any.
func (s *Staged) closeDir() error {
	if s.dir == nil {
		return nil
	}
	err := s.dir.Close()
	s.dir = nil
	return err
}

// Path is the API path the staged file is for.
func (s *Staged) Path() string { return apiPath(s.rel) }

// Check reports whether Commit can still put the file in place (the target
// is not a directory), so that a request committing several files can find
// a conflict before it replaces any of them.
func (s *Staged) Check() error {
	_, base := splitRel(s.rel)
	return s.withDir(func(dir *os.Root) error {
		old, err := dir.Lstat(base)
		switch {
		case isNotExist(err):
			return nil
		case err != nil:
			return fsErr(err, apiPath(s.rel))
		case old.IsDir():
			return berth.Errorf(berth.Conflict, "%s: is a directory", apiPath(s.rel))
		}
		return nil
	})
}

// Commit renames the staged file over its target. On error the staged file
// is still there: Abort it.
func (s *Staged) Commit() (Entry, error) {
	if s.state != stagedOpen {
		return Entry{}, berth.Errorf(berth.Internal, "%s: staged write already finished", apiPath(s.rel))
	}
	_, base := splitRel(s.rel)
	var info fs.FileInfo
	err := s.withDir(func(dir *os.Root) error {
		s.w.commits.add(apiPath(s.rel))
		if err := dir.Rename(s.tmp, base); err != nil {
			s.w.commits.take(apiPath(s.rel))
			return fsErr(err, apiPath(s.rel))
		}
		s.state = stagedCommitted
		dropTemp(s.tmp)
		s.res.done(true)
		if err := syncDir(dir); err != nil {
			// The file is in place; only its durability across a crash is
			// in doubt, which the client cannot act on.
			s.w.log.Warn("workspace: fsync of a directory", "dir", s.w.dir, "path", apiPath(s.rel), "err", err)
		}
		var err error
		info, err = dir.Lstat(base)
		return fsErr(err, apiPath(s.rel))
	})
	if s.state == stagedCommitted {
		if cerr := s.closeDir(); cerr != nil {
			s.w.log.Warn("workspace: closing a directory", "dir", s.w.dir, "path", apiPath(s.rel), "err", cerr)
		}
	}
	if err != nil {
		return Entry{}, err
	}
	return newEntry(s.rel, info), nil
}

// Abort removes the staged file and the parent directories Stage created
// (those still empty), and releases its reservation. It does nothing after
// Commit or a first Abort, so it may be deferred.
func (s *Staged) Abort() error {
	if s.state != stagedOpen {
		return nil
	}
	s.state = stagedAborted
	var errs []error
	if s.tmp != "" {
		// Left behind if this fails (the directory was moved away, say):
		// unregistered, it is counted and removed at the next Open.
		err := s.withDir(func(dir *os.Root) error {
			if err := dir.Remove(s.tmp); err != nil && !isNotExist(err) {
				return err
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
		dropTemp(s.tmp)
	}
	if s.res != nil {
		s.res.done(false)
	}
	if err := s.closeDir(); err != nil {
		errs = append(errs, err)
	}
	for i := len(s.made) - 1; i >= 0; i-- {
		d := s.made[i]
		// Remove only the directory created, and only while empty: anything
		// put there meanwhile (by a sandbox, or another request) stays.
		info, err := s.w.root.Lstat(d.rel)
		if err != nil || !os.SameFile(info, d.info) {
			break
		}
		if err := s.w.root.Remove(d.rel); err != nil {
			if !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) && !isNotExist(err) {
				errs = append(errs, err)
			}
			break
		}
	}
	return errors.Join(errs...)
}

// mkdirs creates the missing directories along rel (raw, relative, not
// ".") and returns the ones it created, outermost first.
func (w *Workspace) mkdirs(rel string) ([]madeDir, error) {
	if d, err := openDir(w.root, rel); err == nil {
		return nil, d.Close() // the common case: it exists
	}
	var made []madeDir
	for end := 1; end <= len(rel); end++ {
		if end < len(rel) && rel[end] != '/' {
			continue
		}
		p := rel[:end]
		err := w.root.Mkdir(p, 0o755)
		if errors.Is(err, fs.ErrExist) {
			if st, serr := w.root.Stat(p); serr == nil && !st.IsDir() {
				return made, syscall.EEXIST // a file where a directory should be
			}
			continue
		}
		if err != nil {
			return made, err
		}
		info, err := w.root.Lstat(p)
		if err != nil {
			return made, err
		}
		made = append(made, madeDir{rel: p, info: info})
	}
	return made, nil
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
	if err := checkDest(rel); err != nil {
		return Entry{}, err
	}
	dir, err := openDir(w.root, dirRel)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(dirRel))
	}
	defer closeRead(dir)

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
		tmp, err := w.writeTemp(ctx, dir, streamFrom(ctx, contents, res), 0o644)
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
		if rerr := dir.Remove(tmp); rerr != nil && !isNotExist(rerr) {
			w.log.Warn("workspace: removing a temporary file", "dir", w.dir, "path", apiPath(joinRel(dirRel, tmp)), "err", rerr)
		}
		dropTemp(tmp)
		if err != nil {
			res.done(false)
			return Entry{}, fsErr(err, apiPath(rel))
		}
		res.done(true)
		if err := syncDir(dir); err != nil {
			w.log.Warn("workspace: fsync of a directory", "dir", w.dir, "path", apiPath(dirRel), "err", err)
		}
	default:
		return Entry{}, berth.Errorf(berth.Invalid, "type must be %q or %q", TypeFile, TypeDirectory)
	}
	info, err := dir.Lstat(raw)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(rel))
	}
	return newEntry(rel, info), nil
}

// streamFrom fills a new file with r (nil: nothing), counting its bytes in res.
func streamFrom(ctx context.Context, r io.Reader, res *reservation) func(*os.File) error {
	return func(f *os.File) error {
		if r == nil {
			return nil
		}
		return copyStream(ctx, newWriteback(f), r, res)
	}
}

// writeTemp creates a new temporary file in dir, has fill write it, and
// fsyncs it. It returns the temporary name, registered as live (the caller
// drops it once the file is renamed away or removed); on error nothing is
// left.
func (w *Workspace) writeTemp(ctx context.Context, dir *os.Root, fill func(*os.File) error, perm fs.FileMode) (_ string, err error) {
	name := newTemp(tempReserved)
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		dropTemp(name)
		return "", err
	}
	defer func() {
		if err == nil {
			return
		}
		if cerr := f.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) {
			w.log.Warn("workspace: closing a temporary file", "dir", w.dir, "name", name, "err", cerr)
		}
		if rerr := dir.Remove(name); rerr != nil && !isNotExist(rerr) {
			// Left on disk, unregistered: usage counts it and the next
			// Open removes it.
			w.log.Warn("workspace: removing a temporary file", "dir", w.dir, "name", name, "err", rerr)
		}
		dropTemp(name)
	}()
	if perm&^0o777 == 0 {
		// Undo the umask so the old file's mode survives.
		if err = f.Chmod(perm); err != nil {
			return "", err
		}
	}
	if err = fill(f); err != nil {
		return "", err
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

// copySparse copies the regular file src into the new, empty file dst,
// writing only src's data extents (SEEK_DATA/SEEK_HOLE) and leaving its
// holes as holes. A copy of a sparse file is then as sparse as the original
// and reserves only the bytes the disk really holds for it, instead of
// turning a 4 KiB file that says it is 1 TiB into 1 TiB of zeros.
func copySparse(ctx context.Context, dst, src *os.File, res *reservation) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	for off := int64(0); off < size; {
		data, err := src.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, syscall.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			return err
		}
		hole, err := src.Seek(data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		hole = min(hole, size) // the file grew meanwhile: copy what it had
		if data >= hole {
			break
		}
		if _, err := src.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := dst.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if err := copyStream(ctx, dst, io.LimitReader(src, hole-data), res); err != nil {
			return err
		}
		off = hole
	}
	return dst.Truncate(size)
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
		// Best effort, as said above: the final fsync decides.
		_ = w.rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), off, length, unix.SYNC_FILE_RANGE_WRITE)
		})
		w.flushed = w.off
	}
	return n, err
}

func syncDir(dir *os.Root) error {
	d, err := dir.Open(".")
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
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
