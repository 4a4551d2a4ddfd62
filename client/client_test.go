package client_test

import (
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

// The ergonomic names answer what the general calls they wrap answer.

func TestWorkspaceRenameAndQuota(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Before", Slug: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.Admin.RenameWorkspace(ctx, w.ID, "After")
	if err != nil || r.Name != "After" || r.Slug != "kept" {
		t.Fatalf("rename: %+v %v", r, err)
	}
	q := int64(1 << 20)
	r, err = env.Admin.SetWorkspaceQuota(ctx, w.ID, &q)
	if err != nil || r.QuotaBytes == nil || *r.QuotaBytes != q || r.Name != "After" {
		t.Fatalf("quota: %+v %v", r, err)
	}
	r, err = env.Admin.SetWorkspaceQuota(ctx, w.ID, nil)
	if err != nil || r.QuotaBytes != nil {
		t.Fatalf("quota removed: %+v %v", r, err)
	}
	if _, err := env.Admin.RenameWorkspace(ctx, w.ID, ""); client.ErrorCode(err) != "invalid_request" {
		t.Errorf("empty name: %v, want invalid_request", err)
	}
}

func TestSandboxLifecycleNames(t *testing.T) {
	env := servertest.Start(t, "")
	rt := env.Sandboxes.Runtime()
	runtimetest.Require(t, rt)
	runtimetest.BaseImage(t, rt)
	ctx := testctx.Context(t)
	s, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "names", Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := testctx.Cleanup()
		defer cancel()
		_ = env.Admin.DestroySandbox(cctx, s.ID)
	})
	steps := []struct {
		do   func() (*client.Sandbox, error)
		want string
	}{
		{func() (*client.Sandbox, error) { return env.Admin.PauseSandbox(ctx, "names") }, "paused"},
		{func() (*client.Sandbox, error) { return env.Admin.ResumeSandbox(ctx, "names") }, "running"},
		{func() (*client.Sandbox, error) { return env.Admin.KeepaliveSandbox(ctx, "names") }, "running"},
		{func() (*client.Sandbox, error) { return env.Admin.StopSandbox(ctx, s.ID) }, "stopped"},
		{func() (*client.Sandbox, error) { return env.Admin.StartSandbox(ctx, s.ID) }, "running"},
	}
	for i, st := range steps {
		got, err := st.do()
		if err != nil || got.Status != st.want {
			t.Fatalf("step %d: %+v %v, want status %s", i, got, err, st.want)
		}
	}
}
