package containerd

import (
	"context"
	"fmt"
	"strings"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

var _ runtime.Watcher = (*Containerd)(nil)

// watchedTopics are the containerd events that can change what berth
// records, with the action each is reported as. Exec processes' events
// (/tasks/exec-*) are left out: they are the most frequent by far and
// change no container's state. A task's exit and delete carry the id of
// the process; only the container's own (init) process counts.
var watchedTopics = map[string]string{
	"/tasks/start":       runtime.EventStart,
	"/tasks/exit":        runtime.EventDie,
	"/tasks/delete":      runtime.EventStop,
	"/tasks/paused":      runtime.EventPause,
	"/tasks/resumed":     runtime.EventUnpause,
	"/tasks/oom":         runtime.EventOOM,
	"/containers/delete": runtime.EventDestroy,
}

// Watch follows containerd's event service for the containers of this
// namespace carrying labels. containerd's events name a container by id
// only, so the labels come from the container itself; a container's delete
// event comes after its labels are gone, so Watch remembers the labels of
// the containers it has seen (all of them, listed when the stream opens).
func (c *Containerd) Watch(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	out := make(chan runtime.Event)
	errc := make(chan error, 1)
	filters := make([]string, 0, len(watchedTopics))
	for topic := range watchedTopics {
		filters = append(filters, fmt.Sprintf("namespace==%q,topic==%q", c.namespace, topic))
	}
	// Subscribe before listing, so that nothing that happens between the
	// two is missed; the list fills in the labels of what already exists.
	sctx, cancel := context.WithCancel(c.ctx(ctx))
	evs, errs := c.cli.Subscribe(sctx, filters...)
	list, err := c.List(ctx, labels)
	if err != nil {
		cancel()
		errc <- err
		return out, errc
	}
	known := make(map[string]map[string]string, len(list))
	for _, ct := range list {
		known[ct.ID] = ct.Labels
	}
	go func() {
		defer cancel()
		for {
			select {
			case env := <-evs:
				e, ok := c.event(sctx, env.Topic, env.Event, known)
				if !ok || !matches(e.Labels, labels) {
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-errs:
				switch {
				case ctx.Err() != nil:
					err = ctx.Err()
				case err == nil:
					err = berth.Errorf(berth.Unavailable, "containerd: the engine closed its event stream")
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

// event turns one of containerd's events into a runtime.Event with the
// container's labels; ok is false for an event that concerns no
// container's state (an exec's exit) or a container it cannot describe.
func (c *Containerd) event(ctx context.Context, topic string, payload typeurl.Any, known map[string]map[string]string) (runtime.Event, bool) {
	action, ok := watchedTopics[topic]
	if !ok || payload == nil {
		return runtime.Event{}, false
	}
	v, err := typeurl.UnmarshalAny(payload)
	if err != nil {
		return runtime.Event{}, false
	}
	var id string
	switch ev := v.(type) {
	case *apievents.TaskStart:
		id = ev.ContainerID
	case *apievents.TaskExit:
		if ev.ID != ev.ContainerID {
			return runtime.Event{}, false // an exec's process
		}
		id = ev.ContainerID
	case *apievents.TaskDelete:
		if ev.ID != "" && ev.ID != ev.ContainerID {
			return runtime.Event{}, false
		}
		id = ev.ContainerID
	case *apievents.TaskPaused:
		id = ev.ContainerID
	case *apievents.TaskResumed:
		id = ev.ContainerID
	case *apievents.TaskOOM:
		id = ev.ContainerID
	case *apievents.ContainerDelete:
		id = ev.ID
		l, ok := known[id]
		delete(known, id)
		return runtime.Event{ContainerID: id, Action: action, Labels: l}, ok
	default:
		return runtime.Event{}, false
	}
	l, ok := known[id]
	if !ok {
		cont, err := c.cli.LoadContainer(ctx, id)
		if err != nil {
			return runtime.Event{}, false // gone already: its delete event follows
		}
		all, err := cont.Labels(ctx)
		if err != nil {
			return runtime.Event{}, false
		}
		l = map[string]string{}
		for k, v := range all {
			if !strings.HasPrefix(k, labelPrefix) {
				l[k] = v
			}
		}
		known[id] = l
	}
	return runtime.Event{ContainerID: id, Action: action, Labels: l}, true
}

// matches reports whether have carries every label in want (an empty value
// matches the key with any value), as List matches them; no labels match
// only berth's containers.
func matches(have, want map[string]string) bool {
	if len(want) == 0 {
		_, ok := have[runtime.ManagedLabel]
		return ok
	}
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}
