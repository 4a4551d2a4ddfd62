package main

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

func TestWorkspaceCommands(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, srv *servertest.Env) {
		c := newCLI(t, srv)
		ctx := testctx.Context(t)

		out := c.OK("workspace", "create", "Docs Project", "--slug", "docs-project")
		if !strings.HasPrefix(out, "workspace docs-project created (") {
			t.Errorf("create said %q", out)
		}
		var other client.Workspace
		c.JSON(&other, "workspace", "create", "Other One", "--quota", "10MiB")
		if other.Slug != "other-one" || other.QuotaBytes == nil || *other.QuotaBytes != 10<<20 {
			t.Errorf("create -o json: %+v", other)
		}
		id := strings.TrimSpace(c.OK("workspace", "create", "Quiet", "-q"))
		if _, err := srv.Admin.Workspace(ctx, id); err != nil {
			t.Errorf("create -q printed %q: %v", id, err)
		}

		// list: table, wide, json, -q.
		rows := c.Table("workspace", "list")
		if len(rows) != 3 {
			t.Fatalf("list: %v", rows)
		}
		docs := row(t, rows, "SLUG", "docs-project")
		if docs["NAME"] != "Docs Project" || docs["QUOTA"] != "-" || docs["ID"] == "" {
			t.Errorf("docs row: %v", docs)
		}
		if q := row(t, rows, "SLUG", "other-one")["QUOTA"]; q != "10 MiB" {
			t.Errorf("quota cell %q", q)
		}
		if _, ok := rows[0]["OWNER"]; ok {
			t.Error("OWNER shown without -o wide")
		}
		if wide := c.Table("workspace", "list", "-o", "wide"); wide[0]["OWNER"] == "" {
			t.Errorf("-o wide: %v", wide[0])
		}
		var listed []client.Workspace
		c.JSON(&listed, "workspace", "list")
		if len(listed) != 3 {
			t.Errorf("list -o json: %+v", listed)
		}
		ids := strings.Fields(c.OK("workspace", "list", "-q"))
		if len(ids) != 3 {
			t.Errorf("list -q: %v", ids)
		}

		// get by slug, by id, by name.
		var got client.Workspace
		c.JSON(&got, "workspace", "get", "docs-project")
		if got.ID != docs["ID"] {
			t.Errorf("get by slug: %+v", got)
		}
		c.JSON(&got, "workspace", "get", docs["ID"])
		if got.Slug != "docs-project" {
			t.Errorf("get by id: %+v", got)
		}
		if r := c.Table("workspace", "get", "Docs Project"); len(r) != 1 || r[0]["SLUG"] != "docs-project" {
			t.Errorf("get by name: %v", r)
		}

		// rename keeps the slug.
		out = c.OK("workspace", "rename", "docs-project", "Documentation")
		if !strings.Contains(out, `renamed from "Docs Project" to "Documentation"`) {
			t.Errorf("rename said %q", out)
		}
		w, err := srv.Admin.Workspace(ctx, docs["ID"])
		if err != nil || w.Name != "Documentation" || w.Slug != "docs-project" {
			t.Errorf("after rename: %+v %v", w, err)
		}

		// quota: set, show, remove.
		if out := c.OK("workspace", "quota", "docs-project", "5MiB"); !strings.Contains(out, "quota set to 5.0 MiB") {
			t.Errorf("quota set said %q", out)
		}
		q := c.Table("workspace", "quota", "docs-project")
		if len(q) != 1 || q[0]["TOTAL"] != "5.0 MiB" {
			t.Errorf("quota show: %v", q)
		}
		var sp client.Space
		c.JSON(&sp, "workspace", "quota", "docs-project")
		if sp.Total != 5<<20 {
			t.Errorf("quota -o json: %+v", sp)
		}
		c.OK("workspace", "quota", "docs-project", "none")
		if w, err := srv.Admin.Workspace(ctx, docs["ID"]); err != nil || w.QuotaBytes != nil {
			t.Errorf("quota none: %+v %v", w, err)
		}
		if r := c.Fail("workspace", "quota", "docs-project", "lots"); !strings.Contains(r.Stderr, "want a size") {
			t.Errorf("bad quota: %q", r.Stderr)
		}

		// usage of an unused workspace.
		if out := c.OK("workspace", "usage", "docs-project"); !strings.Contains(out, "not in use") {
			t.Errorf("usage: %q", out)
		}
		var u client.WorkspaceUsage
		c.JSON(&u, "workspace", "usage", "docs-project")
		if u.WorkspaceID != docs["ID"] || u.InUse {
			t.Errorf("usage -o json: %+v", u)
		}

		// grant: a member by email, listed, revoked.
		m, mc := srv.Member(t, "ann", "member")
		if _, err := srv.Admin.SetMemberRole(ctx, m.ID, "member"); err != nil {
			t.Fatal(err)
		}
		if out := c.OK("workspace", "grant", "docs-project", m.ID); !strings.Contains(out, "access granted to") {
			t.Errorf("grant said %q", out)
		}
		if g := c.Table("workspace", "grant", "docs-project"); len(g) != 1 || g[0]["ID"] != m.ID || g[0]["NAME"] != "ann" {
			t.Errorf("grants: %v", g)
		}
		if l, err := mc.Workspaces(ctx, false); err != nil || len(l.Workspaces) != 1 {
			t.Errorf("member sees %+v %v after the grant", l, err)
		}
		// The member's CLI names the workspace by slug too.
		mcli := newCLI(t, srv)
		mcli.Setenv("BERTH_API_KEY", mc.Key)
		if r := mcli.Table("workspace", "get", "docs-project"); len(r) != 1 {
			t.Errorf("member get by slug: %v", r)
		}
		if r := mcli.Fail("workspace", "get", "other-one"); !strings.Contains(r.Stderr, `workspace "other-one" not found (request `) {
			t.Errorf("member, ungranted: %q", r.Stderr)
		}
		c.OK("workspace", "grant", "docs-project", "--revoke", "ann")
		if g, err := srv.Admin.WorkspaceAccess(ctx, docs["ID"]); err != nil || len(g) != 0 {
			t.Errorf("after revoke: %v %v", g, err)
		}
		if r := c.Fail("workspace", "grant", "docs-project", "nobody"); !strings.Contains(r.Stderr, `member "nobody" not found`) {
			t.Errorf("grant to nobody: %q", r.Stderr)
		}

		// delete by slug and by id; one missing among them exits 1 and
		// still deletes the rest.
		r := c.Fail("workspace", "delete", "other-one", "missing", id)
		if r.Code != 1 || !strings.Contains(r.Stderr, `workspace "missing" not found (request `) ||
			!strings.Contains(r.Stdout, "workspace other-one deleted") || !strings.Contains(r.Stdout, "workspace quiet deleted") {
			t.Errorf("delete: %+v", r)
		}
		if l := c.Table("workspace", "list"); len(l) != 1 || l[0]["SLUG"] != "docs-project" {
			t.Errorf("after delete: %v", l)
		}
	})
}
