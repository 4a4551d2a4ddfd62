package docker_test

import (
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := dockertest.New(t)
	runtimetest.Run(t, rt, runtimetest.BaseImage(t, rt))
}

// An engine that is not there must neither stop New nor hang a call: every
// call answers Unavailable, so that the server starts without an engine.
func TestEngineDown(t *testing.T) {
	d, err := docker.New("unix://" + t.TempDir() + "/no-engine.sock")
	if err != nil {
		t.Fatalf("New with a dead socket: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t) // the test's deadline: slow is not wrong

	checks := map[string]error{
		"ping":   d.Ping(ctx),
		"start":  d.Start(ctx, "x"),
		"remove": d.Remove(ctx, "x"),
	}
	_, checks["inspect"] = d.Inspect(ctx, "x")
	_, checks["list"] = d.List(ctx, nil)
	_, checks["create"] = d.Create(ctx, runtime.Spec{Image: "berth/base:1"})
	_, checks["exec"] = d.Exec(ctx, "x", runtime.ExecSpec{Cmd: []string{"true"}})
	_, checks["image"] = d.ImagePresent(ctx, "berth/base:1")
	for name, err := range checks {
		if !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("%s: %v (kind %s), want unavailable", name, err, berth.KindOf(err))
		}
	}
}

// A runtime made while the engine was unreachable works once it answers:
// negotiation is retried, not remembered as failed.
func TestRecoversWhenEngineAppears(t *testing.T) {
	live := dockertest.New(t)
	sock := t.TempDir() + "/engine.sock"
	d, err := docker.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t) // the test's deadline: slow is not wrong
	if err := d.Ping(ctx); !berth.IsKind(err, berth.Unavailable) {
		t.Fatalf("ping before the engine is there: %v", err)
	}
	stop := proxy(t, sock, live.Host())
	defer stop()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping after the engine appeared: %v", err)
	}
	if _, err := d.List(ctx, nil); err != nil {
		t.Fatalf("list after the engine appeared: %v", err)
	}
}
