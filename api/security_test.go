package api_test

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// An agent's runs exec in sandboxes and mount workspaces with powers the
// runner's key need not hold (agent:run is enough to run). So defining one
// needs the key to hold those powers itself: otherwise a narrow agent:* key
// could exec in every sandbox and write every workspace of its user.
func TestAgentDefinitionNeedsTheScopesItUses(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		m, full := env.Member(t, "definer", "member")
		ws, err := full.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "victim files"})
		must(t, err)
		sb := newSandbox(t, full, client.SandboxRequest{Network: "none"})
		key := func(scopes ...string) *client.Client {
			k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "k", Scopes: scopes, UserID: m.ID})
			must(t, err)
			return env.Admin.WithKey(k.Key)
		}
		agentOnly := key("agent:*")
		inSandbox := client.AgentRequest{Slug: "in-sbx", ExecutionMode: "in_sandbox", Sandbox: sb.ID, Command: agentSh("id")}
		managed := client.AgentRequest{Slug: "managed", ExecutionMode: "managed", Template: "base", Command: agentSh("id"),
			Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace"}}}
		roMount := managed
		roMount.Slug = "managed-ro"
		roMount.Mounts = []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace", ReadOnly: true}}
		for _, tc := range []struct {
			name string
			c    *client.Client
			req  client.AgentRequest
			want string // error code; "" for success
		}{
			{"agent:* links a sandbox", agentOnly, inSandbox, "forbidden"},
			{"agent:* mounts a workspace", agentOnly, managed, "forbidden"},
			{"agent:* + sandbox:create mounts writable", key("agent:*", "sandbox:create", "files:read"), managed, "forbidden"},
			{"agent:* + sandbox:create mounts read-only", key("agent:*", "sandbox:create", "files:read"), roMount, ""},
			{"agent:* + sandbox:write links a sandbox", key("agent:*", "sandbox:write"), inSandbox, ""},
			{"agent:* + sandbox:create + files:write", key("agent:*", "sandbox:create", "files:write"), managed, ""},
		} {
			_, err := tc.c.UpsertAgent(ctx, tc.req)
			if code := client.ErrorCode(err); code != tc.want {
				t.Errorf("%s: %v (code %q), want %q", tc.name, err, code, tc.want)
			}
		}
	})
}

// A key minted by an expiring key expires no later than it, whatever
// expiresIn says: a leaked short-lived key cannot buy a permanent one.
func TestMintedKeyDoesNotOutliveItsParent(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		m, _ := env.Member(t, "leaky", "member")
		parent, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "short", ExpiresIn: "30d", UserID: m.ID})
		must(t, err)
		if parent.ExpiresAt == nil {
			t.Fatal("30d key without expiresAt")
		}
		leaked := env.Admin.WithKey(parent.Key)
		for _, in := range []string{"", "90d", "1y", "30d"} {
			k, err := leaked.CreateAPIKey(ctx, client.KeyRequest{Name: "child", ExpiresIn: in})
			must(t, err)
			if k.ExpiresAt == nil || k.ExpiresAt.After(*parent.ExpiresAt) {
				t.Errorf("expiresIn %q: child expires %v, after its parent (%v)", in, k.ExpiresAt, parent.ExpiresAt)
			}
		}
		// A key without expiry mints as before.
		k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "forever"})
		must(t, err)
		if k.ExpiresAt != nil {
			t.Errorf("key minted by a non-expiring key expires at %v", k.ExpiresAt)
		}
	})
}
