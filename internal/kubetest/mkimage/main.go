// Command mkimage assembles a one-layer container image from files on this
// machine and writes it as an image archive that `ctr images import` loads.
// .ci/kube-up uses it for the images of the test cluster (the Pod sandbox
// and a busybox image for tests): there is no registry to pull them from.
//
//	mkimage -o pause.tar -tag berth.local/kube-pause:1 -entrypoint /pause /pause=./pause
//	mkimage -o bb.tar -tag berth.local/kube-busybox:1 -cmd sh /bin/busybox=/bin/busybox /bin/sh-\>busybox
//
// Each argument is DEST=SRC (a regular file copied with its mode) or
// DEST->TARGET (a symbolic link); parent directories are made as needed.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := fs.String("o", "", "archive to write")
	tag := fs.String("tag", "", "image reference, e.g. berth.local/kube-pause:1")
	var entrypoint, cmd, env list
	fs.Var(&entrypoint, "entrypoint", "entrypoint word (repeat for more)")
	fs.Var(&cmd, "cmd", "command word (repeat for more)")
	fs.Var(&env, "env", "KEY=VALUE (repeat for more)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *tag == "" || fs.NArg() == 0 {
		return errors.New("usage: mkimage -o FILE -tag REF [-entrypoint W]... [-cmd W]... [-env K=V]... DEST=SRC|DEST->TARGET...")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", *tag, err)
	}
	layerTar, err := layer(fs.Args())
	if err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	// A fixed date keeps the image's digest the same from one build to the next.
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Entrypoint = entrypoint
	cf.Config.Cmd = cmd
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return nil
}

// layer returns the tar stream of the image's one layer.
func layer(specs []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			d := parents[i]
			dirs[d] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		return nil
	}
	for _, s := range specs {
		if dest, target, ok := strings.Cut(s, "->"); ok {
			dest = path.Clean("/" + dest)
			if err := mkdirs(dest); err != nil {
				return nil, err
			}
			hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(dest, "/"), Linkname: target, Mode: 0o777, ModTime: epoch}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		dest, src, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%q is neither DEST=SRC nor DEST->TARGET", s)
		}
		dest = path.Clean("/" + dest)
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if err := mkdirs(dest); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dest, "/"), Mode: int64(st.Mode().Perm()), Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
