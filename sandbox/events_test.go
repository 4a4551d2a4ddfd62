package sandbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// startFollowing runs a server whose reconciler follows the engine's events,
// with a full pass only every hour (beyond the one at each connect).
func startFollowing(t *testing.T, database string, opts sandbox.Options) *servertest.Env {
	t.Helper()
	return startFollowingOn(t, database, server.RuntimeDocker, opts)
}

// startFollowingOn is startFollowing with sandboxes on runtime.
func startFollowingOn(t *testing.T, database, rt string, opts sandbox.Options) *servertest.Env {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Database = database
	opts.Limits = cfg.Sandbox.Limits
	cfg.Sandbox = opts
	servertest.UseRuntime(t, &cfg, rt)
	return servertest.StartConfig(t, cfg)
}

func containerOf(t *testing.T, env *servertest.Env, id string) runtime.Container {
	t.Helper()
	cs, err := env.Sandboxes.Runtime().List(testctx.Context(t), map[string]string{sandbox.LabelSandbox: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("sandbox %s has %d containers", id, len(cs))
	}
	return cs[0]
}

func sandboxStatus(t *testing.T, c *client.Client, id string) (string, string) {
	t.Helper()
	s, err := c.Sandbox(context.Background(), id)
	if err != nil {
		t.Fatalf("get sandbox %s: %v", id, err)
	}
	return s.Status, s.StatusReason
}

// TestReconcileFollowsEvents: a container stopped or removed behind
// berth's back is noticed through the engine's event stream, without a full
// pass; a stream that drops is followed by a full pass once it is back.
func TestReconcileFollowsEvents(t *testing.T) {
	// Both databases on Docker, and containerd (whose events name
	// containers by id only: the labels come from the runtime's memory).
	for _, name := range []string{"sqlite", "postgres", "containerd"} {
		t.Run(name, func(t *testing.T) {
			dsn, engine := "", server.RuntimeDocker
			switch name {
			case "postgres":
				dsn = dbtest.PostgresDSN(t)
			case "containerd":
				engine = server.RuntimeContainerd
			}
			env := startFollowingOn(t, dsn, engine, sandbox.Options{ReconcileInterval: time.Hour, FullReconcileInterval: time.Hour})
			needEngine(t, env)
			m := env.Sandboxes
			a := env.Admin
			ctx := testctx.Context(t)
			rt := m.Runtime()
			testctx.Eventually(t, "the event stream to connect", func() bool { return m.EventConnects() >= 1 })

			ids := sandboxes(t, a, 2)
			t.Cleanup(func() { destroyAll(t, a, ids) })
			passes := m.FullPasses()

			// Stopped behind berth's back (kill: no grace period).
			if err := rt.Stop(ctx, containerOf(t, env, ids[0]).ID, 0); err != nil {
				t.Fatal(err)
			}
			testctx.Eventually(t, "the stop to be noticed", func() bool {
				st, _ := sandboxStatus(t, a, ids[0])
				return st == "stopped"
			})
			// Removed behind berth's back (rm -f).
			if err := rt.Remove(ctx, containerOf(t, env, ids[1]).ID); err != nil {
				t.Fatal(err)
			}
			testctx.Eventually(t, "the removal to be noticed", func() bool {
				st, reason := sandboxStatus(t, a, ids[1])
				return st == "error" && strings.Contains(reason, "removed")
			})
			if n := m.FullPasses() - passes; n != 0 {
				t.Errorf("%d full passes ran; the events alone should have done it", n)
			}
			if m.EventReconciles() == 0 {
				t.Error("no sandbox was reconciled on an event")
			}

			// The stream drops: once it is back, a full pass catches up.
			connects := m.EventConnects()
			m.DropEvents()
			testctx.Eventually(t, "the stream to reconnect", func() bool { return m.EventConnects() > connects })
			testctx.Eventually(t, "a full pass after the reconnect", func() bool { return m.FullPasses() > passes })
		})
	}
}

// TestReconcileWithoutEvents: with the events ignored (as with a runtime
// that cannot report them), the periodic pass notices the same changes.
func TestReconcileWithoutEvents(t *testing.T) {
	env := startFollowing(t, "", sandbox.Options{ReconcileInterval: 200 * time.Millisecond, IgnoreEngineEvents: true})
	needEngine(t, env)
	m := env.Sandboxes
	a := env.Admin
	ctx := testctx.Context(t)
	ids := sandboxes(t, a, 1)
	t.Cleanup(func() { destroyAll(t, a, ids) })
	if err := m.Runtime().Stop(ctx, containerOf(t, env, ids[0]).ID, 0); err != nil {
		t.Fatal(err)
	}
	testctx.Eventually(t, "the periodic pass to notice the stop", func() bool {
		st, _ := sandboxStatus(t, a, ids[0])
		return st == "stopped"
	})
	if m.EventConnects() != 0 || m.EventReconciles() != 0 {
		t.Errorf("events followed although ignored: %d connects, %d reconciles", m.EventConnects(), m.EventReconciles())
	}
}
