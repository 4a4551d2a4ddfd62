package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// fieldCall sends body verbatim and returns the status and the error
// envelope's members as sent (a member that is absent is not in the map).
func fieldCall(t *testing.T, env *servertest.Env, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, env.URL+path, strings.NewReader(body))
	req.Header.Set("X-API-Key", env.AdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := env.HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Errorf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, e.Error
}

// TestErrorField: a refused body's error names the request field it is
// about by its JSON path (a mount by its index), so that clients can place
// the message without reading it; errors about no one field have no field.
func TestErrorField(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Fields"})
		must(t, err)
		mount := func(path string) string { return `{"workspaceId":"` + ws.ID + `","path":"` + path + `"}` }
		wsPath := "/v1/workspaces/" + ws.ID
		agent := func(extra string) string {
			return `{"slug":"fa","executionMode":"managed","template":"base","command":["true"]` + extra + `}`
		}
		cases := []struct {
			name, method, path, body string
			status                   int
			field                    string // "": the member must be absent
		}{
			// Sandboxes.
			{"sandbox no template", "POST", "/v1/sandboxes", `{}`, 400, "template"},
			{"sandbox unknown template", "POST", "/v1/sandboxes", `{"template":"nope"}`, 400, "template"},
			{"sandbox bad name", "POST", "/v1/sandboxes", `{"template":"base","name":"Not OK"}`, 400, "name"},
			{"sandbox small memory", "POST", "/v1/sandboxes", `{"template":"base","resources":{"memory":"12"}}`, 400, "resources.memory"},
			{"sandbox too many pids", "POST", "/v1/sandboxes", `{"template":"base","resources":{"pids":100000000}}`, 400, "resources.pids"},
			{"sandbox network", "POST", "/v1/sandboxes", `{"template":"base","network":"host"}`, 400, "network"},
			{"sandbox idle", "POST", "/v1/sandboxes", `{"template":"base","idleTimeout":-1}`, 400, "idleTimeout"},
			{"sandbox tag", "POST", "/v1/sandboxes", `{"template":"base","tags":["a b"]}`, 400, "tags"},
			{"sandbox env", "POST", "/v1/sandboxes", `{"template":"base","env":{"1X":"y"}}`, 400, "env"},
			{"sandbox second mount path", "POST", "/v1/sandboxes", `{"template":"base","mounts":[` + mount("/workspace/a") + `,` + mount("/etc") + `]}`, 400, "mounts[1].path"},
			{"sandbox mount twice", "POST", "/v1/sandboxes", `{"template":"base","mounts":[` + mount("/workspace/a") + `,` + mount("/workspace/b") + `,` + mount("/workspace/a") + `]}`, 400, "mounts[2].path"},
			{"sandbox mount no workspace", "POST", "/v1/sandboxes", `{"template":"base","mounts":[` + mount("/workspace/a") + `,{"path":"/workspace/b"}]}`, 400, "mounts[1].workspaceId"},
			{"sandbox type error", "POST", "/v1/sandboxes", `{"template":"base","idleTimeout":"soon"}`, 400, "idleTimeout"},
			{"sandbox nested type error", "POST", "/v1/sandboxes", `{"template":"base","resources":{"memory":512}}`, 400, "resources.memory"},

			// Agents.
			{"agent bad slug", "POST", "/v1/agents", `{"slug":"Not OK","executionMode":"managed","template":"base","command":["true"]}`, 400, "slug"},
			{"agent no mode", "POST", "/v1/agents", `{"slug":"fa","command":["true"]}`, 400, "executionMode"},
			{"agent no command", "POST", "/v1/agents", `{"slug":"fa","executionMode":"managed","template":"base"}`, 400, "command"},
			{"agent empty command", "POST", "/v1/agents", `{"slug":"fa","executionMode":"managed","template":"base","command":[]}`, 400, "command"},
			{"agent timeout", "POST", "/v1/agents", agent(`,"timeout":-1`), 400, "timeout"},
			{"agent no template", "POST", "/v1/agents", `{"slug":"fa","executionMode":"managed","command":["true"]}`, 400, "template"},
			{"agent in_sandbox no sandbox", "POST", "/v1/agents", `{"slug":"fa","executionMode":"in_sandbox","command":["true"]}`, 400, "sandbox"},
			{"agent second mount path", "POST", "/v1/agents", agent(`,"mounts":[` + mount("/workspace/a") + `,` + mount("/workspace/../x") + `]`), 400, "mounts[1].path"},
			{"agent mount no workspace", "POST", "/v1/agents", agent(`,"mounts":[{"path":"/workspace/a"}]`), 400, "mounts[0].workspaceId"},

			// Workspaces.
			{"workspace no name", "POST", "/v1/workspaces", `{}`, 400, "name"},
			{"workspace bad slug", "POST", "/v1/workspaces", `{"name":"x","slug":"Repo"}`, 400, "slug"},
			{"workspace quota", "POST", "/v1/workspaces", `{"name":"x","quotaBytes":-5}`, 400, "quotaBytes"},
			{"workspace quota type", "POST", "/v1/workspaces", `{"name":"x","quotaBytes":"big"}`, 400, "quotaBytes"},
			{"workspace rename blank", "PATCH", wsPath, `{"name":"  "}`, 400, "name"},
			{"workspace patch nothing", "PATCH", wsPath, `{}`, 400, ""},

			// Keys and members.
			{"key no name", "POST", "/v1/api-keys", `{"name":" "}`, 400, "name"},
			{"key unknown scope", "POST", "/v1/api-keys", `{"name":"k","scopes":["files:everything"]}`, 400, "scopes"},
			{"key bad expiry", "POST", "/v1/api-keys", `{"name":"k","expiresIn":"forever"}`, 400, "expiresIn"},
			{"member bad role", "POST", "/v1/members", `{"name":"x","role":"owner"}`, 400, "role"},
			{"member bad email", "POST", "/v1/members", `{"name":"x","email":"nobody"}`, 400, "email"},

			// About no one field.
			{"malformed JSON", "POST", "/v1/workspaces", `{"name": `, 400, ""},
			{"not an object", "POST", "/v1/sandboxes", `["template"]`, 400, ""},
		}
		for _, c := range cases {
			status, e := fieldCall(t, env, c.method, c.path, c.body)
			if status != c.status || e["code"] != "invalid_request" {
				t.Errorf("%s: %d %v, want %d invalid_request", c.name, status, e, c.status)
				continue
			}
			f, has := e["field"]
			switch {
			case c.field == "" && has:
				t.Errorf("%s: field %v, want none (%v)", c.name, f, e["message"])
			case c.field != "" && f != c.field:
				t.Errorf("%s: field %v, want %q (%v)", c.name, f, c.field, e["message"])
			}
		}
		// A taken slug is a conflict about the slug.
		if status, e := fieldCall(t, env, "POST", "/v1/workspaces", `{"name":"again","slug":"`+ws.Slug+`"}`); status != 409 || e["code"] != "conflict" || e["field"] != "slug" {
			t.Errorf("duplicate workspace slug: %d %v, want 409 conflict about slug", status, e)
		}
		// Nothing was made by the refused creates.
		sbs, _, err := env.Admin.Sandboxes(ctx, client.SandboxFilter{})
		must(t, err)
		if len(sbs) != 0 {
			t.Fatalf("refused creates left sandboxes: %+v", sbs)
		}
	})
}

// TestErrorFieldInGoClient: the Go client's Error carries the field.
func TestErrorFieldInGoClient(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		_, err := env.Admin.CreateWorkspace(context.Background(), client.WorkspaceRequest{Name: "x", Slug: "Not OK"})
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Field != "slug" {
			t.Fatalf("err %#v, want a client.Error with Field slug", err)
		}
	})
}
