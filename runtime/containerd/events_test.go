package containerd_test

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// TestWatch: containerd's event stream reports the state changes of the
// containers carrying the labels (with their labels, the removal's too),
// and only theirs, not their execs'; a dead engine ends it Unavailable.
func TestWatch(t *testing.T) {
	rt := containerdtest.New(t)
	image := runtimetest.BaseImage(t, rt)
	ctx := testctx.Context(t)
	tag := "watch-" + strings.ToLower(rand.Text()[:10])
	events, errs := rt.Watch(ctx, map[string]string{"berth.test.watch": tag})

	mk := func(label string) string {
		t.Helper()
		id, err := rt.Create(ctx, runtime.Spec{Name: "berth-" + tag + "-" + label, Image: image,
			Labels: map[string]string{"berth.test.watch": label}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := testctx.Cleanup()
			defer cancel()
			if err := rt.Remove(cctx, id); err != nil && !berth.IsKind(err, berth.NotFound) {
				t.Errorf("remove: %v", err)
			}
		})
		return id
	}
	other := mk(tag + "-other") // another label value: not reported
	if err := rt.Start(ctx, other); err != nil {
		t.Fatal(err)
	}
	id := mk(tag)
	steps := []func() error{
		func() error { return rt.Start(ctx, id) },
		func() error {
			_, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"true"}})
			return err
		},
		func() error { return rt.Pause(ctx, id) },
		func() error { return rt.Unpause(ctx, id) },
		func() error { return rt.Stop(ctx, id, 0) },
		func() error { return rt.Remove(ctx, id) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for !slices.Contains(got, runtime.EventDestroy) {
		select {
		case e := <-events:
			if e.ContainerID != id {
				t.Fatalf("event of another container: %+v", e)
			}
			if e.Labels["berth.test.watch"] != tag || e.Labels[runtime.ManagedLabel] == "" {
				t.Errorf("event without the container's labels: %+v", e)
			}
			got = append(got, e.Action)
		case err := <-errs:
			t.Fatalf("stream ended: %v", err)
		case <-ctx.Done():
			t.Fatalf("events so far %v: %v", got, ctx.Err())
		}
	}
	// The exec's exit is not the container's: the only die comes after
	// the unpause (the stop).
	if i := slices.Index(got, runtime.EventDie); i >= 0 && i < slices.Index(got, runtime.EventUnpause) {
		t.Errorf("events %v: a die before the stop (an exec's exit reported as the container's)", got)
	}
	for _, want := range []string{runtime.EventStart, runtime.EventPause, runtime.EventUnpause, runtime.EventDie} {
		if !slices.Contains(got, want) {
			t.Errorf("events %v: no %s", got, want)
		}
	}

	dead, err := containerd.New(t.TempDir()+"/no-engine.sock", containerdtest.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dead.Close() }() // never connected: nothing to flush
	_, derrs := dead.Watch(ctx, nil)
	select {
	case err := <-derrs:
		if !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("watch without an engine: %v, want unavailable", err)
		}
	case <-time.After(testctx.Hang):
		t.Error("watch without an engine did not end")
	}
}
