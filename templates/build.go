package templates

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// LabelTemplate is set on every image built from a template, to its name.
const LabelTemplate = "berth.template"

// build assembles t's image and loads it into rt. The archive is streamed
// to the engine as it is written: nothing but the debootstrap tree and its
// tar touch the disk.
func build(ctx context.Context, rt runtime.Runtime, t Template, progress io.Writer) error {
	oldID, _ := rt.ImageID(ctx, t.Image)
	arc, err := Archive(ctx, t, progress)
	if err != nil {
		return err
	}
	// Progress is informational: a reader that went away must not fail a
	// build (the build's context ends with it).
	_, _ = fmt.Fprintf(progress, "loading %s into the engine\n", t.Image)
	err = rt.LoadImage(ctx, arc, progress)
	// A failure to write the archive explains a failed load better than
	// the engine's complaint about a cut stream.
	if werr := arc.Close(); werr != nil {
		return berth.Wrap(berth.Internal, werr, "template "+t.Name)
	}
	if err != nil {
		return err
	}
	// The previous build of this tag is now untagged: remove exactly that
	// image (not a label match: images built FROM a template inherit its
	// labels), unless a sandbox still runs on it. This is best effort.
	if newID, ierr := rt.ImageID(ctx, t.Image); ierr == nil && oldID != "" && oldID != newID {
		if rt.RemoveImage(ctx, oldID) == nil {
			_, _ = fmt.Fprintf(progress, "removed the previous image of template %s\n", t.Name) // informational, as above
		}
	}
	return nil
}

// Temporary files of a build go under this directory ("" = os.TempDir()).
// The debootstrap tree needs a few hundred MB and a filesystem that allows
// device nodes and ownership, so not a tmpfs mounted nodev.
var TempDir = ""

func tempDir(pattern string) (string, error) {
	return os.MkdirTemp(TempDir, pattern)
}
