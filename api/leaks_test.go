package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// TestWorkspaceUsageVisibility: a grantee who neither owns the workspace nor
// administers the org sees how many sandboxes mount it, but only their own
// in the list; the owner and admins see every one.
func TestWorkspaceUsageVisibility(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	ctx := context.Background()
	ownerM, owner := env.Member(t, "owner", "member")
	aliceM, alice := env.Member(t, "alice", "member")
	bobM, bob := env.Member(t, "bob", "member")
	w, err := owner.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "shared"})
	must(t, err)
	_, err = env.Admin.SetWorkspaceAccess(ctx, w.ID, []string{aliceM.ID, bobM.ID})
	must(t, err)
	_ = ownerM
	sa := newSandbox(t, alice, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace", ReadOnly: true}}})
	sb := newSandbox(t, bob, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace", ReadOnly: true}}})

	ids := func(c *client.Client) (int, []string) {
		t.Helper()
		u, err := c.WorkspaceUsage(ctx, w.ID)
		must(t, err)
		var out []string
		for _, m := range u.MountedSandboxes {
			out = append(out, m.SandboxID)
		}
		return u.Counts.MountedSandboxes, out
	}
	for _, tc := range []struct {
		who  string
		c    *client.Client
		want []string
	}{
		{"owner", owner, []string{sa.ID, sb.ID}},
		{"admin", env.Admin, []string{sa.ID, sb.ID}},
		{"alice", alice, []string{sa.ID}},
		{"bob", bob, []string{sb.ID}},
	} {
		n, got := ids(tc.c)
		if n != 2 || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s sees count %d and %v; want 2 and %v", tc.who, n, got, tc.want)
		}
	}
}

// TestEngineErrorsHideHostPaths: an engine error that quotes a mount's
// host path (a forced workspace delete under a stopped sandbox makes the
// next start fail on the missing bind source) reaches the client, and the
// sandbox's statusReason, without the data directory.
func TestEngineErrorsHideHostPaths(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "gone"})
	must(t, err)
	s := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}})
	_, err = a.SandboxAction(ctx, s.ID, "stop")
	must(t, err)
	must(t, a.DeleteWorkspace(ctx, w.ID, true))
	_, err = a.SandboxAction(ctx, s.ID, "start")
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("start without its bind source: %v", err)
	}
	if strings.Contains(ce.Message, env.Config.DataDir) || strings.Contains(ce.Message, "/workspaces/") {
		t.Errorf("the error shows a host path: %q", ce.Message)
	}
	got, err := a.Sandbox(ctx, s.ID)
	must(t, err)
	if strings.Contains(got.StatusReason, env.Config.DataDir) {
		t.Errorf("the status reason shows a host path: %q", got.StatusReason)
	}
	t.Logf("start answered %d %q", ce.Status, ce.Message)
}
