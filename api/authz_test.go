package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// fixture is what the authorization matrix needs in one server.
type fixture struct {
	env          *servertest.Env
	noGrant      *client.Client // member without a grant on ws
	grant        *client.Client // member granted ws
	grantID      string
	ws           string // admin's organization workspace, granted to `grant`
	revokedKey   string
	expiredKey   string
	adminID      string
	scopedKeyFor func(scope string) string
}

func newFixture(t *testing.T, env *servertest.Env) *fixture {
	ctx := context.Background()
	f := &fixture{env: env}
	_, f.noGrant = env.Member(t, "no-grant", "member")
	var gm *client.Member
	gm, f.grant = env.Member(t, "granted", "member")
	f.grantID = gm.ID
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "shared"})
	must(t, err)
	f.ws = ws.ID
	_, err = env.Admin.SetWorkspaceAccess(ctx, ws.ID, []string{gm.ID})
	must(t, err)
	me, err := env.Admin.Me(ctx)
	must(t, err)
	f.adminID = me.User.ID

	k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "to-revoke"})
	must(t, err)
	_, err = env.Admin.RevokeAPIKey(ctx, k.ID)
	must(t, err)
	f.revokedKey = k.Key

	k, err = env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "to-expire", ExpiresIn: "30d"})
	must(t, err)
	_, err = env.DB.Exec(env.DB.Rebind(`UPDATE api_keys SET expires_at = ? WHERE id = ?`), "2001-01-01 00:00:00+00:00", k.ID)
	if env.DB.Engine == "postgres" {
		_, err = env.DB.Exec(`UPDATE api_keys SET expires_at = '2001-01-01T00:00:00Z' WHERE id = $1`, k.ID)
	}
	must(t, err)
	f.expiredKey = k.Key

	scoped := map[string]string{}
	f.scopedKeyFor = func(scope string) string {
		if scoped[scope] == "" {
			k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "scoped-" + scope, Scopes: []string{scope}})
			must(t, err)
			scoped[scope] = k.Key
		}
		return scoped[scope]
	}
	return f
}

// freshWorkspace is an admin-owned workspace granted to the `grant` member.
func (f *fixture) freshWorkspace(t *testing.T) string {
	ctx := context.Background()
	ws, err := f.env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "fresh"})
	must(t, err)
	_, err = f.env.Admin.SetWorkspaceAccess(ctx, ws.ID, []string{f.grantID})
	must(t, err)
	return ws.ID
}

func (f *fixture) freshMember(t *testing.T) string {
	m, err := f.env.Admin.AddMember(context.Background(), "victim", "", "member")
	must(t, err)
	return m.ID
}

func (f *fixture) freshAdminKey(t *testing.T) string {
	k, err := f.env.Admin.CreateAPIKey(context.Background(), client.KeyRequest{Name: "victim"})
	must(t, err)
	return k.ID
}

// authCase is one route of the matrix: how to call it, and the status each
// authenticated persona must get.
type authCase struct {
	call                  func(t *testing.T, f *fixture) (path string, body any)
	noGrant, grant, admin int
}

func fixed(path string, body any) func(*testing.T, *fixture) (string, any) {
	return func(*testing.T, *fixture) (string, any) { return path, body }
}

// matrix holds an entry for every route that needs a key. A route missing
// here fails TestAuthorizationMatrix, so new routes cannot skip it. Each
// resource adds its routes from its own authz_<resource>_test.go with
// addCases in an init function.
var matrix = map[string]authCase{}

func addCases(cases map[string]authCase) {
	for k, v := range cases {
		if _, dup := matrix[k]; dup {
			panic("authorization matrix: duplicate entry " + k)
		}
		matrix[k] = v
	}
}

func init() { addCases(orgAndWorkspaceCases) }

var orgAndWorkspaceCases = map[string]authCase{
	"GET /v1/me":               {fixed("/v1/me", nil), 200, 200, 200},
	"GET /v1/members":          {fixed("/v1/members", nil), 200, 200, 200},
	"POST /v1/members":         {fixed("/v1/members", map[string]string{"name": "new", "role": "member"}), 403, 403, 201},
	"GET /v1/members/{userId}": {func(t *testing.T, f *fixture) (string, any) { return "/v1/members/" + f.adminID, nil }, 200, 200, 200},
	"PATCH /v1/members/{userId}": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/members/" + f.freshMember(t), map[string]string{"role": "admin"}
	}, 403, 403, 200},
	"DELETE /v1/members/{userId}": {func(t *testing.T, f *fixture) (string, any) { return "/v1/members/" + f.freshMember(t), nil }, 403, 403, 200},
	"GET /v1/api-keys":            {fixed("/v1/api-keys", nil), 200, 200, 200},
	"POST /v1/api-keys":           {fixed("/v1/api-keys", map[string]string{"name": "k"}), 201, 201, 201},
	"DELETE /v1/api-keys/{keyId}": {func(t *testing.T, f *fixture) (string, any) { return "/v1/api-keys/" + f.freshAdminKey(t), nil }, 404, 404, 200},
	"GET /v1/workspaces":          {fixed("/v1/workspaces", nil), 200, 200, 200},
	"POST /v1/workspaces":         {fixed("/v1/workspaces", map[string]string{"name": "made"}), 201, 201, 201},
	"GET /v1/workspaces/{id}":     {func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.ws, nil }, 404, 200, 200},
	"PATCH /v1/workspaces/{id}": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/workspaces/" + f.ws, map[string]string{"name": "renamed"}
	}, 404, 200, 200},
	"DELETE /v1/workspaces/{id}":     {func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.freshWorkspace(t), nil }, 404, 403, 200},
	"GET /v1/workspaces/{id}/usage":  {func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.ws + "/usage", nil }, 404, 200, 200},
	"GET /v1/workspaces/{id}/access": {func(t *testing.T, f *fixture) (string, any) { return "/v1/workspaces/" + f.ws + "/access", nil }, 403, 403, 200},
	"PUT /v1/workspaces/{id}/access": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/workspaces/" + f.freshWorkspace(t) + "/access", map[string][]string{"userIds": {f.grantID}}
	}, 403, 403, 200},
}

var codeOf = map[int]string{401: "unauthorized", 403: "forbidden", 404: "not_found"}

// call sends one raw request and returns status and error code.
func call(t *testing.T, srv *servertest.Env, key, method, path string, body any) (int, string) {
	t.Helper()
	var rd *bytes.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case rawBody: // sent verbatim (multipart uploads)
		rd, contentType = bytes.NewReader(b.data), b.contentType
	default:
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.HTTP().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer closeBody(resp)
	var env struct {
		Error struct{ Code, Message, RequestID string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil && resp.StatusCode >= 400 {
		t.Errorf("%s %s: %d, not an error envelope: %v", method, path, resp.StatusCode, err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id header", method, path)
	}
	if resp.StatusCode >= 400 && (env.Error.Code == "" || env.Error.RequestID == "") {
		t.Errorf("%s %s: %d without a full error envelope", method, path, resp.StatusCode)
	}
	return resp.StatusCode, env.Error.Code
}

// otherScope is a valid scope that does not grant need.
func otherScope(need string) string {
	if strings.HasPrefix(need, "files:") {
		return "sandbox:read"
	}
	return "files:read"
}

func TestAuthorizationMatrix(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		f := newFixture(t, env)
		for _, rt := range env.API.Routes() {
			name := rt.Method + " " + rt.Pattern
			if rt.Public {
				if rt.Method == "GET" {
					if st, _ := call(t, env, "", "GET", rt.Pattern, nil); st != 200 {
						t.Errorf("%s without a key: %d, want 200", name, st)
					}
				}
				continue
			}
			c, ok := matrix[name]
			if !ok {
				t.Errorf("route %s has no entry in the authorization matrix", name)
				continue
			}
			t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
				personas := []struct {
					who  string
					key  func() string
					want int
				}{
					{"no key", func() string { return "" }, 401},
					{"revoked key", func() string { return f.revokedKey }, 401},
					{"expired key", func() string { return f.expiredKey }, 401},
					{"member without grant", func() string { return f.noGrant.Key }, c.noGrant},
					{"member with grant", func() string { return f.grant.Key }, c.grant},
					{"admin", func() string { return env.AdminKey }, c.admin},
				}
				if rt.Scope != "" {
					personas = append(personas, struct {
						who  string
						key  func() string
						want int
					}{"key lacking " + rt.Scope, func() string { return f.scopedKeyFor(otherScope(rt.Scope)) }, 403})
				}
				for _, p := range personas {
					path, body := c.call(t, f)
					st, code := call(t, env, p.key(), rt.Method, path, body)
					if st != p.want {
						t.Errorf("%s as %s: status %d (%s), want %d", name, p.who, st, code, p.want)
						continue
					}
					if want, ok := codeOf[st]; ok && code != want {
						t.Errorf("%s as %s: code %q, want %q", name, p.who, code, want)
					}
				}
			})
		}
	})
}

func TestPersonalWorkspacesStayPrivate(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		_, a := env.Member(t, "alice", "member")
		_, b := env.Member(t, "bob", "member")
		pw, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "alice private", Personal: true})
		must(t, err)
		if !pw.IsPersonal {
			t.Fatalf("personal workspace answered isPersonal=false")
		}
		if _, err := b.Workspace(ctx, pw.ID); client.ErrorCode(err) != "not_found" {
			t.Errorf("bob GET alice's personal workspace: %v, want not_found", err)
		}
		l, err := b.Workspaces(ctx, false)
		must(t, err)
		for _, w := range l.Workspaces {
			if w.ID == pw.ID {
				t.Errorf("bob's list shows alice's personal workspace")
			}
		}
		if l, err := b.Workspaces(ctx, true); client.ErrorCode(err) != "forbidden" {
			t.Errorf("bob ?all=true: %v, want forbidden", err)
			for _, w := range l.Workspaces {
				if w.ID == pw.ID {
					t.Errorf("bob's ?all=true list shows alice's personal workspace")
				}
			}
		}
		for _, path := range []string{"/usage", ""} {
			if st, _ := call(t, env, b.Key, "GET", "/v1/workspaces/"+pw.ID+path, nil); st != 404 {
				t.Errorf("bob GET %s: %d, want 404", path, st)
			}
		}
		if st, _ := call(t, env, b.Key, "DELETE", "/v1/workspaces/"+pw.ID, nil); st != 404 {
			t.Errorf("bob DELETE alice's personal workspace: %d, want 404", st)
		}
		// Alice sees it; admins see it with ?all=true and by id; nobody can share it.
		if _, err := a.Workspace(ctx, pw.ID); err != nil {
			t.Errorf("alice GET her own workspace: %v", err)
		}
		all, err := env.Admin.Workspaces(ctx, true)
		must(t, err)
		if !slices.ContainsFunc(all.Workspaces, func(w client.Workspace) bool { return w.ID == pw.ID }) {
			t.Errorf("admin ?all=true misses alice's personal workspace")
		}
		mine, err := env.Admin.Workspaces(ctx, false)
		must(t, err)
		if slices.ContainsFunc(mine.Workspaces, func(w client.Workspace) bool { return w.ID == pw.ID }) {
			t.Errorf("admin's default list (own and granted) shows alice's personal workspace")
		}
		bm, _ := b.Me(ctx)
		if _, err := env.Admin.SetWorkspaceAccess(ctx, pw.ID, []string{bm.User.ID}); client.ErrorCode(err) != "invalid_request" {
			t.Errorf("sharing a personal workspace: %v, want invalid_request", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf
