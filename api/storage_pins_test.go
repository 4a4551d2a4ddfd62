package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestBtrfsRestoreResetsPins: a snapshot taken while a nested mount's
// mount point was pinned (immutable) carries the pin; restoring it after
// the sandbox is gone gives back a normal directory, and a forced restore
// under a running sandbox with a nested mount leaves its mount point
// pinned (and mounted) on the restored tree.
func TestBtrfsRestoreResetsPins(t *testing.T) {
	needAgentEngine(t)
	servertest.BtrfsEngines(t, func(t *testing.T, env *servertest.Env) {
		ctx := testctx.Context(t)
		a := env.Admin
		outer, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "outer"})
		must(t, err)
		inner, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "inner"})
		must(t, err)
		_, err = a.WriteFile(ctx, inner.ID, "/who", "inner")
		must(t, err)
		nested := client.SandboxRequest{Template: "base", Network: "none", Resources: &client.Resources{Memory: "64MiB"},
			Mounts: []client.Mount{{WorkspaceID: outer.ID, Path: "/workspace"}, {WorkspaceID: inner.ID, Path: "/workspace/priv"}}}

		// Snapshot while the sandbox pins /priv, then destroy the sandbox.
		sb, err := a.CreateSandbox(ctx, nested, false)
		must(t, err)
		_, err = a.RenameFile(ctx, outer.ID, "/priv", "moved", false)
		wantAPIError(t, "rename the pinned mount point", err, http.StatusConflict, "")
		pinned, err := a.CreateSnapshot(ctx, outer.ID, "pinned")
		must(t, err)
		must(t, a.DestroySandbox(ctx, sb.ID))

		// Restored with no sandbox left: priv is an ordinary directory.
		_, err = a.RestoreSnapshot(ctx, outer.ID, pinned.ID, false)
		must(t, err)
		if _, err := a.RenameFile(ctx, outer.ID, "/priv", "moved", false); err != nil {
			t.Fatalf("rename priv after restoring a snapshot taken while it was pinned: %v", err)
		}
		_, err = a.WriteFile(ctx, outer.ID, "/moved/note", "writable")
		must(t, err)

		// The converse: a snapshot without the mount point, restored by
		// force under a running sandbox that needs it.
		plain, err := a.CreateSnapshot(ctx, outer.ID, "plain")
		must(t, err)
		sb2, err := a.CreateSandbox(ctx, nested, false)
		must(t, err)
		t.Cleanup(func() { _ = a.DestroySandbox(ctx, sb2.ID) })
		_, err = a.RestoreSnapshot(ctx, outer.ID, plain.ID, false)
		wantAPIError(t, "restore under a read-write mount", err, http.StatusConflict, "")
		res, err := a.RestoreSnapshot(ctx, outer.ID, plain.ID, true)
		must(t, err)
		if len(res.RestartedSandboxes) != 1 || res.RestartedSandboxes[0] != sb2.ID {
			t.Errorf("restarted %v, want [%s]", res.RestartedSandboxes, sb2.ID)
		}
		_, err = a.RenameFile(ctx, outer.ID, "/priv", "x", false)
		wantAPIError(t, "rename the mount point after a forced restore", err, http.StatusConflict, "")
		if code, out := shIn(t, a, sb2.ID, "cat /workspace/priv/who; ls /workspace"); code != 0 || !strings.HasPrefix(out, "inner") || !strings.Contains(out, "moved") {
			t.Errorf("the sandbox after the forced restore: exit %d, %q; want the inner workspace at /workspace/priv and the restored tree", code, out)
		}
		// Destroying the sandbox frees the mount point again.
		must(t, a.DestroySandbox(ctx, sb2.ID))
		if _, err := a.RenameFile(ctx, outer.ID, "/priv", "free", false); err != nil {
			t.Errorf("rename priv after its sandbox is gone: %v", err)
		}
	})
}
