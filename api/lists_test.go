package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// getList fetches one page of a list with the raw HTTP API.
func getList(t *testing.T, env *servertest.Env, path string) (int, []map[string]any, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", env.URL+path, nil)
	req.Header.Set("X-API-Key", env.AdminKey)
	resp, err := env.HTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	var body struct {
		Data []map[string]any `json:"data"`
		Meta map[string]any   `json:"meta"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %d, not an envelope: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, body.Data, body.Meta
}

// Agents, members and API keys are lists that grow without bound, so they
// paginate like sandboxes, files, threads and events (API.md conventions):
// ?limit (1..500, default 50), ?cursor, meta.hasMore and meta.nextCursor.
func TestAgentMemberKeyListsPaginate(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		for i := range 3 {
			_, err := env.Admin.AddMember(ctx, fmt.Sprintf("m%d", i), "", "member")
			must(t, err)
			_, err = env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: fmt.Sprintf("k%d", i)})
			must(t, err)
			_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: fmt.Sprintf("a%d", i), ExecutionMode: "managed",
				Template: "base", Command: []string{"true"}})
			must(t, err)
		}
		for path, want := range map[string]int{"/v1/members": 4, "/v1/api-keys": 4, "/v1/agents": 3} {
			seen := map[string]bool{}
			cursor := ""
			for pages := 0; ; pages++ {
				p := path + "?limit=2"
				if cursor != "" {
					p += "&cursor=" + url.QueryEscape(cursor)
				}
				st, data, meta := getList(t, env, p)
				if st != 200 || len(data) == 0 || len(data) > 2 {
					t.Fatalf("GET %s: %d, %d items", p, st, len(data))
				}
				for _, it := range data {
					seen[it["id"].(string)] = true
				}
				more, ok := meta["hasMore"].(bool)
				if !ok {
					t.Fatalf("GET %s: meta %v lacks hasMore", p, meta)
				}
				if !more {
					if v, ok := meta["nextCursor"]; !ok || v != nil {
						t.Errorf("GET %s: last page nextCursor %v, want null", p, v)
					}
					break
				}
				if cursor, ok = meta["nextCursor"].(string); !ok || cursor == "" || pages > 5 {
					t.Fatalf("GET %s: hasMore without a nextCursor: %v", p, meta)
				}
			}
			if len(seen) != want {
				t.Errorf("%s: %d distinct items over the pages, want %d", path, len(seen), want)
			}
			for _, bad := range []string{"?limit=0", "?limit=501", "?limit=x", "?cursor=nope"} {
				if st, _, _ := getList(t, env, path+bad); st != 400 {
					t.Errorf("GET %s%s: %d, want 400", path, bad, st)
				}
			}
		}
		// The client follows the cursor.
		if ms, err := env.Admin.Members(ctx); err != nil || len(ms) != 4 {
			t.Errorf("client Members: %d, %v", len(ms), err)
		}
		if ks, err := env.Admin.APIKeys(ctx, true); err != nil || len(ks) != 4 {
			t.Errorf("client APIKeys: %d, %v", len(ks), err)
		}
		if as, err := env.Admin.Agents(ctx, false); err != nil || len(as) != 3 {
			t.Errorf("client Agents: %d, %v", len(as), err)
		}
	})
}
