package docker

import (
	"context"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// freezeSettle bounds how long Pause and Unpause retry while the engine's
// idea of "paused" may still be catching up (see freeze).
const freezeSettle = 2 * time.Second

// freeze pauses (pause) or unpauses a container.
//
// dockerd 20.10 sets a container's paused flag twice: when the pause or
// unpause call returns, and again when containerd's TaskPaused/TaskResumed
// event is handled by its per-container event queue. An event still queued
// from the previous call flips the flag back for a moment, and a call made
// then is refused against the container's real state: "is already paused"
// (409) to a pause of a running container, "is not paused" or "cannot resume
// a running process" (500) to an unpause. Back to back, about one pair in a
// hundred hit it, and the API answered a resume with 500. The flag is right
// again once the queued event is handled, so a refusal is retried, with
// backoff and within freezeSettle, while the container is running or
// paused; a container in another state, or a refusal that outlasts the
// window, is a Conflict.
func (d *Docker) freeze(ctx context.Context, id string, pause bool) error {
	what := "unpause container " + id
	call := func(ctx context.Context, id string) error {
		_, err := d.cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
		return err
	}
	if pause {
		what = "pause container " + id
		call = func(ctx context.Context, id string) error {
			_, err := d.cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
			return err
		}
	}
	deadline := time.Now().Add(freezeSettle)
	backoff := 5 * time.Millisecond
	for {
		err := translate(call(ctx, id), what)
		if err == nil || berth.IsKind(err, berth.NotFound) || berth.IsKind(err, berth.Unavailable) {
			return err
		}
		info, ierr := d.Inspect(ctx, id)
		if ierr != nil {
			return ierr
		}
		if info.State != runtime.StateRunning && info.State != runtime.StatePaused {
			return berth.Wrap(berth.Conflict, err, what+": the container is "+string(info.State))
		}
		if time.Now().After(deadline) {
			return berth.Wrap(berth.Conflict, err, what+": the container is "+string(info.State))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return translate(ctx.Err(), what)
		case <-t.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}
