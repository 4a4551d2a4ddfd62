package api_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace"
)

// wantRefused fails unless err is an API error with status want.
func wantRefused(t testing.TB, what string, err error, want int) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != want {
		t.Errorf("%s: want %d, got %v", what, want, err)
		return
	}
	if strings.Contains(ce.Message, os.TempDir()) || strings.Contains(ce.Message, "/workspaces/") {
		t.Errorf("%s: the message shows a host path: %q", what, ce.Message)
	}
}

// TestNestedMountPointsPinned: the mount point of a nested mount (W2 at
// /workspace/a/priv over W at /workspace) and the directory leading to it
// cannot be moved, replaced or deleted, through the file API or from
// another sandbox writing W, while the sandbox exists; a symlink found there
// at a start refuses the start; destroying the sandbox frees them.
func TestNestedMountPointsPinned(t *testing.T) {
	t.Parallel()
	servertest.Engines(t, testNestedMountPointsPinned)
}

func testNestedMountPointsPinned(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	newWS := func(name string) string {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: name})
		must(t, err)
		return w.ID
	}
	dir := func(ws string) string { return filepath.Join(env.Config.DataDir, "workspaces", ws) }
	w, w2 := newWS("outer"), newWS("inner")
	must(t, os.WriteFile(filepath.Join(dir(w2), "who"), []byte("inner"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir(w), "a"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir(w), "a", "keep"), []byte("user data"), 0o644))
	owner := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{
		{WorkspaceID: w, Path: "/workspace"}, {WorkspaceID: w2, Path: "/workspace/a/priv"},
	}})
	other := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w, Path: "/workspace"}}})

	t.Run("file API", func(t *testing.T) {
		_, err := a.RenameFile(ctx, w, "/a/priv", "x", false)
		wantRefused(t, "rename the mount point", err, 409)
		_, err = a.RenameFile(ctx, w, "/a", "b", false)
		wantRefused(t, "rename a directory leading to it", err, 409)
		wantRefused(t, "delete the mount point", a.DeleteFile(ctx, w, "/a/priv"), 409)
		wantRefused(t, "delete a directory leading to it", a.DeleteFile(ctx, w, "/a"), 409)
		wantRefused(t, "delete a file next to it", a.DeleteFile(ctx, w, "/a/keep"), 409)
		if b, err := os.ReadFile(filepath.Join(dir(w), "a", "keep")); err != nil || string(b) != "user data" {
			t.Errorf("a refused delete touched a file next to the mount point: %q %v", b, err)
		}
		_, err = a.CreateFile(ctx, w, "/", "priv", "directory", nil)
		must(t, err)
		_, err = a.MoveFile(ctx, w, "/priv", "/a", true)
		wantRefused(t, "move a directory over the mount point", err, 409)
		_, err = a.CopyFile(ctx, w, "/priv", "/a", true)
		wantRefused(t, "copy a directory over the mount point", err, 409)
		_, err = a.WriteFile(ctx, w, "/a/priv/hidden", "x")
		wantRefused(t, "write under the mount point", err, 409)
		_, err = a.WriteFile(ctx, w, "/a/note", "x")
		wantRefused(t, "write next to the mount point", err, 409)
		_, err = a.CopyFile(ctx, w, "/priv", "/a", false)
		wantRefused(t, "copy next to the mount point", err, 409)
		if ents, err := os.ReadDir(filepath.Join(dir(w), "a")); err != nil || len(ents) != 2 {
			t.Errorf("refused operations left entries next to the mount point: %v %v", ents, err)
		}
		if _, err := os.Lstat(filepath.Join(dir(w), "a", "priv")); err != nil {
			t.Fatalf("the mount point is gone: %v", err)
		}
	})

	t.Run("another sandbox", func(t *testing.T) {
		for _, cmd := range []string{
			"mv /workspace/a/priv /workspace/x",
			"mv /workspace/a /workspace/b",
			"rm -rf /workspace/a",
			"rmdir /workspace/a/priv",
			"mkdir -p /workspace/y && mv -T /workspace/y /workspace/a/priv",
			"touch /workspace/a/priv/hidden",
			"touch /workspace/a/next",
		} {
			if r := run(t, a, other.ID, client.ExecRequest{Command: cmd}); r.ExitCode == 0 {
				t.Errorf("%q succeeded in another sandbox", cmd)
			}
		}
		sh(t, a, owner.ID, "echo mine > /workspace/a/priv/written")
		if b, err := os.ReadFile(filepath.Join(dir(w2), "written")); err != nil || string(b) != "mine\n" {
			t.Errorf("the owner's write missed the inner workspace: %q %v", b, err)
		}
		if out := sh(t, a, owner.ID, "cat /workspace/a/priv/who"); out != "inner" {
			t.Errorf("the owner reads %q at the mount point", out)
		}
	})

	t.Run("symlink at start", func(t *testing.T) {
		_, err := a.SandboxAction(ctx, owner.ID, "stop")
		must(t, err)
		// Pins hold while the sandbox is stopped; take them off as a
		// filesystem without them (or an older berth) would have, and plant
		// a symlink where the mount point was.
		mp := filepath.Join(dir(w), "a", "priv")
		must(t, workspace.UnpinTree(dir(w)))
		must(t, os.Remove(mp))
		must(t, os.Symlink("/etc", mp))
		_, err = a.SandboxAction(ctx, owner.ID, "start")
		wantRefused(t, "start over a symlinked mount point", err, 409)
		if st := status(t, a, owner.ID); st != "stopped" {
			t.Errorf("after the refused start the sandbox is %s", st)
		}
		if target, err := os.Readlink(mp); err != nil || target != "/etc" {
			t.Errorf("the symlink was not left alone: %q %v", target, err)
		}
		must(t, os.Remove(mp))
		_, err = a.SandboxAction(ctx, owner.ID, "start")
		must(t, err)
		if out := sh(t, a, owner.ID, "cat /workspace/a/priv/who"); out != "inner" {
			t.Errorf("after the restart the owner reads %q", out)
		}
		if r := run(t, a, other.ID, client.ExecRequest{Command: "mv /workspace/a/priv /workspace/x"}); r.ExitCode == 0 {
			t.Errorf("the restart did not pin the mount point again")
		}
	})

	t.Run("destroy frees", func(t *testing.T) {
		must(t, a.DestroySandbox(ctx, owner.ID))
		must(t, a.DeleteFile(ctx, w, "/a"))
		must(t, a.DestroySandbox(ctx, other.ID))
		must(t, a.DeleteWorkspace(ctx, w, false))
	})
}

// TestNestedMountPointInTheWay: a file or a symlink where a nested mount
// needs its mount point refuses the create with 409 (not a 500 from the
// engine) and leaves it alone; nothing is created.
func TestNestedMountPointInTheWay(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "outer"})
	must(t, err)
	w2, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "inner"})
	must(t, err)
	dir := filepath.Join(env.Config.DataDir, "workspaces", w.ID)
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("user data"), 0o644))
	must(t, os.Symlink("/etc", filepath.Join(dir, "link")))
	must(t, os.Symlink("file", filepath.Join(dir, "flink")))
	for _, p := range []string{"/workspace/file", "/workspace/file/below", "/workspace/link", "/workspace/link/below", "/workspace/flink"} {
		_, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}, Mounts: []client.Mount{
			{WorkspaceID: w.ID, Path: "/workspace"}, {WorkspaceID: w2.ID, Path: p},
		}}, false)
		wantRefused(t, "mount at "+p, err, 409)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "user data" {
		t.Errorf("the file in the way changed: %q %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "/etc" {
		t.Errorf("the symlink in the way changed: %q %v", target, err)
	}
	// Nesting creates and pins the mount point in the enclosing workspace:
	// a reader of it may not.
	_, reader := env.Member(t, "reader", "admin", "sandbox:create", "sandbox:read", "files:read")
	_, err = reader.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}, Mounts: []client.Mount{
		{WorkspaceID: w.ID, Path: "/workspace", ReadOnly: true}, {WorkspaceID: w2.ID, Path: "/workspace/new", ReadOnly: true},
	}}, false)
	wantRefused(t, "nested mount by a reader of the enclosing workspace", err, 403)
	if _, err := os.Lstat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("the refused create made its mount point: %v", err)
	}
	if sbs, _, err := a.Sandboxes(ctx, client.SandboxFilter{All: true}); err != nil || len(sbs) != 0 {
		t.Errorf("refused creates left sandboxes: %v %v", sbs, err)
	}
	if cs := containers(t, env); len(cs) != 0 {
		t.Errorf("refused creates left containers: %v", cs)
	}
}
