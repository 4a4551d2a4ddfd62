package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
)

// ImagePresent reports whether ref is available locally.
func (d *Docker) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := d.cli.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return false, translate(err, "inspect image "+ref)
}

// LoadImage loads a docker-archive tarball (what `docker save` writes and
// templates.Archive makes) with the engine's image load: no builder and no
// registry are involved.
func (d *Docker) LoadImage(ctx context.Context, r io.Reader, progress io.Writer) error {
	if r == nil {
		return berth.Errorf(berth.Invalid, "load image: no archive")
	}
	body, err := d.cli.ImageLoad(ctx, r, client.ImageLoadWithQuiet(false))
	if err != nil {
		return translateLoad(err)
	}
	// The load's outcome is in the stream, read to its end below; closing
	// a response body has nothing left to report.
	defer func() { _ = body.Close() }()
	return translateLoad(readMessages(body, progress))
}

// translateLoad classifies a load failure. The engine answers a tarball it
// cannot read (not a tar, cut short, no manifest, a missing layer) with an
// error, in the stream or as the response, that is the archive's fault:
// Invalid. Failures to reach the engine stay Unavailable.
func translateLoad(err error) error {
	if err == nil {
		return nil
	}
	var me *messageError
	if errors.As(err, &me) {
		return berth.Wrap(berth.Invalid, err, "load image: "+me.msg)
	}
	classified := translate(err, "load image")
	if k := berth.KindOf(classified); k == berth.Unavailable || k == berth.NotFound || k == berth.Conflict || k == berth.Invalid {
		return classified
	}
	if cerrdefs.IsInternal(err) || cerrdefs.IsUnknown(err) || cerrdefs.IsInvalidArgument(err) {
		// The daemon's 500 for a bad archive ("unexpected EOF", "invalid
		// tar header", "open manifest.json: no such file").
		return berth.Wrap(berth.Invalid, err, "load image: "+engineMessage(err))
	}
	return classified
}

// PullImage pulls ref from its registry.
func (d *Docker) PullImage(ctx context.Context, ref string, progress io.Writer) error {
	body, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return translatePull(err, ref)
	}
	// As for a load: the outcome is in the stream.
	defer func() { _ = body.Close() }()
	return translatePull(readMessages(body, progress), ref)
}

// translatePull classifies a pull failure. The engine reports most of them
// inside the progress stream, as text only; the phrases below are the
// registry's answers for a missing repository or tag (Docker's own, and the
// OCI distribution spec's codes). Anything else is taken for a registry that
// cannot be reached, which is by far the common case.
func translatePull(err error, ref string) error {
	if err == nil {
		return nil
	}
	var me *messageError
	if !errors.As(err, &me) {
		if cerrdefs.IsNotFound(err) {
			return berth.Wrap(berth.NotFound, err, "pull image "+ref+": not found")
		}
		if classified := translate(err, "pull image "+ref); berth.KindOf(classified) != berth.Internal {
			return classified
		}
		return berth.Wrap(berth.Unavailable, err, "pull image "+ref+": registry unreachable")
	}
	msg := strings.ToLower(me.msg)
	for _, s := range []string{"manifest unknown", "not found", "repository does not exist", "name_unknown"} {
		if strings.Contains(msg, s) {
			return berth.Wrap(berth.NotFound, err, "pull image "+ref+": not found")
		}
	}
	return berth.Wrap(berth.Unavailable, err, "pull image "+ref+": registry unreachable")
}

// messageError is a failure the engine reported inside a progress stream.
type messageError struct{ msg string }

func (e *messageError) Error() string { return e.msg }

// message is one line of the engine's JSON progress stream.
type message struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// readMessages copies a progress stream to w as plain lines. Plain output
// ("stream": a load's "Loaded image: ...") is passed through; status (a
// pull's, a load's "Loading layer") is written once per layer and status
// change, without the progress bars, so a log of it stays readable.
func readMessages(r io.Reader, w io.Writer) error {
	w = orDiscard(w)
	dec := json.NewDecoder(r)
	last := map[string]string{}
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return &messageError{msg: m.ErrorDetail.Message}
		case m.Error != "":
			return &messageError{msg: m.Error}
		case m.Stream != "":
			if _, err := io.WriteString(w, m.Stream); err != nil {
				return err
			}
		case m.Status != "":
			if last[m.ID] == m.Status {
				continue
			}
			last[m.ID] = m.Status
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + m.Status
			}
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
	}
}

// RemoveImage deletes a local image.
func (d *Docker) RemoveImage(ctx context.Context, ref string) error {
	_, err := d.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	return translate(err, "remove image "+ref)
}

// ImageID returns the id of a local image.
func (d *Docker) ImageID(ctx context.Context, ref string) (string, error) {
	img, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", translate(err, "inspect image "+ref)
	}
	return img.ID, nil
}
