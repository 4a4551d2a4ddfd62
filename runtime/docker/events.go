package docker

import (
	"context"
	"errors"
	"io"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

var _ runtime.Watcher = (*Docker)(nil)

// watchedActions are the container events that can change what berth
// records: exec's and attach's events, the most frequent by far, are
// filtered out by the engine.
var watchedActions = []string{
	runtime.EventStart, runtime.EventDie, runtime.EventStop, runtime.EventPause,
	runtime.EventUnpause, runtime.EventDestroy, runtime.EventOOM,
}

// Watch follows the engine's event stream (GET /events) for the containers
// carrying labels.
func (d *Docker) Watch(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	f := client.Filters{}
	f.Add("type", "container")
	f.Add("label", runtime.ManagedLabel)
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	f.Add("event", watchedActions...)
	res := d.cli.Events(ctx, client.EventsListOptions{Filters: f})
	out := make(chan runtime.Event)
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-res.Messages:
				// The actor's attributes are the container's labels plus
				// name, image and (for die) exitCode.
				e := runtime.Event{ContainerID: m.Actor.ID, Action: string(m.Action), Labels: m.Actor.Attributes}
				select {
				case out <- e:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-res.Err:
				switch {
				case ctx.Err() != nil:
					err = ctx.Err()
				case err == nil || errors.Is(err, io.EOF):
					err = berth.Errorf(berth.Unavailable, "docker: the engine closed its event stream")
				default:
					err = translate(err, "follow events")
				}
				errc <- err
				return
			}
		}
	}()
	return out, errc
}
