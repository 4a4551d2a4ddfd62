package files

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"path"
	"strings"
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
// What goes in: directories, regular files and symlinks whose target,
// resolved lexically from the link's place, stays inside the archived
// directory (stored as symlink entries, never followed). Symlinks pointing
// anywhere else, FIFOs, sockets, devices and levels deeper than MaxDepth are
// left out: an archive must not carry a link that, once extracted, points
// into the downloader's own filesystem. A file that changes while being read
// is stored with the size it had when opened (cut short or zero-padded).
func (w *Workspace) Archive(ctx context.Context, p string, out io.Writer, format string) error {
	rel, err := Clean(p)
	if err != nil {
		return err
	}
	var aw archiveWriter
	switch format {
	case FormatZip, "":
		zw := zip.NewWriter(out)
		zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(w, flate.BestSpeed)
		})
		aw = &zipWriter{zw}
	case FormatTarGz:
		gz, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
		aw = &tarWriter{tw: tar.NewWriter(gz), gz: gz}
	default:
		return berth.Errorf(berth.Invalid, "format must be %q or %q", FormatZip, FormatTarGz)
	}
	top, err := openDir(w.root, rel)
	if err != nil {
		return fsErr(err, apiPath(rel))
	}
	defer top.Close()
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
			defer f.Close()
			return false, aw.file(name, e.info, f)
		case mode&fs.ModeSymlink != 0:
			target, err := e.parent.Readlink(e.name)
			if err != nil || !linkStaysInside(erel, target) {
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

// linkStaysInside reports whether a symlink at rel (relative to the archived
// directory) with the given target resolves, lexically, inside it.
func linkStaysInside(rel, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return false
	}
	r := path.Join(path.Dir(rel), target)
	return r != ".." && !strings.HasPrefix(r, "../")
}

type archiveWriter interface {
	dir(name string, mtime time.Time) error
	file(name string, info fs.FileInfo, r io.Reader) error
	symlink(name, target string, mtime time.Time) error
	close() error
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
	return t.gz.Close()
}

type zipWriter struct{ zw *zip.Writer }

func (z *zipWriter) dir(name string, mtime time.Time) error {
	h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: mtime}
	h.SetMode(fs.ModeDir | 0o755)
	_, err := z.zw.CreateHeader(h)
	return err
}

func (z *zipWriter) file(name string, info fs.FileInfo, r io.Reader) error {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: info.ModTime()}
	h.SetMode(info.Mode().Perm())
	fw, err := z.zw.CreateHeader(h)
	if err != nil {
		return err
	}
	return copyBuf(fw, exactly(r, info.Size()))
}

func (z *zipWriter) symlink(name, target string, mtime time.Time) error {
	// Info-ZIP's convention: a symlink is an entry with the link mode whose
	// contents are the target.
	h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: mtime}
	h.SetMode(fs.ModeSymlink | 0o777)
	fw, err := z.zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.WriteString(fw, target)
	return err
}

func (z *zipWriter) close() error { return z.zw.Close() }
