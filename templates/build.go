package templates

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// LabelTemplate is set on every image built from a template, to its name.
const LabelTemplate = "berth.template"

// rootfs is a generated root filesystem as a tar archive of known size.
type rootfs struct {
	r    io.Reader
	size int64
}

// build makes t's build context (the template directory, plus rootfs.tar
// when the source generates one) and has rt build it. The context is
// streamed: nothing but the debootstrap tree and its tar touch the disk.
func build(ctx context.Context, rt runtime.Runtime, t Template, progress io.Writer) error {
	var fsys *rootfs
	switch t.Build.Source {
	case "busybox":
		data, err := busyboxRootfs(ctx, BusyboxPath)
		if err != nil {
			return err
		}
		fsys = &rootfs{r: bytes.NewReader(data), size: int64(len(data))}
	case "debootstrap":
		f, cleanup, err := debootstrapRootfs(ctx, t.Build, progress)
		if err != nil {
			return err
		}
		defer cleanup()
		st, err := f.Stat()
		if err != nil {
			return berth.Wrap(berth.Internal, err, "debootstrap: rootfs.tar")
		}
		fsys = &rootfs{r: f, size: st.Size()}
	}

	oldID, _ := rt.ImageID(ctx, t.Image)
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := writeContext(pw, t.dir, fsys)
		pw.CloseWithError(err)
		written <- err
	}()
	err := rt.BuildImage(ctx, runtime.BuildSpec{
		Tag:     t.Image,
		Context: pr,
		Labels:  map[string]string{LabelTemplate: t.Name},
	}, progress)
	// Unblock the writer if the engine stopped reading early, and wait for
	// it: the rootfs file must not be removed under it.
	pr.CloseWithError(errors.New("build ended"))
	if werr := <-written; werr != nil && err != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return berth.Wrap(berth.Internal, werr, "template "+t.Name+": build context")
	}
	if err != nil {
		return err
	}
	// The previous build of this tag is now untagged: remove exactly that
	// image (not a label match: images built FROM a template inherit its
	// labels), unless a sandbox still runs on it. This is best effort.
	if newID, ierr := rt.ImageID(ctx, t.Image); ierr == nil && oldID != "" && oldID != newID {
		if rt.RemoveImage(ctx, oldID) == nil {
			// Progress is informational: a reader that went away must
			// not fail a build that worked.
			_, _ = fmt.Fprintf(progress, "removed the previous image of template %s\n", t.Name)
		}
	}
	return nil
}

// writeContext writes a tar build context: every file of dir (but
// template.yaml) and, if fsys is not nil, rootfs.tar.
func writeContext(w io.Writer, dir fs.FS, fsys *rootfs) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	err := fs.WalkDir(dir, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || name == "." || name == "template.yaml" {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, ModTime: now, Typeflag: tar.TypeReg}
		if d.IsDir() {
			hdr.Typeflag, hdr.Mode, hdr.Name = tar.TypeDir, 0o755, name+"/"
			return tw.WriteHeader(hdr)
		}
		data, err := fs.ReadFile(dir, name)
		if err != nil {
			return err
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if fsys != nil {
		hdr := &tar.Header{Name: "rootfs.tar", Mode: 0o644, ModTime: now, Size: fsys.size, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, fsys.r); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Temporary files of a build go under this directory ("" = os.TempDir()).
// The debootstrap tree needs a few hundred MB and a filesystem that allows
// device nodes and ownership, so not a tmpfs mounted nodev.
var TempDir = ""

func tempDir(pattern string) (string, error) {
	return os.MkdirTemp(TempDir, pattern)
}
