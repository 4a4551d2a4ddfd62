package sandbox_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// With --replicas a sandbox whose lease another server holds is not
// touched: a lifecycle call waits for the lease (up to LeaseWait) and then
// answers 409 conflict, "busy on another server"; the reconciler leaves it
// alone; once the lease is released the call goes through. The other
// server is played by a second lease holder on the same database.
func TestLeaseHeldByAnotherServer(t *testing.T) {
	if os.Getenv("BERTH_TEST_POSTGRES") == "" && os.Getenv("CI") == "true" {
		t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
	}
	cfg := servertest.Config(t, dbtest.PostgresDSN(t))
	cfg.Replicas = true
	cfg.WorkspacesDir = t.TempDir()
	cfg.Sandbox.LeaseWait = time.Second
	env := servertest.StartConfig(t, cfg)
	needEngine(t, env)
	ctx := testctx.Context(t)
	ids := sandboxes(t, env.Admin, 1)
	other := env.DB.NewLeases("srv_other", time.Hour)
	ok, err := other.TryAcquire(ctx, "sandbox:"+ids[0])
	if err != nil || !ok {
		t.Fatalf("take the sandbox's lease as another server: %v %v", ok, err)
	}
	_, err = env.Admin.PauseSandbox(ctx, ids[0])
	if client.ErrorCode(err) != "conflict" || !strings.Contains(err.Error(), "busy on another server") {
		t.Fatalf("pause while another server holds the lease: %v, want 409 conflict", err)
	}
	if err := env.Sandboxes.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := env.Admin.Sandbox(ctx, ids[0]); err != nil || s.Status != "running" {
		t.Fatalf("after reconcile: %v %+v, want running", err, s)
	}
	if err := other.Release(ctx, "sandbox:"+ids[0]); err != nil {
		t.Fatal(err)
	}
	if s, err := env.Admin.PauseSandbox(ctx, ids[0]); err != nil || s.Status != "paused" {
		t.Fatalf("pause once released: %v %+v", err, s)
	}
	destroyAll(t, env.Admin, ids)
}
