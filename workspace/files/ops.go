package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/berth-dev/berth"
)

// Delete removes the entry at p; a directory is removed with everything
// below it. Symlinks are never followed: deleting one deletes the link.
// Deleting the root is Invalid.
func (w *Workspace) Delete(ctx context.Context, p string) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	if rel == "." {
		return berth.Errorf(berth.Invalid, "cannot delete the workspace root")
	}
	freed, err := w.remove(ctx, rel)
	w.freed(freed)
	return fsErr(err, apiPath(rel))
}

// freed accounts what a removal freed. Bytes still held by hard links
// outside what was removed are not known without a scan: ask for one.
func (w *Workspace) freed(f freed) {
	w.usage.add(-f.bytes)
	if f.linked {
		w.usage.Invalidate()
	}
}

// freed is what removing entries freed: the bytes of regular files whose
// last link went (see freedBy), and whether some had other links.
type freed struct {
	bytes  int64
	linked bool
}

func (f *freed) file(info fs.FileInfo) {
	f.bytes += freedBy(info)
	if _, n, ok := linkInfo(info); ok && n > 1 && info.Mode().IsRegular() {
		f.linked = true
	}
}

// remove deletes rel (a file or a whole tree) and returns what it freed.
func (w *Workspace) remove(ctx context.Context, rel string) (freed, error) {
	dirRel, base := splitRel(rel)
	parent, err := openDir(w.root, dirRel)
	if err != nil {
		return freed{}, err
	}
	defer closeRead(parent)
	info, err := parent.Lstat(base)
	if err != nil {
		return freed{}, err
	}
	if err := w.refusePinned(rel, info); err != nil {
		return freed{}, err
	}
	if !info.IsDir() {
		if err := parent.Remove(base); err != nil {
			return freed{}, err
		}
		var f freed
		f.file(info)
		return f, nil
	}
	return removeTree(ctx, parent, base, info)
}

// removeTree deletes the directory name in parent and everything below it,
// without recursion and without following symlinks. It works at any depth
// with a bounded number of open directories: a directory found at MaxDepth is
// first renamed up to the top of the tree being deleted (same filesystem, so
// a cheap rename) and deleted from there later.
func removeTree(ctx context.Context, parent *os.Root, name string, info fs.FileInfo) (f freed, err error) {
	top, err := openDir(parent, name)
	if err != nil {
		return f, err
	}
	if st, err := top.Stat("."); err != nil || !os.SameFile(st, info) {
		closeRead(top)
		if err == nil {
			err = errChanged(name)
		}
		return f, err
	}
	var flats []string
	defer func() {
		for _, n := range flats {
			dropTemp(n)
		}
	}()
	wk := &walker{}
	wk.visit = func(e *entry) (bool, error) {
		if e.info.IsDir() {
			if e.depth < MaxDepth {
				return true, nil
			}
			flat := newTemp(tempOnDisk)
			flats = append(flats, flat)
			if err := top.Rename(e.rel(), flat); err != nil {
				return false, err
			}
			wk.stack[0].names = append(wk.stack[0].names, flat)
			return false, nil
		}
		if err := e.parent.Remove(e.name); err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return false, err
		}
		f.file(e.info)
		return false, nil
	}
	wk.leave = func(e *entry) error {
		if err := e.parent.Remove(e.name); err != nil && !isNotExist(err) {
			return err
		}
		return nil
	}
	err = errors.Join(wk.run(ctx, top), top.Close())
	if err != nil {
		return f, err
	}
	return f, parent.Remove(name)
}

// Rename gives the entry at p a new name in the same directory.
func (w *Workspace) Rename(ctx context.Context, p, newName string, overwrite bool) (Entry, error) {
	rel, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	raw, err := ValidName(newName)
	if err != nil {
		return Entry{}, err
	}
	dir, _ := splitRel(rel)
	return w.move(ctx, rel, joinRel(dir, raw), overwrite)
}

// Move moves the entry at p into the directory targetDir, keeping its name.
// Moving a directory into itself or below itself is Invalid.
func (w *Workspace) Move(ctx context.Context, p, targetDir string, overwrite bool) (Entry, error) {
	rel, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	tdir, err := Clean(targetDir)
	if err != nil {
		return Entry{}, err
	}
	_, base := splitRel(rel)
	return w.move(ctx, rel, joinRel(tdir, base), overwrite)
}

func (w *Workspace) move(ctx context.Context, src, dst string, overwrite bool) (Entry, error) {
	if src == "." {
		return Entry{}, berth.Errorf(berth.Invalid, "cannot move the workspace root")
	}
	if within(dst, src) && dst != src {
		return Entry{}, berth.Errorf(berth.Invalid, "cannot move %s into itself", apiPath(src))
	}
	if err := checkDest(dst); err != nil {
		return Entry{}, err
	}
	info, err := w.root.Lstat(src)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(src))
	}
	if err := w.refusePinned(src, info); err != nil {
		return Entry{}, err
	}
	if dst != src {
		if err := w.place(ctx, src, dst, info, overwrite); err != nil {
			return Entry{}, err
		}
	}
	return w.Stat(ctx, apiPath(dst))
}

// place renames src (whose Lstat is info) to dst. If dst exists it is a
// Conflict unless overwrite; then dst is replaced: atomically by rename(2)
// when neither is a directory, otherwise by moving the old dst aside to a
// temporary name first (restored if the second rename fails) and deleting it
// afterwards. Without overwrite, a dst created by someone else between the
// check and the rename can still be replaced (no renameat2 in os.Root).
func (w *Workspace) place(ctx context.Context, src, dst string, info fs.FileInfo, overwrite bool) error {
	old, err := w.root.Lstat(dst)
	switch {
	case isNotExist(err):
		return fsErr(w.root.Rename(src, dst), apiPath(dst))
	case err != nil:
		return fsErr(err, apiPath(dst))
	case !overwrite:
		return berth.Errorf(berth.Conflict, "%s: already exists", apiPath(dst))
	}
	if err := w.refusePinned(dst, old); err != nil {
		return err
	}
	if !old.IsDir() && !info.IsDir() {
		if err := w.root.Rename(src, dst); err != nil {
			return fsErr(err, apiPath(dst))
		}
		var f freed
		f.file(old)
		w.freed(f)
		return nil
	}
	dir, _ := splitRel(dst)
	name := newTemp(tempOnDisk)
	defer dropTemp(name)
	aside := joinRel(dir, name)
	if err := w.root.Rename(dst, aside); err != nil {
		return fsErr(err, apiPath(dst))
	}
	if err := w.root.Rename(src, dst); err != nil {
		if rerr := w.root.Rename(aside, dst); rerr != nil {
			// The old entry stays under its temporary name: counted, and
			// removed at the next Open.
			w.log.Error("workspace: restoring an entry moved aside", "dir", w.dir, "path", apiPath(dst), "aside", aside, "err", rerr)
		}
		return fsErr(err, apiPath(dst))
	}
	// The replacement is done; deleting the old entry is cleanup and runs
	// to its end (with its own deadline) even if the request goes away.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	f, err := w.remove(cctx, aside)
	w.freed(f)
	if err != nil {
		w.log.Warn("workspace: removing replaced entry", "dir", w.dir, "path", aside, "err", err)
	}
	return nil
}

// cleanupTimeout bounds a cleanup that runs after its request is done or
// gone (removing a replaced tree or a failed copy).
const cleanupTimeout = 5 * time.Minute

// Copy copies the entry at p into the directory targetDir, keeping its name;
// directories are copied recursively (up to MaxDepth levels; deeper is
// Invalid). The copy is built under a temporary name and renamed into place,
// so a failed copy leaves nothing behind and a concurrent reader never sees
// half of one. Symlinks are copied as symlinks with the same target text and
// never followed (like cp -P): the copy is as inert as the original, since
// this package never follows a link out of the workspace. FIFOs, sockets and
// devices inside a copied directory are skipped; copying one directly is
// Invalid. Copied bytes count against the quota as they are written.
func (w *Workspace) Copy(ctx context.Context, p, targetDir string, overwrite bool) (Entry, error) {
	src, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	tdir, err := Clean(targetDir)
	if err != nil {
		return Entry{}, err
	}
	if src == "." {
		return Entry{}, berth.Errorf(berth.Invalid, "cannot copy the workspace root")
	}
	_, base := splitRel(src)
	dst := joinRel(tdir, base)
	if dst == src {
		return Entry{}, berth.Errorf(berth.Conflict, "%s: source and target are the same", apiPath(src))
	}
	if within(dst, src) {
		return Entry{}, berth.Errorf(berth.Invalid, "cannot copy %s into itself", apiPath(src))
	}
	info, err := w.root.Lstat(src)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(src))
	}
	if err := checkDest(dst); err != nil {
		return Entry{}, err
	}
	if _, err := w.root.Lstat(dst); err == nil && !overwrite {
		return Entry{}, berth.Errorf(berth.Conflict, "%s: already exists", apiPath(dst))
	}
	srcDir, _ := splitRel(src)
	sparent, err := openDir(w.root, srcDir)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(srcDir))
	}
	defer closeRead(sparent)
	dparent, err := openDir(w.root, tdir)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(tdir))
	}
	defer closeRead(dparent)

	res, err := w.reserve(ctx, 0)
	if err != nil {
		return Entry{}, err
	}
	tmp, err := w.copyEntry(ctx, sparent, base, info, dparent, res)
	if tmp != "" {
		defer dropTemp(tmp) // once renamed into place or removed
	}
	if err == nil {
		w.commits.add(apiPath(dst))
		if err = w.place(ctx, joinRel(tdir, tmp), dst, info, overwrite); err != nil {
			w.commits.take(apiPath(dst))
		}
	}
	if err != nil {
		if tmp != "" {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			_, rerr := w.remove(cctx, joinRel(tdir, tmp))
			cancel()
			if rerr != nil && !isNotExist(rerr) {
				w.log.Warn("workspace: removing a failed copy", "dir", w.dir, "path", apiPath(joinRel(tdir, tmp)), "err", rerr)
			}
		}
		res.done(false)
		return Entry{}, fsErr(err, apiPath(src))
	}
	res.done(true)
	return w.Stat(ctx, apiPath(dst))
}

// copyEntry copies name in sp (Lstat info) to a new temporary name in dp and
// returns that name ("" if nothing was created).
func (w *Workspace) copyEntry(ctx context.Context, sp *os.Root, name string, info fs.FileInfo, dp *os.Root, res *reservation) (string, error) {
	mode := info.Mode()
	switch {
	case mode.IsRegular():
		f, err := openRegular(sp, name, info)
		if err != nil {
			return "", err
		}
		defer closeRead(f)
		return w.writeTemp(ctx, dp, func(out *os.File) error { return copySparse(ctx, out, f, res) }, mode.Perm())
	case mode&fs.ModeSymlink != 0:
		target, err := sp.Readlink(name)
		if err != nil {
			return "", err
		}
		tmp := newTemp(tempReserved)
		if err := dp.Symlink(target, tmp); err != nil {
			dropTemp(tmp)
			return "", err
		}
		return tmp, nil
	case mode.IsDir():
		tmp := newTemp(tempReserved)
		if err := dp.Mkdir(tmp, mode.Perm()|0o700); err != nil {
			dropTemp(tmp)
			return "", err
		}
		return tmp, copyTree(ctx, sp, name, info, dp, tmp, res)
	}
	return "", berth.Errorf(berth.Invalid, "%s: cannot copy a %s", EncodeName(name), typeWord(mode))
}

func typeWord(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "FIFO"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// copyTree copies the contents of directory sname in sp into the (new, empty)
// directory dname in dp.
func copyTree(ctx context.Context, sp *os.Root, sname string, sinfo fs.FileInfo, dp *os.Root, dname string, res *reservation) error {
	src, err := openDir(sp, sname)
	if err != nil {
		return err
	}
	defer closeRead(src)
	if st, err := src.Stat("."); err != nil || !os.SameFile(st, sinfo) {
		if err == nil {
			err = errChanged(EncodeName(sname))
		}
		return err
	}
	dst, err := openDir(dp, dname)
	if err != nil {
		return err
	}
	dinfo, err := dst.Stat(".")
	if err != nil {
		closeRead(dst)
		return err
	}
	stack := []*os.Root{dst}
	defer func() {
		for _, r := range stack {
			closeRead(r)
		}
	}()
	wk := &walker{
		// Never copy the copy: the target may lie inside the source
		// through a symlinked directory.
		skip: func(fi fs.FileInfo) bool { return os.SameFile(fi, dinfo) },
	}
	wk.visit = func(e *entry) (bool, error) {
		d := stack[e.depth-1]
		mode := e.info.Mode()
		switch {
		case e.deep:
			return false, berth.Errorf(berth.Invalid, "directory tree deeper than %d levels", MaxDepth)
		case mode.IsDir():
			if err := d.Mkdir(e.name, mode.Perm()|0o700); err != nil {
				return false, err
			}
			sub, err := openDir(d, e.name)
			if err != nil {
				return false, err
			}
			stack = append(stack, sub)
			return true, nil
		case mode.IsRegular():
			f, err := openRegular(e.parent, e.name, e.info)
			if err != nil {
				if isNotExist(err) {
					return false, nil
				}
				return false, err
			}
			defer closeRead(f)
			out, err := d.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
			if err != nil {
				return false, err
			}
			err = copySparse(ctx, out, f, res)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return false, err
		case mode&fs.ModeSymlink != 0:
			target, err := e.parent.Readlink(e.name)
			if err != nil {
				return false, err
			}
			return false, d.Symlink(target, e.name)
		}
		return false, nil // FIFOs, sockets, devices: skipped
	}
	wk.leave = func(e *entry) error {
		closeRead(stack[len(stack)-1])
		stack = stack[:len(stack)-1]
		return nil
	}
	return wk.run(ctx, src)
}

// openRegular opens name in dir for reading, only if it is the regular file
// described by want (nil: any regular file, following symlinks inside the
// root). O_NONBLOCK keeps a FIFO swapped in at the last moment from blocking
// the open; the check on the opened descriptor refuses it.
func openRegular(dir *os.Root, name string, want fs.FileInfo) (*os.File, error) {
	f, err := dir.OpenFile(name, os.O_RDONLY|syscallNonblock, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = berth.Errorf(berth.Invalid, "%s: not a regular file", EncodeName(name))
	}
	if err == nil && want != nil && !os.SameFile(st, want) {
		err = errChanged(EncodeName(name))
	}
	if err != nil {
		closeRead(f)
		return nil, err
	}
	return f, nil
}

// BatchMax is the most ids one batch may name.
const BatchMax = 250

// Batch operations.
const (
	OpCopy   = "copy"
	OpMove   = "move"
	OpDelete = "delete"
)

// BatchResult is the outcome for one id of a batch: Err is nil on success.
type BatchResult struct {
	ID    string
	Entry *Entry // the new entry for copy and move
	Err   error
}

// Batch runs op (OpCopy, OpMove into target, or OpDelete) on up to BatchMax
// ids. The request as a whole is validated first (op, count, every id and the
// target), and a bad one fails with Invalid before anything is touched. Then
// each id is done independently, in order, and reported in its BatchResult:
// one failing id does not stop or undo the others.
func (w *Workspace) Batch(ctx context.Context, op string, ids []string, target string, overwrite bool) ([]BatchResult, error) {
	if len(ids) == 0 || len(ids) > BatchMax {
		return nil, berth.Errorf(berth.Invalid, "ids must name 1..%d entries", BatchMax)
	}
	switch op {
	case OpCopy, OpMove:
		if _, err := Clean(target); err != nil {
			return nil, err
		}
	case OpDelete:
	default:
		return nil, berth.Errorf(berth.Invalid, "operation must be copy, move or delete")
	}
	for _, id := range ids {
		if _, err := Clean(id); err != nil {
			return nil, err
		}
	}
	out := make([]BatchResult, len(ids))
	for i, id := range ids {
		out[i].ID = id
		var e Entry
		var err error
		switch op {
		case OpCopy:
			e, err = w.Copy(ctx, id, target, overwrite)
		case OpMove:
			e, err = w.Move(ctx, id, target, overwrite)
		case OpDelete:
			err = w.Delete(ctx, id)
		}
		if err != nil {
			out[i].Err = err
		} else if op != OpDelete {
			out[i].Entry = &e
		}
	}
	return out, nil
}
