package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/client"
)

// The agent, run and thread routes of the authorization matrix. Agents, runs
// and threads belong to their creator: members get 404 on the admin's. Each
// fixture gets one admin sandbox with two agents linked to it ("authz", whose
// runs end at once, and "authz-slow", whose runs wait to be cancelled) and one
// finished run; routes that consume a resource (delete, cancel) get a fresh one
// per call.
func init() { addCases(agentCases) }

var agentCases = map[string]authCase{
	"POST /v1/agents": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/agents", map[string]any{"slug": uniqueSlug("made"), "executionMode": "managed", "template": "base", "command": []string{"true"}}
	}, 201, 201, 201},
	"GET /v1/agents":        {fixed("/v1/agents", nil), 200, 200, 200},
	"GET /v1/agents/{slug}": {func(t *testing.T, f *fixture) (string, any) { adminAgents(t, f); return "/v1/agents/authz", nil }, 404, 404, 200},
	"DELETE /v1/agents/{slug}": {func(t *testing.T, f *fixture) (string, any) {
		slug := uniqueSlug("doomed")
		_, err := f.env.Admin.UpsertAgent(context.Background(), client.AgentRequest{Slug: slug, ExecutionMode: "managed", Template: "base", Command: []string{"true"}})
		must(t, err)
		return "/v1/agents/" + slug, nil
	}, 404, 404, 200},
	"POST /v1/agents/{slug}/run": {func(t *testing.T, f *fixture) (string, any) {
		adminAgents(t, f)
		return "/v1/agents/authz/run", map[string]any{"prompt": "x"}
	}, 404, 404, 200},
	"POST /v1/run": {func(t *testing.T, f *fixture) (string, any) {
		adminAgents(t, f)
		return "/v1/run", map[string]any{"agent": "authz", "prompt": "x"}
	}, 404, 404, 200},
	"GET /v1/runs/{runId}": {func(t *testing.T, f *fixture) (string, any) { return "/v1/runs/" + adminAgents(t, f).RunID, nil }, 404, 404, 200},
	"GET /v1/runs/{runId}/events": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/runs/" + adminAgents(t, f).RunID + "/events", nil
	}, 404, 404, 200},
	"POST /v1/runs/{runId}/cancel": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/runs/" + slowRun(t, f) + "/cancel", nil
	}, 404, 404, 200},
	"GET /v1/threads":            {fixed("/v1/threads?agent=authz", nil), 200, 200, 200},
	"GET /v1/threads/{threadId}": {func(t *testing.T, f *fixture) (string, any) { return "/v1/threads/" + adminAgents(t, f).ThreadID, nil }, 404, 404, 200},
	"GET /v1/threads/{threadId}/events": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/threads/" + adminAgents(t, f).ThreadID + "/events", nil
	}, 404, 404, 200},
	"PATCH /v1/threads/{threadId}": {func(t *testing.T, f *fixture) (string, any) {
		return "/v1/threads/" + adminAgents(t, f).ThreadID, map[string]any{"title": "t"}
	}, 404, 404, 200},
	"DELETE /v1/threads/{threadId}": {func(t *testing.T, f *fixture) (string, any) {
		adminAgents(t, f)
		r, err := f.env.Admin.RunAgent(context.Background(), "authz", client.RunRequest{Prompt: "to delete"})
		must(t, err)
		return "/v1/threads/" + r.ThreadID, nil
	}, 404, 404, 200},
}

var slugSeq struct {
	sync.Mutex
	n int
}

func uniqueSlug(prefix string) string {
	slugSeq.Lock()
	defer slugSeq.Unlock()
	slugSeq.n++
	return fmt.Sprintf("%s-%d", prefix, slugSeq.n)
}

// agentShared is the admin's agents and finished run of each fixture.
var agentShared struct {
	sync.Mutex
	run map[*fixture]*client.Run
}

func adminAgents(t *testing.T, f *fixture) *client.Run {
	t.Helper()
	needEngine(t, f.env)
	agentShared.Lock()
	defer agentShared.Unlock()
	if r := agentShared.run[f]; r != nil {
		return r
	}
	ctx := context.Background()
	a := f.env.Admin
	sb, err := a.CreateSandbox(ctx, smallSandbox(), false)
	must(t, err)
	for slug, cmd := range map[string][]string{"authz": {"true"}, "authz-slow": {"sleep", "30"}} {
		_, err := a.UpsertAgent(ctx, client.AgentRequest{Slug: slug, ExecutionMode: "in_sandbox", Sandbox: sb.ID, Command: cmd})
		must(t, err)
	}
	r, err := a.RunAgent(ctx, "authz", client.RunRequest{Prompt: "x"})
	must(t, err)
	if agentShared.run == nil {
		agentShared.run = map[*fixture]*client.Run{}
	}
	agentShared.run[f] = r
	return r
}

// slowRun starts a run of the admin's slow agent and returns its id at once
// (queued or running); an uncancelled one ends at its timeout.
func slowRun(t *testing.T, f *fixture) string {
	t.Helper()
	adminAgents(t, f)
	ctx := context.Background()
	c, err := f.env.API.Auth.Authenticate(ctx, f.env.AdminKey)
	must(t, err)
	r, err := f.env.Agents.Start(berth.WithCaller(ctx, c), "authz-slow", agent.RunInput{Prompt: "x", Timeout: 20000})
	must(t, err)
	return r.RunID
}
