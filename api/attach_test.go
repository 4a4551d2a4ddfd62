package api_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// Attaching a workspace to a running sandbox: a process that runs sees
// its files appear and, once detached, vanish, and keeps running; a
// read-only mount refuses writes; an attached mount survives stop/start;
// the checks of a create apply (400, 403, 404, 409).
func TestAttachMounts(t *testing.T) {
	t.Parallel()
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := testctx.Context(t)
		a := env.Admin
		base, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "att-base"})
		must(t, err)
		live, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "att-live"})
		must(t, err)
		must(t, os.WriteFile(filepath.Join(env.API.Workspaces.Dir(live.ID), "hello"), []byte("hi\n"), 0o644))
		s := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: base.ID, Path: "/workspace/base"}}})

		// A process that waits for the file, then for it to go.
		started, seen, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var out strings.Builder
		var execErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(finished)
			execErr = a.ExecStream(ctx, s.ID, client.ExecRequest{
				Command: "echo started; until [ -e /workspace/att/hello ]; do sleep 0.02; done; echo seen $(cat /workspace/att/hello); " +
					"while [ -e /workspace/att/hello ]; do sleep 0.02; done; echo gone", Timeout: 120000,
			}, func(e client.Event) error {
				if e.Name == "stdout" {
					out.WriteString(e.Data)
					if strings.Contains(e.Data, "started") {
						close(started)
					}
					if strings.Contains(e.Data, "seen") {
						close(seen)
					}
				}
				return nil
			})
		})
		<-started
		got, err := a.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: live.ID, Path: "/workspace/att"})
		must(t, err)
		if len(got.Mounts) != 2 || !got.HasWritableWorkspaceMount {
			t.Errorf("mounts after attach: %+v", got.Mounts)
		}
		if o := sh(t, a, s.ID, "echo w > /workspace/att/from-sandbox && cat /workspace/att/hello"); o != "hi\n" {
			t.Errorf("attached workspace reads %q", o)
		}
		if _, err := os.Stat(filepath.Join(env.API.Workspaces.Dir(live.ID), "from-sandbox")); err != nil {
			t.Errorf("a write in the attached mount did not reach the workspace: %v", err)
		}

		// Read-only, a second workspace.
		ro, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "att-ro"})
		must(t, err)
		_, err = a.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: ro.ID, Path: "/workspace/ro", ReadOnly: true})
		must(t, err)
		if r := run(t, a, s.ID, client.ExecRequest{Command: "touch /workspace/ro/x"}); r.ExitCode == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("write into a read-only attached mount: exit %d %q, want EROFS", r.ExitCode, r.Stderr)
		}

		// Detach: the process sees the file go and ends by itself.
		select {
		case <-seen:
		case <-finished:
			t.Fatalf("the running process ended without seeing the attached file: %v, output %q", execErr, out.String())
		}
		got, err = a.DetachMount(ctx, s.ID, "/workspace/att")
		must(t, err)
		if len(got.Mounts) != 2 {
			t.Errorf("mounts after detach: %+v", got.Mounts)
		}
		wg.Wait()
		if execErr != nil || !strings.Contains(out.String(), "seen hi") || !strings.Contains(out.String(), "gone") {
			t.Errorf("the running process: %v, output %q; want it to see the file appear and go", execErr, out.String())
		}
		if o := sh(t, a, s.ID, "ls -A /workspace/att"); o != "" {
			t.Errorf("after detach /workspace/att holds %q", o)
		}

		// Stop and start: the attached mount comes back, still read-only.
		must(t, os.WriteFile(filepath.Join(env.API.Workspaces.Dir(ro.ID), "kept"), []byte("k\n"), 0o644))
		_, err = a.SandboxAction(ctx, s.ID, "stop")
		must(t, err)
		_, err = a.SandboxAction(ctx, s.ID, "start")
		must(t, err)
		if o := sh(t, a, s.ID, "cat /workspace/ro/kept"); o != "k\n" {
			t.Errorf("after stop/start the attached mount reads %q", o)
		}
		if r := run(t, a, s.ID, client.ExecRequest{Command: "touch /workspace/ro/x"}); r.ExitCode == 0 {
			t.Errorf("after stop/start the read-only mount is writable")
		}

		// The checks of a create.
		for _, c := range []struct {
			name string
			body any
			path string
			want int
			code string
		}{
			{"outside /workspace", map[string]any{"workspaceId": live.ID, "path": "/etc/x"}, "", 400, "invalid_request"},
			{"inside a mount", map[string]any{"workspaceId": live.ID, "path": "/workspace/base/sub"}, "", 400, "invalid_request"},
			{"holding a mount", map[string]any{"workspaceId": live.ID, "path": "/workspace"}, "", 400, "invalid_request"},
			{"taken", map[string]any{"workspaceId": live.ID, "path": "/workspace/ro"}, "", 409, "conflict"},
			{"no workspace", map[string]any{"workspaceId": "ws_nope", "path": "/workspace/n"}, "", 404, "not_found"},
			{"unknown field", map[string]any{"workspaceId": live.ID, "path": "/workspace/n", "x": 1}, "", 400, "invalid_request"},
		} {
			st, _, code, msg := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes/"+s.ID+"/mounts", c.body)
			if st != c.want || code != c.code {
				t.Errorf("attach %s: %d %s %q, want %d %s", c.name, st, code, msg, c.want, c.code)
			}
		}
		// A symlink planted by the sandbox is not followed.
		sh(t, a, s.ID, "ln -s /etc /workspace/evil")
		if st, _, code, msg := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes/"+s.ID+"/mounts", map[string]any{"workspaceId": live.ID, "path": "/workspace/evil/x"}); st != 409 {
			t.Errorf("attach through a symlink: %d %s %q, want 409", st, code, msg)
		}
		if r := run(t, a, s.ID, client.ExecRequest{Command: "test -e /etc/x"}); r.ExitCode == 0 {
			t.Errorf("attach through a symlink created /etc/x")
		}
		if st, _, code, msg := raw(t, env, env.AdminKey, "DELETE", "/v1/sandboxes/"+s.ID+"/mounts?path=/workspace/base", nil); st != 400 || code != "invalid_request" {
			t.Errorf("detach of a create mount: %d %s %q, want 400", st, code, msg)
		}
		if st, _, code, msg := raw(t, env, env.AdminKey, "DELETE", "/v1/sandboxes/"+s.ID+"/mounts?path=/workspace/none", nil); st != 404 {
			t.Errorf("detach of no mount: %d %s %q, want 404", st, code, msg)
		}
		// A key that may only read files cannot attach writable.
		_, rc := env.Member(t, "att-reader", "admin", "sandbox:*", "files:read")
		var he *client.Error
		if _, err := rc.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: live.ID, Path: "/workspace/w"}); !errors.As(err, &he) || he.Status != 403 {
			t.Errorf("writable attach with files:read only: %v, want 403", err)
		}
		if _, err := rc.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: live.ID, Path: "/workspace/r", ReadOnly: true}); err != nil {
			t.Errorf("read-only attach with files:read: %v", err)
		}
	})
}

// Revoking the owner's access to an attached workspace detaches it: the
// sandbox keeps running without it.
func TestAttachedMountAccessLoss(t *testing.T) {
	t.Parallel()
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := testctx.Context(t)
		a := env.Admin
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "att-revocable"})
		must(t, err)
		must(t, os.WriteFile(filepath.Join(env.API.Workspaces.Dir(w.ID), "secret"), []byte("s\n"), 0o644))
		m, mc := env.Member(t, "att-grantee", "member")
		_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
		must(t, err)
		s := newSandbox(t, mc, client.SandboxRequest{})
		_, err = mc.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: w.ID, Path: "/workspace/p/shared"})
		must(t, err)
		// The sandbox moves the mount away by renaming its parent: the
		// detach must find it all the same.
		if o := sh(t, mc, s.ID, "mv /workspace/p /workspace/q && cat /workspace/q/shared/secret"); o != "s\n" {
			t.Fatalf("attached mount reads %q", o)
		}
		_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{})
		must(t, err)
		// No waiting: the revoking request answered after the detach.
		got, err := mc.Sandbox(ctx, s.ID)
		must(t, err)
		if got.Status != "running" || len(got.Mounts) != 0 {
			t.Errorf("after the revoke: %s with mounts %+v, want running with none", got.Status, got.Mounts)
		}
		if o := sh(t, mc, s.ID, "ls -A /workspace/q/shared; grep -c "+w.ID+" /proc/self/mountinfo || true"); o != "0\n" {
			t.Errorf("after the revoke the sandbox still sees %q", o)
		}
		// Given back, it can be attached again.
		_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
		must(t, err)
		_, err = mc.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: w.ID, Path: "/workspace/shared"})
		must(t, err)
	})
}
