package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// Pause and unpause back to back, as a resume right after an idle pause
// does: dockerd's paused flag lags behind its event queue, and a call made
// in that moment was refused ("already paused", "is not paused", "cannot
// resume a running process"), which the API answered with 500. Every call
// must succeed and leave the container where it asked. Several containers
// at once load the engine's event handling, which makes the lag common.
func TestPauseUnpauseBackToBack(t *testing.T) {
	rt := dockertest.New(t)
	img := runtimetest.BaseImage(t, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	run := hex.EncodeToString(b)

	const containers, pairs = 4, 60
	var wg sync.WaitGroup
	for i := range containers {
		wg.Go(func() {
			id, err := rt.Create(ctx, runtime.Spec{Name: "berth-pause-" + run + "-" + string(rune('a'+i)), Image: img,
				Labels: map[string]string{runtimetest.LabelTest: run}})
			if err != nil {
				t.Error(err)
				return
			}
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if err := rt.Remove(rctx, id); err != nil {
					t.Errorf("remove: %v", err)
				}
			}()
			if err := rt.Start(ctx, id); err != nil {
				t.Error(err)
				return
			}
			for n := range pairs {
				if err := rt.Pause(ctx, id); err != nil {
					t.Errorf("pause %d: %v", n, err)
					return
				}
				if err := rt.Unpause(ctx, id); err != nil {
					t.Errorf("unpause %d: %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
