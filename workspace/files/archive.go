package files

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth"
)

// Archive formats.
const (
	FormatZip   = "zip"
	FormatTarGz = "tar.gz"
)

// maxArchiveName is the longest entry name written (zip's format limit);
// longer paths, which only absurdly deep trees produce, are skipped.
const maxArchiveName = 65535

// Archive streams the directory at p to out as a zip or gzipped tar, entry by
// entry through small buffers, never holding a whole file. Entry names are the
// raw on-disk paths below the directory's name (below nothing for the root).
//
// Its cost is linear in the bytes and entries archived, and its memory is
// bounded whatever the tree: one compressor per archive, the walk's names
// one batch per level (see walkBatch), and the zip central directory spilled
// to an unnamed temporary file (see zipWriter).
//
// What goes in: directories, regular files and symlinks whose final target
// is inside the archived directory (see linkTarget), stored as symlink
// entries whose target is rewritten to the resolved path. Other symlinks
// (escaping, absolute, dangling through "..", looping), FIFOs, sockets,
// devices and levels deeper than MaxDepth are left out: an archive must not
// carry a link that, once extracted, points into the downloader's own
// filesystem. A file that changes while being read is stored with the size it
// had when opened (cut short or zero-padded).
func (w *Workspace) Archive(ctx context.Context, p string, out io.Writer, format string) (err error) {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	if format != FormatZip && format != "" && format != FormatTarGz {
		return berth.Errorf(berth.Invalid, "format must be %q or %q", FormatZip, FormatTarGz)
	}
	top, err := openDir(w.root, rel)
	if err != nil {
		return fsErr(err, apiPath(rel))
	}
	defer closeRead(top) // read-only directory: nothing to lose
	var aw archiveWriter
	if format == FormatTarGz {
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(out)
		aw = &tarWriter{tw: tar.NewWriter(gz), gz: gz}
	} else {
		// The central directory spills next to the workspaces: the data
		// disk, not a /tmp that may be memory.
		aw = newZipWriter(out, filepath.Dir(w.dir))
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, aw.abort())
		}
	}()
	prefix := ""
	if rel != "." {
		_, base := splitRel(rel)
		prefix = base + "/"
		if err := aw.dir(prefix, time.Time{}); err != nil {
			return err
		}
	}
	wk := &walker{visit: func(e *entry) (bool, error) {
		mode := e.info.Mode()
		if e.deep {
			return false, nil
		}
		erel := e.rel()
		name := prefix + erel
		if len(name)+1 > maxArchiveName {
			return false, nil
		}
		switch {
		case mode.IsDir():
			return true, aw.dir(name+"/", e.info.ModTime())
		case mode.IsRegular():
			f, err := openRegular(e.parent, e.name, e.info)
			if err != nil {
				return false, nil // vanished or swapped: leave it out
			}
			defer closeRead(f) // read-only: nothing to lose
			return false, aw.file(name, e.info, f)
		case mode&fs.ModeSymlink != 0:
			target, ok := linkTarget(top, erel)
			if !ok {
				return false, nil
			}
			return false, aw.symlink(name, target, e.info.ModTime())
		}
		return false, nil
	}}
	if err := wk.run(ctx, top); err != nil {
		return fsErr(err, apiPath(rel))
	}
	return aw.close()
}

// maxLinkHops bounds the symlinks followed to resolve one link (Linux's
// MAXSYMLINKS): a longer chain is taken for a loop.
const maxLinkHops = 40

// linkTarget resolves the symlink at rel (relative to the archived directory
// top) hop by hop, as the kernel would after extraction: every link met on
// the way is read and followed, "." and ".." apply to the directory reached
// so far, not to the text. It returns the target rewritten as the shortest
// relative path from the link's directory to where it leads, and false when
// the link must be left out: its resolution leaves top (through "..", an
// absolute target anywhere on the way, or a chain of links), loops, or is
// dangling with ".." after the missing part.
//
// The rewritten form is what makes the archive safe to extract whatever
// happens to the tree during the walk: it is k ".." (at most the depth of
// the link's directory, whose parents are real directories of the archive)
// followed by plain names, so resolving it in the extraction directory only
// ever descends from a place inside it, and a name that turns out to be a
// link there is itself an entry of this form. A raced tree can only make a
// kept link dangle, never point outside.
func linkTarget(top *os.Root, rel string) (string, bool) {
	target, err := top.Readlink(rel)
	if err != nil || target == "" || strings.HasPrefix(target, "/") {
		return "", false
	}
	var from []string // the link's directory
	if d := path.Dir(rel); d != "." {
		from = strings.Split(d, "/")
	}
	cur := slices.Clone(from) // where resolution stands, real directories only
	todo := splitTarget(target, nil)
	hops, missing := 0, false
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch {
		case c == "." || c == "":
			continue
		case c == "..":
			if missing || len(cur) == 0 {
				// Above top, or the parent of something that is not there
				// (which the kernel would refuse; no guessing what it
				// might become).
				return "", false
			}
			cur = cur[:len(cur)-1]
			continue
		case missing:
			cur = append(cur, c)
			continue
		}
		next := append(cur, c)
		info, err := top.Lstat(strings.Join(next, "/"))
		switch {
		case err != nil:
			// Not there (or not a directory on the way): the link
			// dangles; keep it only if the rest goes down.
			missing = true
			cur = next
		case info.Mode()&fs.ModeSymlink != 0:
			hops++
			if hops > maxLinkHops {
				return "", false
			}
			t, err := top.Readlink(strings.Join(next, "/"))
			if err != nil || t == "" || strings.HasPrefix(t, "/") {
				return "", false
			}
			todo = splitTarget(t, todo) // relative to cur, the link's directory
		case !info.IsDir():
			cur = next
			missing = hasMore(todo) // a file with more after it: dangles
		default:
			cur = next
		}
	}
	return relPath(from, cur), true
}

// splitTarget returns the components of target followed by rest.
func splitTarget(target string, rest []string) []string {
	parts := strings.Split(target, "/")
	return append(parts, rest...)
}

func hasMore(todo []string) bool {
	for _, c := range todo {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// relPath is the relative path from directory from to to: ".." for each
// component of from below their common prefix, then the rest of to.
func relPath(from, to []string) string {
	k := 0
	for k < len(from) && k < len(to) && from[k] == to[k] {
		k++
	}
	parts := make([]string, 0, len(from)-k+len(to)-k)
	for range from[k:] {
		parts = append(parts, "..")
	}
	parts = append(parts, to[k:]...)
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}

// gzipPool holds BestSpeed gzip writers between archive jobs.
var gzipPool = sync.Pool{New: func() any {
	gz, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return gz
}}

type archiveWriter interface {
	dir(name string, mtime time.Time) error
	file(name string, info fs.FileInfo, r io.Reader) error
	symlink(name, target string, mtime time.Time) error
	// close finishes the archive (the underlying writer stays open).
	close() error
	// abort releases what an unfinished archive holds.
	abort() error
}

// exactly yields n bytes of r: cut short if r grew, zero-padded if it shrank,
// so the size already written in a header stays true.
func exactly(r io.Reader, n int64) io.Reader {
	return io.LimitReader(io.MultiReader(io.LimitReader(r, n), zeros{}), n)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func copyBuf(dst io.Writer, src io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(dst, src, *bp)
	return err
}

type tarWriter struct {
	tw *tar.Writer
	gz *gzip.Writer
}

func (t *tarWriter) dir(name string, mtime time.Time) error {
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime})
}

func (t *tarWriter) file(name string, info fs.FileInfo, r io.Reader) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size(), ModTime: info.ModTime()}
	if err := t.tw.WriteHeader(h); err != nil {
		return err
	}
	return copyBuf(t.tw, exactly(r, info.Size()))
}

func (t *tarWriter) symlink(name, target string, mtime time.Time) error {
	return t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime})
}

func (t *tarWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return err
	}
	err := t.gz.Close()
	t.release()
	return err
}

func (t *tarWriter) abort() error {
	t.release()
	return nil
}

// release returns the gzip writer to the pool, detached from the output.
func (t *tarWriter) release() {
	if t.gz != nil {
		t.gz.Reset(io.Discard)
		gzipPool.Put(t.gz)
		t.gz = nil
	}
}
