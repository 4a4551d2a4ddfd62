package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// wantCode checks that err is an API error with status and, when field
// is not "", that field.
func wantAPIError(t testing.TB, what string, err error, status int, field string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != status {
		t.Errorf("%s: want %d, got %v", what, status, err)
		return
	}
	if field != "" && ce.Field != field {
		t.Errorf("%s: error field %q, want %q (%s)", what, ce.Field, field, ce.Message)
	}
	if strings.Contains(ce.Message, "/workspaces/") || strings.Contains(ce.Message, os.TempDir()) {
		t.Errorf("%s: the message shows a host path: %q", what, ce.Message)
	}
}

// sh runs a shell script in a sandbox and returns its exit code and output.
func shIn(t *testing.T, c *client.Client, sbx, script string) (int, string) {
	t.Helper()
	r, err := c.Exec(testctx.Context(t), sbx, client.ExecRequest{Command: script, Timeout: 120000})
	must(t, err)
	return r.ExitCode, r.Stdout + r.Stderr
}

func getFile(t *testing.T, c *client.Client, ws, p, snap string) (string, error) {
	t.Helper()
	resp, err := c.Download(testctx.Context(t), ws, p, client.DownloadOptions{Snapshot: snap})
	if err != nil {
		return "", err
	}
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// raw sends a JSON request with the admin key and decodes an error answer.
func snapRaw(t *testing.T, env *servertest.Env, method, path string, body any) error {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(testctx.Context(t), method, env.URL+path, rd)
	must(t, err)
	req.Header.Set("X-API-Key", env.AdminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := env.HTTP().Do(req)
	must(t, err)
	defer closeBody(resp)
	if resp.StatusCode < 400 {
		return nil
	}
	return client.ErrorFrom(resp)
}

// TestBtrfsWorkspaceStorage drives the btrfs storage driver through the
// API on a real loop-mounted pool: quotas that bind sandboxes, exact
// usage, snapshots (browse, download, mount read-only, restore), clones,
// scopes, hostile names and symlinks, and a server restart.
func TestBtrfsWorkspaceStorage(t *testing.T) {
	needAgentEngine(t)
	servertest.BtrfsEngines(t, func(t *testing.T, env *servertest.Env) {
		ctx := testctx.Context(t)
		a := env.Admin
		if env.Storage.Name() != "btrfs" || env.StoragePlan.PoolFile == "" {
			t.Fatalf("storage %s, plan %+v: want btrfs on a pool file", env.Storage.Name(), env.StoragePlan)
		}
		const mib = 1 << 20
		quota := int64(8 * mib)
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "data", QuotaBytes: &quota})
		must(t, err)
		sb, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none", Resources: &client.Resources{Memory: "64MiB"},
			Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}}, false)
		must(t, err)
		// servertest removes the containers left when a step fails.

		// The kernel stops a sandbox's write at the quota.
		code, out := shIn(t, a, sb.ID, "dd if=/dev/urandom of=/workspace/big bs=1M count=32 conv=fsync")
		if code == 0 || !strings.Contains(out, "Disk quota exceeded") {
			t.Fatalf("dd of 32 MiB into an 8 MiB workspace in a sandbox: exit %d, %q; want Disk quota exceeded", code, out)
		}
		// The API's usage is the qgroup's, exact.
		space, err := a.WorkspaceSpace(ctx, w.ID)
		must(t, err)
		u, err := env.Storage.Usage(ctx, w.ID)
		must(t, err)
		fi, err := os.Stat(filepath.Join(env.API.Workspaces.Dir(w.ID), "big"))
		must(t, err)
		if space.Used != u.Bytes || space.Used < fi.Size() || space.Used > quota || space.Total != quota || space.Free != quota-space.Used {
			t.Errorf("API space %+v, driver usage %+v, file %d bytes: want used = the driver's, at least the file, within the quota %d", space, u, fi.Size(), quota)
		}
		got, err := a.Workspace(ctx, w.ID)
		must(t, err)
		if got.SizeBytes != u.Bytes {
			t.Errorf("workspace sizeBytes %d, want the qgroup's %d", got.SizeBytes, u.Bytes)
		}

		// Raising the quota lets the sandbox continue.
		_, err = a.UpdateWorkspace(ctx, w.ID, map[string]any{"quotaBytes": 32 * mib})
		must(t, err)
		if code, out := shIn(t, a, sb.ID, "dd if=/dev/urandom of=/workspace/more bs=1M count=8 conv=fsync"); code != 0 {
			t.Fatalf("dd of 8 MiB after raising the quota to 32 MiB: exit %d, %q", code, out)
		}
		// An API write past the quota is the same quota_exceeded as on dir,
		// and leaves nothing behind. (1 MiB against 256 KiB of room: small
		// enough for the client to finish sending before the answer.)
		sp, err := a.WorkspaceSpace(ctx, w.ID)
		must(t, err)
		_, err = a.UpdateWorkspace(ctx, w.ID, map[string]any{"quotaBytes": sp.Used + 256<<10})
		must(t, err)
		_, err = a.UploadAs(ctx, w.ID, "/", "huge.bin", io.LimitReader(zeroes{}, mib))
		wantAPIError(t, "upload past the quota", err, http.StatusInsufficientStorage, "")
		if client.ErrorCode(err) != "quota_exceeded" {
			t.Errorf("upload past the quota: code %q, want quota_exceeded", client.ErrorCode(err))
		}
		_, err = a.UpdateWorkspace(ctx, w.ID, map[string]any{"quotaBytes": 32 * mib})
		must(t, err)
		ents, _, err := a.ListFiles(ctx, w.ID, "/", client.ListFilesOptions{ShowHidden: true})
		must(t, err)
		for _, e := range ents {
			if e.Name != "big" && e.Name != "more" {
				t.Errorf("a failed upload left %q", e.Name)
			}
		}
		if code, out := shIn(t, a, sb.ID, "rm /workspace/big /workspace/more"); code != 0 {
			t.Fatalf("rm: %d %q", code, out)
		}

		// Snapshot v1, with symlinks pointing out of the workspace.
		_, err = a.WriteFile(ctx, w.ID, "/f.txt", "v1")
		must(t, err)
		live := env.API.Workspaces.Dir(w.ID)
		must(t, os.Symlink("/etc", filepath.Join(live, "etc-link")))
		must(t, os.Symlink("/etc/hostname", filepath.Join(live, "host-link")))
		snap, err := a.CreateSnapshot(ctx, w.ID, "v1")
		must(t, err)
		_, err = a.CreateSnapshot(ctx, w.ID, "v1")
		wantAPIError(t, "a second snapshot named v1", err, http.StatusConflict, "name")
		for _, bad := range []string{"", "../x", "a/b", ".hidden", "a b", strings.Repeat("a", 101), "a\x00b", "é"} {
			_, err := a.CreateSnapshot(ctx, w.ID, bad)
			wantAPIError(t, "snapshot name "+strconvQuote(bad), err, http.StatusBadRequest, "name")
		}
		_, err = a.WriteFile(ctx, w.ID, "/f.txt", "v2")
		must(t, err)

		// Reads from the snapshot: the snapshot's bytes, confined like the live tree.
		if b, err := getFile(t, a, w.ID, "/f.txt", snap.ID); err != nil || b != "v1" {
			t.Errorf("download from the snapshot: %q %v, want v1", b, err)
		}
		if b, err := getFile(t, a, w.ID, "/f.txt", ""); err != nil || b != "v2" {
			t.Errorf("download from the live tree: %q %v, want v2", b, err)
		}
		for _, p := range []string{"/etc-link/passwd", "/host-link"} {
			b, err := getFile(t, a, w.ID, p, snap.ID)
			if err == nil {
				t.Errorf("download of %s (a symlink out of the snapshot): %q, want refused", p, b)
			}
		}
		if _, _, err := a.ListFiles(ctx, w.ID, "/etc-link", client.ListFilesOptions{Snapshot: snap.ID}); err == nil {
			t.Errorf("listing through a symlink out of the snapshot worked")
		}
		ents, _, err = a.ListFiles(ctx, w.ID, "/", client.ListFilesOptions{Snapshot: snap.ID})
		must(t, err)
		if names := snapEntryNames(ents); !slices.Equal(names, []string{"etc-link", "f.txt", "host-link"}) {
			t.Errorf("snapshot listing %v", names)
		}
		info, err := a.SnapshotFileInfo(ctx, w.ID, snap.ID, "/f.txt")
		must(t, err)
		if info.Size != 2 {
			t.Errorf("snapshot file info %+v", info)
		}
		zb, err := getFile(t, a, w.ID, "/", snap.ID)
		must(t, err)
		zr, err := zip.NewReader(bytes.NewReader([]byte(zb)), int64(len(zb)))
		must(t, err)
		for _, f := range zr.File {
			if strings.Contains(f.Name, "link") && f.Mode().IsRegular() {
				t.Errorf("the snapshot's archive followed %s out of the workspace", f.Name)
			}
			if f.Name == "f.txt" {
				rc, err := f.Open()
				must(t, err)
				b, _ := io.ReadAll(rc)
				_ = rc.Close()
				if string(b) != "v1" {
					t.Errorf("f.txt in the snapshot's archive: %q", b)
				}
			}
		}
		// Writes never go to a snapshot.
		err = snapRaw(t, env, "PUT", "/v1/workspaces/"+w.ID+"/files/f.txt?snapshot="+snap.ID, map[string]any{"operation": "write", "contents": "x"})
		wantAPIError(t, "write with ?snapshot=", err, http.StatusBadRequest, "snapshot")
		err = snapRaw(t, env, "DELETE", "/v1/workspaces/"+w.ID+"/files/f.txt?snapshot="+snap.ID, nil)
		wantAPIError(t, "delete with ?snapshot=", err, http.StatusBadRequest, "snapshot")
		if b, _ := getFile(t, a, w.ID, "/f.txt", snap.ID); b != "v1" {
			t.Errorf("the snapshot changed: %q", b)
		}

		// A snapshot mounted into a sandbox is read-only.
		err = snapRaw(t, env, "POST", "/v1/sandboxes", map[string]any{"template": "base", "network": "none",
			"mounts": []map[string]any{{"workspaceId": w.ID, "snapshotId": snap.ID, "path": "/workspace", "readOnly": false}}})
		wantAPIError(t, "a snapshot mounted readOnly=false", err, http.StatusBadRequest, "mounts[0].readOnly")
		ro, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none", Resources: &client.Resources{Memory: "64MiB"},
			Mounts: []client.Mount{{WorkspaceID: w.ID, SnapshotID: snap.ID, Path: "/workspace"}}}, false)
		must(t, err)

		if len(ro.Mounts) != 1 || !ro.Mounts[0].ReadOnly || ro.Mounts[0].SnapshotID != snap.ID {
			t.Errorf("snapshot mount shown as %+v", ro.Mounts)
		}
		if code, out := shIn(t, a, ro.ID, "cat /workspace/f.txt"); code != 0 || out != "v1" {
			t.Errorf("cat in the snapshot mount: %d %q", code, out)
		}
		if code, out := shIn(t, a, ro.ID, "echo x > /workspace/new"); code == 0 || !strings.Contains(out, "Read-only file system") {
			t.Errorf("write into the snapshot mount: exit %d, %q; want Read-only file system", code, out)
		}
		err = a.DeleteSnapshot(ctx, w.ID, snap.ID)
		wantAPIError(t, "delete a mounted snapshot", err, http.StatusConflict, "")

		// Restore: refused while the sandbox mounts the workspace
		// read-write; forced, the sandbox is restarted on the restored tree.
		_, err = a.RestoreSnapshot(ctx, w.ID, snap.ID, false)
		wantAPIError(t, "restore under a read-write mount", err, http.StatusConflict, "")
		if b, _ := getFile(t, a, w.ID, "/f.txt", ""); b != "v2" {
			t.Errorf("a refused restore changed the workspace: %q", b)
		}
		res, err := a.RestoreSnapshot(ctx, w.ID, snap.ID, true)
		must(t, err)
		if !slices.Equal(res.RestartedSandboxes, []string{sb.ID}) {
			t.Errorf("restarted %v, want [%s] (not the snapshot's reader)", res.RestartedSandboxes, sb.ID)
		}
		if s, err := a.Sandbox(ctx, sb.ID); err != nil || s.Status != "running" {
			t.Errorf("sandbox after a forced restore: %+v %v", s, err)
		}
		if code, out := shIn(t, a, sb.ID, "cat /workspace/f.txt"); code != 0 || out != "v1" {
			t.Errorf("the running sandbox after the restore reads %d %q, want v1", code, out)
		}
		if b, _ := getFile(t, a, w.ID, "/f.txt", ""); b != "v1" {
			t.Errorf("API after the restore: %q, want v1", b)
		}
		if code, out := shIn(t, a, sb.ID, "echo v3 > /workspace/f.txt && cat /workspace/f.txt"); code != 0 || out != "v3\n" {
			t.Errorf("write in the restored tree: %d %q", code, out)
		}
		if u, err := env.Storage.Usage(ctx, w.ID); err != nil || u.Limit != 32*mib {
			t.Errorf("the restored tree's limit: %+v %v, want %d", u, err, 32*mib)
		}
		// No sandbox mounts it read-write: a plain restore works.
		must(t, a.DestroySandbox(ctx, sb.ID))
		res, err = a.RestoreSnapshot(ctx, w.ID, snap.ID, false)
		must(t, err)
		if len(res.RestartedSandboxes) != 0 {
			t.Errorf("restarted %v with no sandbox mounting the live tree", res.RestartedSandboxes)
		}

		// Clones diverge from their origin; the caller owns them; the
		// origin's quota comes along.
		_, member := env.Member(t, "cloner", "member", "files:read", "files:write")
		wantAPIError(t, "a member clones a workspace not granted", func() error {
			_, err := member.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "theirs"})
			return err
		}(), http.StatusNotFound, "")
		c1, err := a.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "copy", Slug: "copy"})
		must(t, err)
		if c1.QuotaBytes == nil || *c1.QuotaBytes != 32*mib || c1.ID == w.ID {
			t.Errorf("clone %+v: want its own id and the origin's quota", c1)
		}
		if u, err := env.Storage.Usage(ctx, c1.ID); err != nil || u.Limit != 32*mib {
			t.Errorf("the clone's kernel limit: %+v %v", u, err)
		}
		_, err = a.WriteFile(ctx, c1.ID, "/f.txt", "clone")
		must(t, err)
		if b, _ := getFile(t, a, w.ID, "/f.txt", ""); b != "v1" {
			t.Errorf("origin after the clone changed: %q", b)
		}
		if b, _ := getFile(t, a, c1.ID, "/f.txt", ""); b != "clone" {
			t.Errorf("clone: %q", b)
		}
		_, err = a.WriteFile(ctx, w.ID, "/f.txt", "origin")
		must(t, err)
		c2, err := a.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "from snapshot", SnapshotID: snap.ID})
		must(t, err)
		if b, _ := getFile(t, a, c2.ID, "/f.txt", ""); b != "v1" {
			t.Errorf("clone of the snapshot: %q, want v1", b)
		}
		_, err = a.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "copy", Slug: "copy"})
		wantAPIError(t, "a clone with a taken slug", err, http.StatusConflict, "slug")
		_, err = a.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "x", SnapshotID: "00000000-0000-0000-0000-000000000000"})
		wantAPIError(t, "a clone of an unknown snapshot", err, http.StatusNotFound, "snapshotId")

		// Scopes: files:read reads snapshots, only files:write changes them.
		_, reader := env.Member(t, "reader", "admin", "files:read")
		if l, err := reader.Snapshots(ctx, w.ID); err != nil || len(l) != 1 {
			t.Errorf("a files:read key lists snapshots: %v %v", l, err)
		}
		_, err = reader.CreateSnapshot(ctx, w.ID, "mine")
		wantAPIError(t, "files:read creates a snapshot", err, http.StatusForbidden, "")
		_, err = reader.RestoreSnapshot(ctx, w.ID, snap.ID, true)
		wantAPIError(t, "files:read restores a snapshot", err, http.StatusForbidden, "")
		err = reader.DeleteSnapshot(ctx, w.ID, snap.ID)
		wantAPIError(t, "files:read deletes a snapshot", err, http.StatusForbidden, "")
		_, err = reader.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "r"})
		wantAPIError(t, "files:read clones", err, http.StatusForbidden, "")

		// Delete: a snapshot no sandbox mounts goes, tree and row.
		must(t, a.DestroySandbox(ctx, ro.ID))
		must(t, a.DeleteSnapshot(ctx, w.ID, snap.ID))
		_, err = a.Snapshot(ctx, w.ID, snap.ID)
		wantAPIError(t, "a deleted snapshot", err, http.StatusNotFound, "")
		if _, err := os.Lstat(env.API.Workspaces.SnapshotDir(w.ID, snap.ID)); !os.IsNotExist(err) {
			t.Errorf("the deleted snapshot's tree: %v", err)
		}

		// A restart keeps pool, subvolumes, quotas and snapshots.
		keep, err := a.CreateSnapshot(ctx, w.ID, "keep")
		must(t, err)
		cfg := env.Config
		env.Stop(t)
		env2 := servertest.StartConfig(t, cfg)
		if !env2.StoragePlan.PoolExists || env2.StoragePlan.PoolFile != env.StoragePlan.PoolFile {
			t.Errorf("the restarted server's pool: %+v", env2.StoragePlan)
		}
		a2 := env2.Admin
		if b, err := getFile(t, a2, w.ID, "/f.txt", ""); err != nil || b != "origin" {
			t.Errorf("after the restart: %q %v", b, err)
		}
		if b, err := getFile(t, a2, w.ID, "/f.txt", keep.ID); err != nil || b != "origin" {
			t.Errorf("the snapshot after the restart: %q %v", b, err)
		}
		if u, err := env2.Storage.Usage(ctx, w.ID); err != nil || u.Limit != 32*mib {
			t.Errorf("the quota after the restart: %+v %v", u, err)
		}
		if l, err := a2.Snapshots(ctx, w.ID); err != nil || len(l) != 1 || l[0].ID != keep.ID {
			t.Errorf("snapshots after the restart: %+v %v", l, err)
		}

		// Deleting a workspace deletes its snapshots.
		must(t, a2.DeleteWorkspace(ctx, w.ID, false))
		if _, err := os.Lstat(env2.API.Workspaces.SnapshotDir(w.ID, keep.ID)); !os.IsNotExist(err) {
			t.Errorf("a deleted workspace's snapshot tree: %v", err)
		}
		var n int
		must(t, env2.DB.GetContext(ctx, &n, env2.DB.Rebind(`SELECT COUNT(*) FROM snapshots WHERE workspace_id = ?`), w.ID))
		if n != 0 {
			t.Errorf("a deleted workspace left %d snapshot rows", n)
		}
	})
}

// On the dir driver, snapshots and clones answer 501 not_supported, and
// ?snapshot= on file reads too.
func TestDirStorageHasNoSnapshots(t *testing.T) {
	t.Parallel()
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		a := env.Admin
		if env.Storage.Name() != "dir" {
			t.Skipf("the data directory is on %s", env.Storage.Name())
		}
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "plain"})
		must(t, err)
		sid := "00000000-0000-0000-0000-000000000000"
		checks := map[string]error{}
		_, checks["create"] = a.CreateSnapshot(ctx, w.ID, "s")
		_, checks["list"] = a.Snapshots(ctx, w.ID)
		_, checks["get"] = a.Snapshot(ctx, w.ID, sid)
		checks["delete"] = a.DeleteSnapshot(ctx, w.ID, sid)
		_, checks["restore"] = a.RestoreSnapshot(ctx, w.ID, sid, false)
		_, checks["clone"] = a.CloneWorkspace(ctx, w.ID, client.CloneRequest{Name: "c"})
		_, _, checks["list files"] = a.ListFiles(ctx, w.ID, "/", client.ListFilesOptions{Snapshot: sid})
		_, checks["download"] = a.Download(ctx, w.ID, "/", client.DownloadOptions{Snapshot: sid})
		for what, err := range checks {
			wantAPIError(t, what, err, http.StatusNotImplemented, "")
			if client.ErrorCode(err) != "not_supported" {
				t.Errorf("%s: code %q, want not_supported", what, client.ErrorCode(err))
			}
		}
		_, err = a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Mounts: []client.Mount{{WorkspaceID: w.ID, SnapshotID: sid, Path: "/workspace"}}}, false)
		wantAPIError(t, "a snapshot mount on dir", err, http.StatusNotImplemented, "mounts[0].snapshotId")
	})
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func snapEntryNames(es []client.FileEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	slices.Sort(out)
	return out
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
