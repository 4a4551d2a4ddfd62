package api_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

func TestWorkspaceLifecycle(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		a := env.Admin
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "My Repo: Main!"})
		must(t, err)
		if w.Slug != "my-repo-main" {
			t.Errorf("derived slug %q, want my-repo-main", w.Slug)
		}
		dir := filepath.Join(env.Config.DataDir, "workspaces", w.ID)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("workspace directory %s not created: %v", dir, err)
		}
		// A second workspace with the same name gets a distinct derived slug.
		w2, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "My Repo: Main!"})
		must(t, err)
		if w2.Slug == w.Slug || !strings.HasPrefix(w2.Slug, "my-repo-main") {
			t.Errorf("second derived slug %q", w2.Slug)
		}
		long, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: strings.Repeat("Long Name ", 20)})
		must(t, err)
		if len(long.Slug) > 63 || strings.HasSuffix(long.Slug, "-") {
			t.Errorf("derived slug of a long name: %q", long.Slug)
		}

		got, err := a.Workspace(ctx, w.ID)
		must(t, err)
		if got.Name != w.Name || got.QuotaBytes != nil || got.IsPersonal {
			t.Errorf("get: %+v", got)
		}
		q := int64(1 << 20)
		up, err := a.UpdateWorkspace(ctx, w.ID, map[string]any{"name": "Renamed", "quotaBytes": q})
		must(t, err)
		if up.Name != "Renamed" || up.QuotaBytes == nil || *up.QuotaBytes != q || up.Slug != w.Slug {
			t.Errorf("update: %+v", up)
		}
		if !up.UpdatedAt.After(w.UpdatedAt) {
			t.Errorf("updatedAt did not move")
		}
		up, err = a.UpdateWorkspace(ctx, w.ID, map[string]any{"quotaBytes": nil})
		must(t, err)
		if up.QuotaBytes != nil || up.Name != "Renamed" {
			t.Errorf("clearing the quota: %+v", up)
		}

		// Members may not set quotas, even on what they own.
		_, m := env.Member(t, "m", "member")
		mw, err := m.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "mine", QuotaBytes: &q})
		must(t, err)
		if _, err := m.UpdateWorkspace(ctx, mw.ID, map[string]any{"quotaBytes": 5}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("member changing a quota: %v, want forbidden", err)
		}

		l, err := a.Workspaces(ctx, false)
		must(t, err)
		if len(l.Workspaces) != 3 || !l.Storage.Unlimited || l.Storage.QuotaBytes != nil {
			t.Errorf("list: %d workspaces, storage %+v", len(l.Workspaces), l.Storage)
		}
		all, err := a.Workspaces(ctx, true)
		must(t, err)
		if len(all.Workspaces) != 4 {
			t.Errorf("?all=true: %d workspaces, want 4", len(all.Workspaces))
		}
		ml, err := m.Workspaces(ctx, false)
		must(t, err)
		if len(ml.Workspaces) != 1 || ml.Storage.Unlimited || ml.Storage.QuotaBytes == nil || *ml.Storage.QuotaBytes != q {
			t.Errorf("member list: %+v", ml)
		}

		u, err := a.WorkspaceUsage(ctx, w.ID)
		must(t, err)
		if u.InUse || u.WorkspaceID != w.ID || u.WorkspaceName != "Renamed" || u.MountedSandboxes == nil || u.Agents == nil {
			t.Errorf("usage: %+v", u)
		}

		must(t, a.DeleteWorkspace(ctx, w.ID, false))
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("workspace directory survives delete: %v", err)
		}
		if _, err := a.Workspace(ctx, w.ID); client.ErrorCode(err) != "not_found" {
			t.Errorf("get after delete: %v", err)
		}
		if err := a.DeleteWorkspace(ctx, w.ID, false); client.ErrorCode(err) != "not_found" {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestMembersAndKeys(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		a := env.Admin
		me, err := a.Me(ctx)
		must(t, err)
		if me.Role != "admin" || me.Org.Name != "default" || me.User.Name != "admin" || len(me.Scopes) != 1 || me.Scopes[0] != "*" {
			t.Errorf("me: %+v", me)
		}
		// The last admin cannot be demoted or removed.
		if _, err := a.SetMemberRole(ctx, me.User.ID, "member"); client.ErrorCode(err) != "conflict" {
			t.Errorf("demoting the last admin: %v", err)
		}
		if err := a.RemoveMember(ctx, me.User.ID); client.ErrorCode(err) != "conflict" {
			t.Errorf("removing the last admin: %v", err)
		}

		mm, m := env.Member(t, "carol", "member", "files:read", "org:read", "org:write")
		k, err := m.CreateAPIKey(ctx, client.KeyRequest{Name: "ro", Scopes: []string{"files:read"}, ExpiresIn: "90d"})
		must(t, err)
		if !strings.HasPrefix(k.Key, "berth_") || k.KeyPrefix == "" || !strings.HasPrefix(k.Key, k.KeyPrefix) || k.Status != "active" || k.ExpiresAt == nil {
			t.Errorf("created key: %+v", k)
		}
		// A key cannot mint a stronger key than itself.
		if _, err := m.CreateAPIKey(ctx, client.KeyRequest{Name: "up", Scopes: []string{"files:write"}}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("escalating scopes: %v", err)
		}
		if _, err := m.CreateAPIKey(ctx, client.KeyRequest{Name: "all"}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("member key minting '*' from a scoped key: %v", err)
		}
		// A member's key never exceeds the member role.
		if _, err := m.CreateAPIKey(ctx, client.KeyRequest{Name: "x", UserID: me.User.ID}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("member creating a key for the admin: %v", err)
		}
		if _, err := m.APIKeys(ctx, true); client.ErrorCode(err) != "forbidden" {
			t.Errorf("member ?all=true keys: %v", err)
		}
		ks, err := m.APIKeys(ctx, false)
		must(t, err)
		if len(ks) != 2 {
			t.Errorf("member sees %d keys, want 2", len(ks))
		}
		for _, key := range ks {
			if key.Key != "" {
				t.Errorf("list leaks a secret")
			}
		}
		ro := m.WithKey(k.Key)
		if _, err := ro.Workspaces(ctx, false); err != nil {
			t.Errorf("files:read key listing workspaces: %v", err)
		}
		if _, err := ro.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "nope"}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("files:read key creating: %v", err)
		}
		rk, err := m.RevokeAPIKey(ctx, k.ID)
		must(t, err)
		if rk.Status != "revoked" || rk.RevokedAt == nil {
			t.Errorf("revoked key: %+v", rk)
		}
		if _, err := ro.Workspaces(ctx, false); client.ErrorCode(err) != "unauthorized" {
			t.Errorf("revoked key on the next request: %v", err)
		}
		// Promotion and demotion take effect on existing keys immediately.
		if _, err := m.Members(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetMemberRole(ctx, mm.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.APIKeys(ctx, true); err != nil {
			t.Errorf("promoted member ?all=true keys: %v", err)
		}
		must(t, a.RemoveMember(ctx, mm.ID))
		if _, err := m.Me(ctx); client.ErrorCode(err) != "unauthorized" {
			t.Errorf("removed member's key: %v", err)
		}
		all, err := a.APIKeys(ctx, true)
		must(t, err)
		for _, key := range all {
			if key.OwnerUserID == mm.ID {
				t.Errorf("removed member's keys remain")
			}
		}
	})
}
