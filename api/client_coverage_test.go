package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// TestClientCoversEveryRoute calls every client method against a stand-in
// server built from the real route table and fails for any route that no
// client method reaches.
func TestClientCoversEveryRoute(t *testing.T) {
	env := servertest.Start(t, "")
	var mu sync.Mutex
	hit := map[string]bool{}
	r := chi.NewRouter()
	for _, rt := range env.API.Routes() {
		name := rt.Method + " " + rt.Pattern
		r.Method(rt.Method, rt.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			hit[name] = true
			mu.Unlock()
			if strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
				w.Header().Set("Content-Type", "text/event-stream")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"data":null,"meta":{"requestId":"req_x"}}`))
		}))
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	c := client.New(srv.URL, "key")
	ctx := context.Background()
	none := func(client.Event) error { return nil }
	s := "x"
	calls := []func() error{
		func() error { return c.Health(ctx) },
		func() error { _, err := c.Ready(ctx); return err },
		func() error { _, err := c.Metrics(ctx); return err },
		func() error { _, err := c.OpenAPI(ctx); return err },
		func() error { _, err := c.Me(ctx); return err },
		func() error { _, err := c.SignIn(ctx); return err },
		func() error { _, err := c.CurrentSession(ctx); return err },
		func() error { return c.SignOut(ctx) },
		func() error { _, err := c.Members(ctx); return err },
		func() error { _, err := c.Member(ctx, "u"); return err },
		func() error { _, err := c.AddMember(ctx, "n", "", "member"); return err },
		func() error { _, err := c.SetMemberRole(ctx, "u", "admin"); return err },
		func() error { return c.RemoveMember(ctx, "u") },
		func() error { _, err := c.APIKeys(ctx, false); return err },
		func() error { _, err := c.CreateAPIKey(ctx, client.KeyRequest{Name: "k"}); return err },
		func() error { _, err := c.RevokeAPIKey(ctx, "k"); return err },
		func() error { _, err := c.Workspaces(ctx, false); return err },
		func() error { _, err := c.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "w"}); return err },
		func() error { _, err := c.Workspace(ctx, "w"); return err },
		func() error { _, err := c.UpdateWorkspace(ctx, "w", map[string]any{"name": "n"}); return err },
		func() error { return c.DeleteWorkspace(ctx, "w", false) },
		func() error { _, err := c.WorkspaceUsage(ctx, "w"); return err },
		func() error { _, err := c.WorkspaceAccess(ctx, "w"); return err },
		func() error { _, err := c.SetWorkspaceAccess(ctx, "w", nil); return err },
		func() error { _, err := c.CreateSnapshot(ctx, "w", "n"); return err },
		func() error { _, err := c.Snapshots(ctx, "w"); return err },
		func() error { _, err := c.Snapshot(ctx, "w", "s"); return err },
		func() error { return c.DeleteSnapshot(ctx, "w", "s") },
		func() error { _, err := c.RestoreSnapshot(ctx, "w", "s", false); return err },
		func() error { _, err := c.CloneWorkspace(ctx, "w", client.CloneRequest{Name: "n"}); return err },
		func() error { _, _, err := c.ListFiles(ctx, "w", "/", client.ListFilesOptions{}); return err },
		func() error { _, _, err := c.ListFiles(ctx, "w", "/d", client.ListFilesOptions{}); return err },
		func() error { _, err := c.WorkspaceSpace(ctx, "w"); return err },
		func() error { _, err := c.FileInfo(ctx, "w", "/f"); return err },
		func() error { _, err := c.CreateFile(ctx, "w", "/", "f", "file", &s); return err },
		func() error { _, err := c.CreateFile(ctx, "w", "/d", "f", "file", &s); return err },
		func() error { _, err := c.UploadAs(ctx, "w", "/", "f", strings.NewReader("x")); return err },
		func() error { _, err := c.UploadAs(ctx, "w", "/d", "f", strings.NewReader("x")); return err },
		func() error { _, err := c.WriteFile(ctx, "w", "/f", "x"); return err },
		func() error { _, err := c.PutFile(ctx, "w", "/f", strings.NewReader("x"), 1); return err },
		func() error { _, err := c.BatchFiles(ctx, "w", "copy", []string{"/f"}, "/d", false); return err },
		func() error { return c.DeleteFile(ctx, "w", "/f") },
		func() error { _, err := c.DeleteFiles(ctx, "w", []string{"/f"}); return err },
		func() error {
			resp, err := c.Download(ctx, "w", "/f", client.DownloadOptions{})
			if err == nil {
				closeBody(resp)
			}
			return err
		},
		func() error { return c.WatchFiles(ctx, "w", "/", nil, func(client.FileEvent) error { return nil }) },
		func() error { _, err := c.Templates(ctx); return err },
		func() error { _, err := c.Template(ctx, "base"); return err },
		func() error { return c.BuildTemplate(ctx, "base", nil) },
		func() error {
			_, err := c.CreateSandbox(ctx, client.SandboxRequest{Template: "base"}, false)
			return err
		},
		func() error { _, _, err := c.Sandboxes(ctx, client.SandboxFilter{}); return err },
		func() error { _, err := c.Sandbox(ctx, "s"); return err },
		func() error { return c.DestroySandbox(ctx, "s") },
		func() error {
			_, err := c.AttachMount(ctx, "s", client.Mount{WorkspaceID: "w", Path: "/workspace/w"})
			return err
		},
		func() error { _, err := c.DetachMount(ctx, "s", "/workspace/w"); return err },
		func() error { _, err := c.Exec(ctx, "s", client.ExecRequest{Command: "true"}); return err },
		func() error { return c.ExecStream(ctx, "s", client.ExecRequest{Command: "true"}, none) },
		func() error { _, err := c.Terminal(ctx, "s", client.TerminalOptions{}); return err },
		func() error {
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
				resp, err := c.PortRequest(ctx, m, "s", 8080, "/x", nil, nil)
				if err != nil {
					return err
				}
				_ = resp.Body.Close()
			}
			return nil
		},
		func() error { _, err := c.UpsertAgent(ctx, client.AgentRequest{Slug: "a"}); return err },
		func() error { _, err := c.Agents(ctx, false); return err },
		func() error { _, err := c.Agent(ctx, "a"); return err },
		func() error { return c.DeleteAgent(ctx, "a") },
		func() error { _, err := c.RunAgent(ctx, "a", client.RunRequest{Prompt: "p"}); return err },
		func() error { _, err := c.RunNamed(ctx, client.RunRequest{Agent: "a", Prompt: "p"}); return err },
		func() error { _, err := c.GetRun(ctx, "r"); return err },
		func() error { _, err := c.RunEvents(ctx, "r"); return err },
		func() error { _, err := c.CancelRun(ctx, "r"); return err },
		func() error { _, _, err := c.Threads(ctx, "", 0, ""); return err },
		func() error { _, err := c.Thread(ctx, "t"); return err },
		func() error { _, err := c.ThreadEvents(ctx, "t"); return err },
		func() error { _, err := c.UpdateThread(ctx, "t", &s, nil); return err },
		func() error { return c.DeleteThread(ctx, "t") },
	}
	for _, a := range []string{"pause", "resume", "stop", "start", "keepalive"} {
		calls = append(calls, func() error { _, err := c.SandboxAction(ctx, "s", a); return err })
	}
	for _, call := range calls {
		_ = call() // answers are stand-ins; only the routes reached count
	}
	for _, rt := range env.API.Routes() {
		if name := rt.Method + " " + rt.Pattern; !hit[name] {
			t.Errorf("no client method calls %s", name)
		}
	}
}
