package containerd_test

import (
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := containerdtest.New(t)
	runtimetest.Run(t, rt, containerdtest.BaseImage(t, rt))
}

// An engine that is not there must neither stop New nor hang a call: every
// call answers Unavailable, so that the server starts without an engine.
func TestEngineDown(t *testing.T) {
	c, err := containerd.New(t.TempDir()+"/no-engine.sock", "berth-test")
	if err != nil {
		t.Fatalf("New with a dead socket: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t)
	checks := map[string]error{
		"ping":   c.Ping(ctx),
		"start":  c.Start(ctx, "x"),
		"remove": c.Remove(ctx, "x"),
	}
	_, checks["inspect"] = c.Inspect(ctx, "x")
	_, checks["list"] = c.List(ctx, nil)
	_, checks["create"] = c.Create(ctx, runtime.Spec{Image: "berth/base:1"})
	_, checks["exec"] = c.Exec(ctx, "x", runtime.ExecSpec{Cmd: []string{"true"}})
	_, checks["image"] = c.ImagePresent(ctx, "berth/base:1")
	for name, err := range checks {
		if !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("%s: %v (kind %s), want unavailable", name, err, berth.KindOf(err))
		}
	}
}
