package files

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/berth-dev/berth"
)

const syscallNonblock = syscall.O_NONBLOCK

// File is an open regular file for download, ready for http.ServeContent:
// it is an io.ReadSeeker with a name and a modification time.
type File struct {
	f       *os.File
	Name    string // API form of the base name
	ModTime time.Time
	Size    int64
	// ETag is a strong validator from the open file's inode, size and
	// mtime: a write through this package always makes a new inode, so any
	// change gives a new ETag. Quoted, ready for the header.
	ETag     string
	MimeType string
}

func (f *File) Read(p []byte) (int, error)                   { return f.f.Read(p) }
func (f *File) ReadAt(p []byte, off int64) (int, error)      { return f.f.ReadAt(p, off) }
func (f *File) Seek(offset int64, whence int) (int64, error) { return f.f.Seek(offset, whence) }
func (f *File) Close() error                                 { return f.f.Close() }

// SyscallConn exposes the descriptor of the (already checked) regular file,
// so that io.Copy into a TCP connection can use sendfile(2).
func (f *File) SyscallConn() (syscall.RawConn, error) { return f.f.SyscallConn() }

// Open opens the regular file at p for reading. A symlink is followed only
// while it stays inside the workspace. Directories, FIFOs, sockets and devices
// are Invalid (a directory is downloaded with Archive instead); a FIFO can
// never block the call.
func (w *Workspace) Open(ctx context.Context, p string) (*File, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	_, base := splitRel(rel)
	// Check the type before opening, so that no device or FIFO is opened at
	// all in the normal case; openRegular re-checks the descriptor for the
	// case where the name is swapped in between.
	info, err := w.root.Stat(rel)
	if err != nil {
		return nil, fsErr(err, apiPath(rel))
	}
	if !info.Mode().IsRegular() {
		if info.IsDir() {
			return nil, berth.Errorf(berth.Invalid, "%s: is a directory", apiPath(rel))
		}
		return nil, berth.Errorf(berth.Invalid, "%s: not a regular file", apiPath(rel))
	}
	f, err := openRegular(w.root, rel, info)
	if err != nil {
		return nil, fsErr(err, apiPath(rel))
	}
	st, err := f.Stat()
	if err != nil {
		closeRead(f)
		return nil, fsErr(err, apiPath(rel))
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	return &File{
		f:        f,
		Name:     EncodeName(base),
		ModTime:  st.ModTime().UTC(),
		Size:     st.Size(),
		ETag:     fmt.Sprintf(`"%x-%x-%x"`, ino, st.Size(), st.ModTime().UnixNano()),
		MimeType: mimeType(base, st.Mode()),
	}, nil
}
