package api_test

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// A stored JSON column that does not decode is a corrupt row: reading the
// agent must fail with an internal error, not answer with an empty command
// or environment (and run it so).
func TestAgentCorruptStoredRow(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		_, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "corrupt", ExecutionMode: "managed", Template: "base",
			Command: []string{"true"}, Env: map[string]string{"K": "v"}})
		must(t, err)
		for _, col := range []string{"command", "env"} {
			t.Run(col, func(t *testing.T) {
				if _, err := env.Admin.Agent(ctx, "corrupt"); err != nil {
					t.Fatalf("agent before the corruption: %v", err)
				}
				var was string
				must(t, env.DB.GetContext(ctx, &was, env.DB.Rebind(`SELECT `+col+` FROM agents WHERE slug = ?`), "corrupt"))
				_, err := env.DB.ExecContext(ctx, env.DB.Rebind(`UPDATE agents SET `+col+` = ? WHERE slug = ?`), "{not json", "corrupt")
				must(t, err)
				_, err = env.Admin.Agent(ctx, "corrupt")
				if client.ErrorCode(err) != "internal" {
					t.Errorf("agent with a corrupt %s column: err %v, want internal", col, err)
				}
				_, err = env.DB.ExecContext(ctx, env.DB.Rebind(`UPDATE agents SET `+col+` = ? WHERE slug = ?`), was, "corrupt")
				must(t, err)
			})
		}
	})
}

// The same for a sandbox's env keys, resources and metadata.
func TestSandboxCorruptStoredRow(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		sb := newSandbox(t, env.Admin, client.SandboxRequest{Name: "corrupt", Network: "none"})
		for _, col := range []string{"env_keys", "resources", "metadata"} {
			t.Run(col, func(t *testing.T) {
				var was string
				must(t, env.DB.GetContext(ctx, &was, env.DB.Rebind(`SELECT `+col+` FROM sandboxes WHERE id = ?`), sb.ID))
				_, err := env.DB.ExecContext(ctx, env.DB.Rebind(`UPDATE sandboxes SET `+col+` = ? WHERE id = ?`), "{not json", sb.ID)
				must(t, err)
				_, err = env.Admin.Sandbox(ctx, sb.ID)
				if client.ErrorCode(err) != "internal" {
					t.Errorf("sandbox with a corrupt %s column: err %v, want internal", col, err)
				}
				_, err = env.DB.ExecContext(ctx, env.DB.Rebind(`UPDATE sandboxes SET `+col+` = ? WHERE id = ?`), was, sb.ID)
				must(t, err)
			})
		}
	})
}

// The same for an API key's scopes: listing keys fails rather than show a
// key without scopes.
func TestAPIKeyCorruptStoredRow(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "corrupt", Scopes: []string{"sandbox:read"}})
		must(t, err)
		_, err = env.DB.ExecContext(ctx, env.DB.Rebind(`UPDATE api_keys SET scopes = ? WHERE id = ?`), "{not json", k.ID)
		must(t, err)
		_, err = env.Admin.APIKeys(ctx, true)
		if client.ErrorCode(err) != "internal" {
			t.Errorf("keys with a corrupt scopes column: err %v, want internal", err)
		}
	})
}
