package sandbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/berth-dev/berth/server/servertest"
)

// Pause and resume back to back, as the authorization matrix does with its
// shared sandbox: a resume once answered 500 there. dockerd's paused flag
// lags behind its event queue and refused the unpause ("is not paused");
// no lifecycle call may answer 5xx for that, nor fail at all.
func TestPauseResumeBackToBack(t *testing.T) {
	for _, r := range servertest.Runtimes {
		t.Run(r, func(t *testing.T) { testPauseResumeBackToBack(t, servertest.StartRuntime(t, "", r)) })
	}
}

func testPauseResumeBackToBack(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	ids := sandboxes(t, a, 4)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for n := range 40 {
				for _, act := range []string{"pause", "resume"} {
					if _, err := a.SandboxAction(ctx, id, act); err != nil {
						t.Errorf("%s %d of %s: %v", act, n, id, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	destroyAll(t, a, ids)
}
