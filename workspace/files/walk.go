package files

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// MaxDepth bounds how deep a recursive walk (summary, usage, copy, archive,
// watch) descends below its starting directory. A walk holds one open
// directory per level of its current path (two for a level larger than
// walkBatch), so the bound is also its file descriptor budget. Delete is not
// bounded (see deleteTree).
const MaxDepth = 1024

// entry is one visited name during a walk.
type entry struct {
	parent *os.Root // the directory holding the entry
	name   string   // raw name in parent
	info   fs.FileInfo
	depth  int // 1 for children of the walk's top
	deep   bool
	w      *walker
}

// rel is the entry's raw path relative to the walk's top. It costs O(depth),
// so callers ask for it only when they need it.
func (e *entry) rel() string {
	var b strings.Builder
	for _, f := range e.w.stack[1:e.depth] {
		b.WriteString(f.name)
		b.WriteByte('/')
	}
	b.WriteString(e.name)
	return b.String()
}

type frame struct {
	root  *os.Root
	name  string
	info  fs.FileInfo
	names []string // the batch of names not visited yet
	// dir, while open, is read for the next batch once names runs out: a
	// directory larger than one batch keeps it open (one more descriptor for
	// that level) instead of holding all its names.
	dir *os.File
}

// walkBatch bounds the names a walk holds per directory level. A directory
// that fits in one batch is visited in sorted order; a larger one in sorted
// batches of its on-disk order.
const walkBatch = 1024

// walker walks a tree depth first with an explicit stack instead of
// recursion, never following symlinks: a directory is entered only when
// Lstat says it is one and the directory then opened is that same inode (so a
// name swapped for a symlink between the two is detected, not followed).
type walker struct {
	// visit is called for every entry below the top, parents before
	// children. For a directory, returning true enters it. entry.deep is set
	// when entering would pass MaxDepth; the walker then refuses to enter.
	visit func(e *entry) (enter bool, err error)
	// leave, if set, is called after the children of every directory visit
	// asked to enter (also when it vanished before it could be entered).
	leave func(e *entry) error
	// skip, if set, names inodes never to visit (a copy's own destination).
	skip func(fs.FileInfo) bool

	stack []*frame
}

// readNames reads the first batch of names of r. When the directory has
// more, dir is left open to read them from (see nextBatch); otherwise it is
// nil.
func readNames(r *os.Root) (names []string, dir *os.File, err error) {
	d, err := r.Open(".")
	if err != nil {
		return nil, nil, err
	}
	names, more, err := readBatch(d)
	if err != nil || !more {
		return names, nil, errors.Join(err, d.Close())
	}
	return names, d, nil
}

// readBatch reads up to walkBatch names of d, sorted; more reports that d
// may have others.
func readBatch(d *os.File) (names []string, more bool, err error) {
	names, err = d.Readdirnames(walkBatch)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	slices.Sort(names)
	// Readdirnames(n) only stops short of n at the end of the directory.
	return names, err == nil && len(names) == walkBatch, err
}

// nextBatch refills f.names from f.dir, closing it at the end.
func (f *frame) nextBatch() error {
	names, more, err := readBatch(f.dir)
	f.names = names
	if err != nil || !more {
		err = errors.Join(err, f.dir.Close())
		f.dir = nil
	}
	return err
}

// closeRead closes a directory handle (an os.Root or a directory opened
// read-only) or a file opened read-only. Such a close has nothing to flush,
// so its error says nothing about any data; it is dropped here, in one
// place. Files that were written are closed with their error checked.
func closeRead(c io.Closer) { _ = c.Close() }

func (f *frame) close(keepRoot *os.Root) {
	if f.dir != nil {
		closeRead(f.dir) // read-only directory: nothing to lose
		f.dir = nil
	}
	if f.root != keepRoot {
		closeRead(f.root)
	}
}

// run walks below top (which the caller keeps open and closes).
func (w *walker) run(ctx context.Context, top *os.Root) error {
	names, dir, err := readNames(top)
	if err != nil {
		return err
	}
	w.stack = []*frame{{root: top, names: names, dir: dir}}
	defer func() {
		for _, f := range w.stack {
			f.close(top)
		}
		w.stack = nil
	}()
	for len(w.stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		depth := len(w.stack)
		f := w.stack[depth-1]
		if len(f.names) == 0 && f.dir != nil {
			if err := f.nextBatch(); err != nil {
				return err
			}
		}
		if len(f.names) == 0 {
			w.stack = w.stack[:depth-1]
			f.close(top)
			if depth == 1 {
				return nil
			}
			if w.leave != nil {
				parent := w.stack[depth-2]
				e := &entry{parent: parent.root, name: f.name, info: f.info, depth: depth - 1, w: w}
				if err := w.leave(e); err != nil {
					return err
				}
			}
			continue
		}
		name := f.names[0]
		f.names[0] = "" // let the string go
		f.names = f.names[1:]
		info, err := f.root.Lstat(name)
		if err != nil {
			if isNotExist(err) {
				continue // removed behind our back: nothing to visit
			}
			return err
		}
		if w.skip != nil && w.skip(info) {
			continue
		}
		e := &entry{parent: f.root, name: name, info: info, depth: depth, w: w}
		e.deep = info.IsDir() && depth > MaxDepth
		enter, err := w.visit(e)
		if err != nil {
			return err
		}
		if !enter || !info.IsDir() || e.deep {
			continue
		}
		sub, err := openDir(f.root, name)
		var (
			children []string
			subDir   *os.File
		)
		if err == nil {
			var st fs.FileInfo
			if st, err = sub.Stat("."); err == nil && !os.SameFile(st, info) {
				err = errChanged(apiPath(e.rel()))
			}
			if err == nil {
				children, subDir, err = readNames(sub)
			}
			if err != nil {
				closeRead(sub)
			}
		}
		if isNotExist(err) {
			// Gone since Lstat: still pair the visit with a leave.
			if w.leave != nil {
				if err := w.leave(e); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		w.stack = append(w.stack, &frame{root: sub, name: name, info: info, names: children, dir: subDir})
	}
	return nil
}

// openDir opens the directory rel in r as a Root. os.Root.OpenRoot opens its
// final component without O_DIRECTORY or O_NONBLOCK, so on a FIFO it blocks
// forever and on a device node it opens the device. Asking for "rel/." makes
// os.Root open rel as an intermediate directory (O_DIRECTORY|O_NOFOLLOW,
// failing fast with ENOTDIR on anything else) and then only "." inside it.
func openDir(r *os.Root, rel string) (*os.Root, error) {
	return r.OpenRoot(rel + "/.")
}
