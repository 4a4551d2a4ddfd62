package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// rawCall sends body verbatim and returns status and the decoded error.
func rawCall(t *testing.T, env *servertest.Env, method, path, body string) (int, string, string) {
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
		Error struct{ Code, Message, RequestID string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Errorf("%s %s: answer is not JSON: %v", method, path, err)
	}
	if resp.StatusCode >= 400 && (e.Error.Code == "" || e.Error.Message == "" || !strings.HasPrefix(e.Error.RequestID, "req_")) {
		t.Errorf("%s %s: incomplete error envelope %+v", method, path, e.Error)
	}
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

func TestBadInput(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		existing, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Existing", Slug: "taken"})
		must(t, err)
		wsPath := "/v1/workspaces/" + existing.ID
		huge := `{"name": "` + strings.Repeat("a", 2<<20) + `"}`
		cases := []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"malformed JSON", "POST", "/v1/workspaces", `{"name": `, 400, "invalid_request"},
			{"not an object", "POST", "/v1/workspaces", `["name"]`, 400, "invalid_request"},
			{"empty body", "POST", "/v1/workspaces", ``, 400, "invalid_request"},
			{"trailing data", "POST", "/v1/workspaces", `{"name":"a"} {"name":"b"}`, 400, "invalid_request"},
			{"unknown field", "POST", "/v1/workspaces", `{"name":"x","colour":"red"}`, 400, "invalid_request"},
			{"wrong type name", "POST", "/v1/workspaces", `{"name":42}`, 400, "invalid_request"},
			{"wrong type personal", "POST", "/v1/workspaces", `{"name":"x","personal":"yes"}`, 400, "invalid_request"},
			{"wrong type quota", "POST", "/v1/workspaces", `{"name":"x","quotaBytes":"big"}`, 400, "invalid_request"},
			{"negative quota", "POST", "/v1/workspaces", `{"name":"x","quotaBytes":-5}`, 400, "invalid_request"},
			{"missing name", "POST", "/v1/workspaces", `{}`, 400, "invalid_request"},
			{"empty slug", "POST", "/v1/workspaces", `{"name":"x","slug":""}`, 400, "invalid_request"},
			{"overlong slug", "POST", "/v1/workspaces", `{"name":"x","slug":"` + strings.Repeat("a", 64) + `"}`, 400, "invalid_request"},
			{"uppercase slug", "POST", "/v1/workspaces", `{"name":"x","slug":"Repo"}`, 400, "invalid_request"},
			{"slug with slash", "POST", "/v1/workspaces", `{"name":"x","slug":"a/b"}`, 400, "invalid_request"},
			{"duplicate slug", "POST", "/v1/workspaces", `{"name":"x","slug":"taken"}`, 409, "conflict"},
			{"2 MiB body", "POST", "/v1/workspaces", huge, 413, "payload_too_large"},
			{"patch nothing", "PATCH", wsPath, `{}`, 400, "invalid_request"},
			{"patch empty name", "PATCH", wsPath, `{"name":"  "}`, 400, "invalid_request"},
			{"patch unknown field", "PATCH", wsPath, `{"slug":"new"}`, 400, "invalid_request"},
			{"patch wrong quota type", "PATCH", wsPath, `{"quotaBytes":true}`, 400, "invalid_request"},
			{"patch 2 MiB", "PATCH", wsPath, huge, 413, "payload_too_large"},
			{"bad all flag", "GET", "/v1/workspaces?all=maybe", ``, 400, "invalid_request"},
			{"bad force flag", "DELETE", wsPath + "?force=perhaps", ``, 400, "invalid_request"},
			{"not a uuid", "GET", "/v1/workspaces/../../etc", ``, 404, "not_found"},
			{"access unknown user", "PUT", wsPath + "/access", `{"userIds":["usr_nope"]}`, 400, "invalid_request"},
			{"access wrong type", "PUT", wsPath + "/access", `{"userIds":"usr_x"}`, 400, "invalid_request"},
			{"access missing list", "PUT", wsPath + "/access", `{}`, 400, "invalid_request"},
			{"member bad role", "POST", "/v1/members", `{"name":"x","role":"owner"}`, 400, "invalid_request"},
			{"member no name", "POST", "/v1/members", `{"role":"member"}`, 400, "invalid_request"},
			{"key unknown scope", "POST", "/v1/api-keys", `{"name":"k","scopes":["files:everything"]}`, 400, "invalid_request"},
			{"key bad expiry", "POST", "/v1/api-keys", `{"name":"k","expiresIn":"forever"}`, 400, "invalid_request"},
			{"key scopes wrong type", "POST", "/v1/api-keys", `{"name":"k","scopes":"*"}`, 400, "invalid_request"},
			{"key for unknown user", "POST", "/v1/api-keys", `{"name":"k","userId":"usr_nobody"}`, 400, "invalid_request"},
			{"unknown route", "GET", "/v1/nothing-here", ``, 404, "not_found"},
		}
		before := snapshot(t, env)
		for _, c := range cases {
			st, code, msg := rawCall(t, env, c.method, c.path, c.body)
			if st != c.status || code != c.code {
				t.Errorf("%s: %d %s (%s), want %d %s", c.name, st, code, msg, c.status, c.code)
			}
		}
		if after := snapshot(t, env); after != before {
			t.Errorf("bad input changed state:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// snapshot summarises the visible state: workspaces, members and keys.
func snapshot(t *testing.T, env *servertest.Env) string {
	ctx := context.Background()
	l, err := env.Admin.Workspaces(ctx, true)
	must(t, err)
	ms, err := env.Admin.Members(ctx)
	must(t, err)
	ks, err := env.Admin.APIKeys(ctx, true)
	must(t, err)
	var b bytes.Buffer
	for _, w := range l.Workspaces {
		b.WriteString(w.ID + ":" + w.Slug + ":" + w.Name + ":" + w.UpdatedAt.String() + ";")
	}
	for _, m := range ms {
		b.WriteString(m.ID + ":" + m.Role + ";")
	}
	for _, k := range ks {
		b.WriteString(k.ID + ";")
	}
	return b.String()
}
