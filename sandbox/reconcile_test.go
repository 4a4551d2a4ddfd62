package sandbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

// needEngine makes sure env's engine answers (a missing one fails under
// CI=true and skips elsewhere) and has the base template's image.
func needEngine(t testing.TB, env *servertest.Env) {
	t.Helper()
	rt := env.Sandboxes.Runtime()
	runtimetest.Require(t, rt)
	runtimetest.BaseImage(t, rt)
}

// sandboxes creates n small sandboxes at once.
func sandboxes(t *testing.T, c *client.Client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := c.CreateSandbox(context.Background(), client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, false)
			ids[i], errs[i] = s.ID, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("create sandbox: %v", err)
		}
	}
	return ids
}

// destroyAll destroys ids at once.
func destroyAll(t *testing.T, c *client.Client, ids []string) {
	t.Helper()
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = c.DestroySandbox(context.Background(), id) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("destroy %s: %v", ids[i], err)
		}
	}
}

// A destroy that finishes while the reconciler runs — between its list of
// live sandboxes and its lock on one of them — must stay destroyed: not
// turned into error ("container removed outside berth") and listed again.
func TestReconcileKeepsDestroyed(t *testing.T) {
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		a := env.Admin
		m := env.Sandboxes

		// Deterministic: the destroys finish exactly in the window.
		early := sandboxes(t, a, 4)
		var once sync.Once
		m.SetReconcileHook(func() { once.Do(func() { destroyAll(t, a, early) }) })
		if err := m.Reconcile(ctx); err != nil {
			t.Errorf("reconcile: %v", err)
		}
		m.SetReconcileHook(nil)

		// And the way it was seen: many destroys at once, racing with a
		// reconciler that runs back to back.
		late := sandboxes(t, a, 12)
		stop := make(chan struct{})
		var loop sync.WaitGroup
		loop.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := m.Reconcile(ctx); err != nil {
					t.Errorf("reconcile: %v", err)
					return
				}
			}
		})
		destroyAll(t, a, late)
		close(stop)
		loop.Wait()
		if err := m.Reconcile(ctx); err != nil {
			t.Errorf("reconcile: %v", err)
		}

		for _, id := range append(early, late...) {
			s, err := a.Sandbox(ctx, id)
			if err != nil {
				t.Errorf("get destroyed %s: %v", id, err)
			} else if s.Status != "destroyed" {
				t.Errorf("destroyed sandbox %s is %s (%q)", id, s.Status, s.StatusReason)
			}
		}
		listed, _, err := a.Sandboxes(ctx, client.SandboxFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range listed {
			t.Errorf("a destroyed sandbox is listed: %s %s (%q)", s.ID, s.Status, s.StatusReason)
		}
	})
}
