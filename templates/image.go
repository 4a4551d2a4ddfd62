package templates

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth"
)

// Epoch is the time every built image says it was created, and the time of
// every file of a generated root filesystem (busybox's): with nothing in
// them that depends on when they were built, two builds of one template
// from the same inputs are the same image, down to the digest.
var Epoch = time.Unix(0, 0).UTC()

// Image assembles t's image: its root filesystem, made now from the
// recipe's source, as one layer, and the recipe's configuration. Progress
// lines go to progress (nil discards). The image reads the root filesystem
// lazily, so it is valid until release is called; release removes whatever
// the build left on disk and may be called more than once.
func Image(ctx context.Context, t Template, progress io.Writer) (v1.Image, func(), error) {
	if progress == nil {
		progress = io.Discard
	}
	if t.Build == nil {
		return nil, nil, berth.Errorf(berth.Invalid, "template %s has no build section: its image is pulled", t.Name)
	}
	// Progress is informational: a reader that went away must not fail
	// the build (the build's context ends with it).
	_, _ = fmt.Fprintf(progress, "making the root filesystem (%s)\n", t.Build.Source)
	var (
		open    tarball.Opener
		release = func() {}
	)
	switch t.Build.Source {
	case "busybox":
		data, err := busyboxRootfs(ctx, BusyboxPath, t.Build.dirs())
		if err != nil {
			return nil, nil, err
		}
		open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	case "debootstrap":
		file, cleanup, err := debootstrapRootfs(ctx, t.Build, progress)
		if err != nil {
			return nil, nil, err
		}
		release = sync.OnceFunc(cleanup)
		open = func() (io.ReadCloser, error) { return os.Open(file) }
	default:
		return nil, nil, berth.Errorf(berth.Invalid, "template %s: unknown build source %q", t.Name, t.Build.Source)
	}

	_, _ = fmt.Fprintln(progress, "assembling the image") // informational, as above
	layer := rawLayer(open)
	img, err := assemble(t, layer)
	if err == nil {
		err = describe(img, layer, progress)
	}
	if err != nil {
		release()
		return nil, nil, berth.Wrap(berth.Internal, err, "template "+t.Name+": assemble the image")
	}
	return img, release, nil
}

// assemble makes the image of one layer and t's recipe.
func assemble(t Template, layer v1.Layer) (v1.Image, error) {
	b := t.Build
	labels := map[string]string{}
	for k, v := range b.Labels {
		labels[k] = v
	}
	labels[LabelTemplate] = t.Name
	env := make([]string, 0, len(t.Env))
	for k, v := range t.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env) // a stable order: the config, and so the digest, is reproducible
	cfg := &v1.ConfigFile{
		Architecture: goruntime.GOARCH, // the host's busybox or debootstrap's default
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		Config: v1.Config{
			Env:        env,
			Entrypoint: b.Entrypoint,
			Cmd:        b.Cmd,
			WorkingDir: b.WorkDir,
			User:       b.User,
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: Epoch},
			CreatedBy: "berth template " + t.Name + ": root filesystem from " + b.Source,
		},
	})
}

// describe says what was assembled: the layer's size and the image's id
// (its config's digest, which is what `docker images` shows). Computing
// them reads the root filesystem once, so a broken one fails here, before
// anything is sent to the engine.
func describe(img v1.Image, layer v1.Layer, progress io.Writer) error {
	size, err := layer.Size()
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(progress, "image %s: 1 layer, %s\n", id, humanize.Bytes(uint64(size))) // informational
	return nil
}

// Archive writes t's image (see Image) as a docker-archive tarball, tagged
// t.Image, which both `docker load` and containerd's import take. The
// rootfs is made before Archive returns; the tarball is then written as the
// reader reads. Close releases everything and reports a failure to write.
func Archive(ctx context.Context, t Template, progress io.Writer) (io.ReadCloser, error) {
	tag, err := name.NewTag(t.Image)
	if err != nil {
		return nil, berth.Wrap(berth.Invalid, err, "template "+t.Name+": image reference "+t.Image)
	}
	img, release, err := Image(ctx, t, progress)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	a := &archive{pr: pr, release: release, done: make(chan error, 1)}
	go func() {
		err := tarball.Write(tag, img, pw)
		pw.CloseWithError(err)
		a.done <- err
	}()
	return a, nil
}

// errArchiveClosed stops the writer of an archive whose reader is closed.
var errArchiveClosed = errors.New("image archive closed")

type archive struct {
	pr      *io.PipeReader
	release func()
	done    chan error
	once    sync.Once
	err     error
}

func (a *archive) Read(p []byte) (int, error) { return a.pr.Read(p) }

// Close stops the writer if the reader stopped early, waits for it (the
// root filesystem must not be removed under it) and releases the build.
func (a *archive) Close() error {
	a.once.Do(func() {
		_ = a.pr.CloseWithError(errArchiveClosed) // always nil
		if err := <-a.done; err != nil && !errors.Is(err, errArchiveClosed) {
			a.err = berth.Wrap(berth.Internal, err, "write the image archive")
		}
		a.release()
	})
	return a.err
}

// rawLayer is an uncompressed layer read from open. The docker-archive
// tarball then holds the tar as it is ("<digest>.tar"), which Docker and
// containerd both take: nothing is compressed only to be decompressed a
// moment later on the same machine (see BenchmarkTemplateLoad for what
// gzip would cost). Its digest and diff id are the same, computed once.
func rawLayer(open tarball.Opener) v1.Layer { return &uncompressed{open: open} }

type uncompressed struct {
	open tarball.Opener
	once sync.Once
	hash v1.Hash
	size int64
	err  error
}

func (l *uncompressed) sum() (v1.Hash, int64, error) {
	l.once.Do(func() {
		var r io.ReadCloser
		if r, l.err = l.open(); l.err != nil {
			return
		}
		defer func() { _ = r.Close() }() // read-only: nothing to flush
		l.hash, l.size, l.err = v1.SHA256(r)
	})
	return l.hash, l.size, l.err
}

func (l *uncompressed) Digest() (v1.Hash, error) { h, _, err := l.sum(); return h, err }
func (l *uncompressed) DiffID() (v1.Hash, error) { h, _, err := l.sum(); return h, err }
func (l *uncompressed) Size() (int64, error)     { _, n, err := l.sum(); return n, err }

func (l *uncompressed) Compressed() (io.ReadCloser, error)   { return l.open() }
func (l *uncompressed) Uncompressed() (io.ReadCloser, error) { return l.open() }

func (l *uncompressed) MediaType() (types.MediaType, error) {
	return types.DockerUncompressedLayer, nil
}

// dirs are the directories the image's configuration names, which must
// exist in its root filesystem (a Dockerfile's WORKDIR made them): the
// working directory and its parents, outermost first.
func (b *Build) dirs() []string {
	if b.WorkDir == "" {
		return nil
	}
	var out []string
	for p := path.Clean(b.WorkDir); p != "/" && p != "."; p = path.Dir(p) {
		out = append([]string{strings.TrimPrefix(p, "/")}, out...)
	}
	return out
}
