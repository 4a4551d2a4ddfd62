package api_test

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/sandbox"
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

// newSandbox creates a sandbox (synchronously) and destroys it when the test
// ends.
func newSandbox(t testing.TB, c *client.Client, req client.SandboxRequest) *client.Sandbox {
	t.Helper()
	if req.Template == "" {
		req.Template = "base"
	}
	if req.Resources == nil {
		req.Resources = &client.Resources{Memory: "64MiB"}
	}
	s, err := c.CreateSandbox(context.Background(), req, false)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() { _ = c.DestroySandbox(context.Background(), s.ID) })
	return s
}

// containers lists the engine's containers of env's instance.
func containers(t testing.TB, env *servertest.Env) []runtime.Container {
	t.Helper()
	cs, err := env.Sandboxes.Runtime().List(context.Background(), map[string]string{sandbox.LabelInstance: env.Sandboxes.Instance()})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return cs
}
