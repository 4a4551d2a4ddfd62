package api_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/server/servertest"
)

// cutOff checks that sandbox id was stopped because its owner lost access
// to workspace slug: status and reason, nothing left running in the engine,
// and no way back for anyone (403 forbidden, whoever asks).
func cutOff(t *testing.T, env *servertest.Env, id, slug string, keys ...string) {
	t.Helper()
	s, err := env.Admin.Sandbox(context.Background(), id)
	must(t, err)
	if s.Status != "stopped" || !strings.Contains(s.StatusReason, `workspace "`+slug+`"`) {
		t.Errorf("sandbox after access was lost: %s %q, want stopped naming workspace %q", s.Status, s.StatusReason, slug)
	}
	if st := engineState(t, env, id); st == runtime.StateRunning || st == runtime.StatePaused {
		t.Errorf("the container still %s: its processes can still reach the workspace", st)
	}
	for _, key := range append(keys, env.AdminKey) {
		for _, op := range []struct {
			path string
			body any
		}{{"/start", nil}, {"/resume", nil}, {"/keepalive", nil}, {"/exec", map[string]any{"command": "true"}}} {
			st, _, code, msg := raw(t, env, key, "POST", "/v1/sandboxes/"+id+op.path, op.body)
			if st != 403 || code != "forbidden" || !strings.Contains(msg, slug) {
				t.Errorf("%s after access was lost: %d %s %q, want 403 forbidden naming %q", op.path, st, code, msg, slug)
			}
		}
	}
	if st := engineState(t, env, id); st == runtime.StateRunning || st == runtime.StatePaused {
		t.Errorf("a refused operation left the container %s", st)
	}
}

// Losing access to a mounted workspace stops the owner's sandboxes before the
// revoking request answers, whatever took the access away (a grant revoked,
// a removal, a demotion); nothing brings the mount back until access is given
// back. An agent run executing in such a sandbox fails and says why.
func TestAccessLossStopsSandboxes(t *testing.T) {
	t.Parallel()
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		a := env.Admin
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "revocable"})
		must(t, err)
		mount := []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}
		hostDir := env.API.Workspaces.Dir(w.ID)

		t.Run("grant revoked", func(t *testing.T) {
			m, mc := env.Member(t, "grantee", "member")
			_, err := a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
			must(t, err)
			running := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			paused := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			_, err = mc.SandboxAction(ctx, paused.ID, "pause")
			must(t, err)
			sh(t, mc, running.ID, "echo before > /workspace/revoked.txt")

			// A command writing into the workspace when the grant goes (its
			// timeout bounds the test if the cut-off does not happen).
			started := make(chan struct{})
			var execErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				execErr = mc.ExecStream(ctx, running.ID, client.ExecRequest{
					Command: "echo started; while :; do echo tick >> /workspace/ticks; sleep 0.05; done", Timeout: 120000,
				}, func(e client.Event) error {
					if e.Name == "stdout" && strings.Contains(e.Data, "started") {
						close(started)
					}
					if e.Name == "error" {
						return &streamError{e.Data}
					}
					return nil
				})
			})
			<-started

			_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{})
			must(t, err)
			// No waiting: the revoking request answered after the stop.
			cutOff(t, env, running.ID, w.Slug, mc.Key)
			cutOff(t, env, paused.ID, w.Slug, mc.Key)
			wg.Wait()
			if execErr == nil || !strings.Contains(execErr.Error(), "lost access") {
				t.Errorf("the exec in flight ended with %v, want the access-loss reason", execErr)
			}
			// Nothing writes into the workspace any more: the loop is gone
			// with the container (checked above), so the file stays put.
			before, err := os.ReadFile(filepath.Join(hostDir, "ticks"))
			must(t, err)
			must(t, env.Sandboxes.Reconcile(ctx)) // the backstop agrees and changes nothing
			after, err := os.ReadFile(filepath.Join(hostDir, "ticks"))
			must(t, err)
			if len(after) != len(before) {
				t.Errorf("the workspace is still written after the cut-off: %d → %d bytes", len(before), len(after))
			}

			// Access given back: start works, and so does the mount.
			_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
			must(t, err)
			for _, id := range []string{running.ID, paused.ID} {
				s, err := mc.SandboxAction(ctx, id, "start")
				if err != nil || s.Status != "running" || s.StatusReason != "" {
					t.Fatalf("start after the grant came back: %v %+v", err, s)
				}
			}
			if out := sh(t, mc, running.ID, "cat /workspace/revoked.txt"); out != "before\n" {
				t.Errorf("the workspace after the grant came back: %q", out)
			}
		})

		t.Run("member removed", func(t *testing.T) {
			m, mc := env.Member(t, "leaver", "member")
			_, err := a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
			must(t, err)
			s := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			must(t, a.RemoveMember(ctx, m.ID))
			cutOff(t, env, s.ID, w.Slug)
			got, err := a.Sandbox(ctx, s.ID)
			must(t, err)
			if !strings.Contains(got.StatusReason, "no longer a member") {
				t.Errorf("reason %q does not say the owner was removed", got.StatusReason)
			}
		})

		t.Run("admin demoted", func(t *testing.T) {
			m, mc := env.Member(t, "ex-admin", "admin")
			s := newSandbox(t, mc, client.SandboxRequest{Mounts: mount}) // an admin needs no grant
			_, err := a.SetMemberRole(ctx, m.ID, "member")
			must(t, err)
			cutOff(t, env, s.ID, w.Slug, mc.Key)
			// Promoted again: the sandbox may run again.
			_, err = a.SetMemberRole(ctx, m.ID, "admin")
			must(t, err)
			if got, err := mc.SandboxAction(ctx, s.ID, "start"); err != nil || got.Status != "running" {
				t.Errorf("start after the promotion: %v", err)
			}
		})

		t.Run("behind the server's back", func(t *testing.T) {
			// A grant removed by another path (or while the server was
			// down): the reconciler's pass stops the sandbox.
			m, mc := env.Member(t, "bypassed", "member")
			_, err := a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
			must(t, err)
			s := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			s2 := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			_, err = env.DB.Exec(env.DB.Rebind(`DELETE FROM workspace_access WHERE user_id = ?`), m.ID)
			must(t, err)
			// The next exec finds out first, and cuts the sandbox off.
			if _, err := mc.Exec(ctx, s2.ID, client.ExecRequest{Command: "true"}); client.ErrorCode(err) != "forbidden" {
				t.Errorf("exec after the grant vanished: %v, want forbidden", err)
			}
			cutOff(t, env, s2.ID, w.Slug, mc.Key)
			must(t, env.Sandboxes.Reconcile(ctx))
			cutOff(t, env, s.ID, w.Slug, mc.Key)
		})

		t.Run("agent run", func(t *testing.T) {
			m, mc := env.Member(t, "agent-owner", "member")
			_, err := a.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
			must(t, err)
			s := newSandbox(t, mc, client.SandboxRequest{Mounts: mount})
			_, err = mc.UpsertAgent(ctx, client.AgentRequest{Slug: "looper", ExecutionMode: "in_sandbox", Sandbox: s.Name,
				Command: agentSh("echo started; while :; do sleep 0.05; done"), Timeout: 120000})
			must(t, err)
			started := make(chan struct{})
			var result client.Run
			var wg sync.WaitGroup
			wg.Go(func() {
				err := mc.RunAgentStream(ctx, "looper", client.RunRequest{Prompt: "go"}, func(e client.Event) error {
					switch e.Name {
					case "stdout":
						if strings.Contains(e.Data, "started") {
							close(started)
						}
					case "result":
						return json.Unmarshal([]byte(e.Data), &result)
					}
					return nil
				})
				if err != nil {
					t.Errorf("run stream: %v", err)
				}
			})
			<-started
			_, err = a.SetWorkspaceAccess(ctx, w.ID, []string{})
			must(t, err)
			wg.Wait()
			if result.Status != "failed" || !strings.Contains(result.StatusReason, "lost access to workspace") {
				t.Errorf("the run in the cut-off sandbox: %+v, want failed because access was lost", result)
			}
			cutOff(t, env, s.ID, w.Slug, mc.Key)
			// A new run is refused with the same reason.
			r, err := mc.RunAgent(ctx, "looper", client.RunRequest{Prompt: "again"})
			if err == nil && (r.Status != "failed" || !strings.Contains(r.StatusReason, "lost access")) {
				t.Errorf("a run after the cut-off: %+v", r)
			}
		})
	})
}

type streamError struct{ data string }

func (e *streamError) Error() string { return e.data }
