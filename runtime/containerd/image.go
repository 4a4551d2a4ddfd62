package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/defaults"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/berth-dev/berth"
)

// ImagePresent reports whether ref is available locally.
func (c *Containerd) ImagePresent(ctx context.Context, ref string) (bool, error) {
	name, err := normalize(ref)
	if err != nil {
		return false, err
	}
	_, err = c.cli.ImageService().Get(c.ctx(ctx), name)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, translate(err, "inspect image "+ref)
}

// ImageID is the digest of the image's manifest (or index): what a rebuild
// changes and what RemoveImage takes.
func (c *Containerd) ImageID(ctx context.Context, ref string) (string, error) {
	name, err := normalize(ref)
	if err != nil {
		return "", err
	}
	img, err := c.cli.ImageService().Get(c.ctx(ctx), name)
	if err != nil {
		return "", translate(err, "inspect image "+ref)
	}
	return img.Target.Digest.String(), nil
}

// LoadImage imports an image archive, as `docker save` or an OCI layout tar
// makes it, and unpacks every image in it into the default snapshotter, so
// that containers can be made from it at once.
func (c *Containerd) LoadImage(ctx context.Context, r io.Reader, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	ctx = c.ctx(ctx)
	imgs, err := c.cli.Import(ctx, r, containerd.WithAllPlatforms(false))
	if err != nil {
		if berth.KindOf(translate(err, "")) == berth.Unavailable {
			return translate(err, "load image")
		}
		return berth.Wrap(berth.Invalid, err, "load image: not an image archive containerd can import")
	}
	if len(imgs) == 0 {
		return berth.Errorf(berth.Invalid, "load image: the archive names no image")
	}
	for _, img := range imgs {
		image := containerd.NewImage(c.cli, img)
		if err := image.Unpack(ctx, defaults.DefaultSnapshotter); err != nil {
			return translate(err, "unpack image "+img.Name)
		}
		// Progress is informational: a reader that went away must not
		// fail the load.
		_, _ = fmt.Fprintf(progress, "loaded %s (%s)\n", img.Name, img.Target.Digest)
	}
	return nil
}

// PullImage pulls ref from its registry and unpacks it.
func (c *Containerd) PullImage(ctx context.Context, ref string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	name, err := normalize(ref)
	if err != nil {
		return err
	}
	img, err := c.cli.Pull(c.ctx(ctx), name, containerd.WithPullUnpack)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return berth.Wrap(berth.NotFound, err, "pull image "+ref+": not found")
		}
		// Anything else is taken for a registry that cannot be reached,
		// the common case, as the Docker backend does.
		return berth.Wrap(berth.Unavailable, err, "pull image "+ref+": registry unreachable")
	}
	_, _ = fmt.Fprintf(progress, "pulled %s (%s)\n", img.Name(), img.Target().Digest)
	return nil
}

// RemoveImage deletes an image by reference, or every image whose id
// (ImageID) is ref. Containers still made from it make it a Conflict.
func (c *Containerd) RemoveImage(ctx context.Context, ref string) error {
	ctx = c.ctx(ctx)
	what := "remove image " + ref
	is := c.cli.ImageService()
	var names []string
	if strings.HasPrefix(ref, "sha256:") {
		list, err := is.List(ctx, "target.digest=="+ref)
		if err != nil {
			return translate(err, what)
		}
		for _, img := range list {
			names = append(names, img.Name)
		}
	} else {
		name, err := normalize(ref)
		if err != nil {
			return err
		}
		if _, err := is.Get(ctx, name); err != nil {
			return translate(err, what)
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return berth.Errorf(berth.NotFound, "%s: not found", what)
	}
	for _, name := range names {
		users, err := c.cli.ContainerService().List(ctx, fmt.Sprintf("image==%q", name))
		if err != nil {
			return translate(err, what)
		}
		if len(users) > 0 {
			return berth.Errorf(berth.Conflict, "%s: in use by container %s", what, users[0].ID)
		}
	}
	var errs []error
	for _, name := range names {
		if err := is.Delete(ctx, name, images.SynchronousDelete()); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return translate(errors.Join(errs...), what)
}
