package api_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/client"
)

// The sandbox and template routes of the authorization matrix. Sandboxes are
// owned by their creator: members, granted a workspace or not, get 404 on the
// admin's sandbox. The admin's sandbox is shared by the routes of one fixture
// and brought into the state each route needs before every call (a call that
// is refused leaves it as it was), so the matrix makes only a handful of
// containers.
func init() { addCases(sandboxCases) }

var sandboxCases = map[string]authCase{
	"POST /v1/sandboxes": {func(t *testing.T, f *fixture) (string, any) {
		needEngine(t, f.env)
		return "/v1/sandboxes", smallSandbox()
	}, 201, 201, 201},
	"GET /v1/sandboxes":                 {fixed("/v1/sandboxes", nil), 200, 200, 200},
	"GET /v1/sandboxes/{id}":            {sandboxIn("running", ""), 404, 404, 200},
	"DELETE /v1/sandboxes/{id}":         {sandboxIn("running", ""), 404, 404, 200},
	"POST /v1/sandboxes/{id}/pause":     {sandboxIn("running", "/pause"), 404, 404, 200},
	"POST /v1/sandboxes/{id}/resume":    {sandboxIn("paused", "/resume"), 404, 404, 200},
	"POST /v1/sandboxes/{id}/stop":      {sandboxIn("running", "/stop"), 404, 404, 200},
	"POST /v1/sandboxes/{id}/start":     {sandboxIn("stopped", "/start"), 404, 404, 200},
	"POST /v1/sandboxes/{id}/keepalive": {sandboxIn("running", "/keepalive"), 404, 404, 200},
	"POST /v1/sandboxes/{id}/mounts": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/sandboxes/" + adminSandbox(t, f, "running") + "/mounts", map[string]any{"workspaceId": f.ws, "path": fmt.Sprintf("/workspace/authz-%d", attachN.Add(1)), "readOnly": true}
	}, 404, 404, 200},
	"DELETE /v1/sandboxes/{id}/mounts": {func(t *testing.T, f *fixture) (string, any) {
		id := adminSandbox(t, f, "running")
		p := fmt.Sprintf("/workspace/authz-%d", attachN.Add(1))
		_, err := f.env.Admin.AttachMount(context.Background(), id, client.Mount{WorkspaceID: f.ws, Path: p, ReadOnly: true})
		must(t, err)
		return "/v1/sandboxes/" + id + "/mounts?path=" + p, nil
	}, 404, 404, 200},
	"POST /v1/sandboxes/{id}/exec": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/sandboxes/" + adminSandbox(t, f, "running") + "/exec", map[string]any{"command": "true"}
	}, 404, 404, 200},
	// Not an upgrade: the owner's key gets as far as the WebSocket check
	// (TestSandboxTerminal opens one).
	"GET /v1/sandboxes/{id}/pty": {sandboxIn("running", "/pty"), 404, 404, 400},
	// The port proxy: nothing listens on port 1 of the admin's sandbox, so
	// the admin gets berth's 503 (TestSandboxPortsProxy reaches servers).
	"GET /v1/sandboxes/{id}/ports/{port}/*":     {sandboxIn("running", "/ports/1/x"), 404, 404, 503},
	"POST /v1/sandboxes/{id}/ports/{port}/*":    {sandboxIn("running", "/ports/1/x"), 404, 404, 503},
	"PUT /v1/sandboxes/{id}/ports/{port}/*":     {sandboxIn("running", "/ports/1/x"), 404, 404, 503},
	"PATCH /v1/sandboxes/{id}/ports/{port}/*":   {sandboxIn("running", "/ports/1/x"), 404, 404, 503},
	"DELETE /v1/sandboxes/{id}/ports/{port}/*":  {sandboxIn("running", "/ports/1/x"), 404, 404, 503},
	"OPTIONS /v1/sandboxes/{id}/ports/{port}/*": {sandboxIn("running", "/ports/1/x"), 404, 404, 503},

	"GET /v1/templates":        {fixed("/v1/templates", nil), 200, 200, 200},
	"GET /v1/templates/{name}": {fixed("/v1/templates/base", nil), 200, 200, 200},
	// Building is idempotent; the base image builds from the engine's cache.
	// Template images are shared by the whole org: only admins rebuild them.
	"POST /v1/templates/{name}/build": {func(t *testing.T, f *fixture) (string, any) {
		needEngine(t, f.env)
		return "/v1/templates/base/build", nil
	}, 403, 403, 200},
}

func sandboxIn(status, suffix string) func(*testing.T, *fixture) (string, any) {
	return func(t *testing.T, f *fixture) (string, any) {
		return "/v1/sandboxes/" + adminSandbox(t, f, status) + suffix, nil
	}
}

// attachN numbers the paths of the matrix's attached mounts.
var attachN atomic.Int64

// shared is the admin's sandbox of each fixture.
var shared struct {
	sync.Mutex
	id map[*fixture]string
}

// adminSandbox returns the id of the fixture's admin sandbox after bringing
// it to status (running, paused or stopped); a destroyed one is replaced.
// servertest removes its container when the server stops.
func adminSandbox(t *testing.T, f *fixture, status string) string {
	t.Helper()
	needEngine(t, f.env)
	ctx := context.Background()
	a := f.env.Admin
	shared.Lock()
	defer shared.Unlock()
	if shared.id == nil {
		shared.id = map[*fixture]string{}
	}
	id := shared.id[f]
	var cur string
	if id != "" {
		s, err := a.Sandbox(ctx, id)
		must(t, err)
		cur = s.Status
	}
	if id == "" || cur == "destroyed" {
		s, err := a.CreateSandbox(ctx, smallSandbox(), false)
		must(t, err)
		id, cur = s.ID, s.Status
		shared.id[f] = id
	}
	// From any of running, paused and stopped to the wanted one.
	steps := map[[2]string][]string{
		{"running", "paused"}:  {"pause"},
		{"running", "stopped"}: {"stop"},
		{"paused", "running"}:  {"resume"},
		{"paused", "stopped"}:  {"stop"},
		{"stopped", "running"}: {"start"},
		{"stopped", "paused"}:  {"start", "pause"},
	}
	for _, act := range steps[[2]string{cur, status}] {
		_, err := a.SandboxAction(ctx, id, act)
		must(t, err)
	}
	return id
}

func smallSandbox() client.SandboxRequest {
	return client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}
}
