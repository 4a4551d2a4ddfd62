package main

import (
	"io"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

func TestSnapshotCommands(t *testing.T) {
	srv := servertest.StartBtrfs(t, "")
	c := newCLI(t, srv)
	ctx := testctx.Context(t)
	var w client.Workspace
	c.JSON(&w, "workspace", "create", "Docs", "--slug", "docs")
	_, err := srv.Admin.WriteFile(ctx, w.ID, "/a.txt", "one")
	if err != nil {
		t.Fatal(err)
	}
	if out := c.OK("workspace", "snapshot", "docs", "first"); !strings.HasPrefix(out, "snapshot first of workspace docs created (") {
		t.Errorf("snapshot said %q", out)
	}
	rows := c.Table("workspace", "snapshots", "docs")
	if len(rows) != 1 || rows[0]["NAME"] != "first" || rows[0]["SIZE"] == "" || rows[0]["SIZE"] == "-" {
		t.Fatalf("snapshots: %v", rows)
	}
	if _, err := srv.Admin.WriteFile(ctx, w.ID, "/a.txt", "two"); err != nil {
		t.Fatal(err)
	}
	var cl client.Workspace
	c.JSON(&cl, "workspace", "clone", "docs", "Docs copy", "--snapshot", "first")
	if cl.Slug != "docs-copy" {
		t.Errorf("clone: %+v", cl)
	}
	if out := c.OK("workspace", "restore", "docs", "first"); !strings.Contains(out, "restored to snapshot first") {
		t.Errorf("restore said %q", out)
	}
	for _, ws := range []string{w.ID, cl.ID} {
		resp, err := srv.Admin.Download(ctx, ws, "/a.txt", client.DownloadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || string(b) != "one" {
			t.Errorf("workspace %s after restore/clone: %q %v, want one", ws, b, err)
		}
	}
	c.OK("workspace", "snapshot-delete", "docs", "first")
	if rows := c.Table("workspace", "snapshots", "docs"); len(rows) != 0 {
		t.Errorf("snapshots after delete: %v", rows)
	}
	if r := c.Fail("workspace", "restore", "docs", "nope"); !strings.Contains(r.Stderr, "not found") {
		t.Errorf("restore of an unknown snapshot: %+v", r)
	}
}
