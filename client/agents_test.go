package client_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

// Run and RunStream are the SDK's agent.run(slug, prompt, {threadId,
// stream}); a run that fails is a run with its status, not an error.
func TestRunNames(t *testing.T) {
	env := servertest.Start(t, "")
	rt := env.Sandboxes.Runtime()
	runtimetest.Require(t, rt)
	runtimetest.BaseImage(t, rt)
	ctx := testctx.Context(t)
	c := env.Admin
	s, err := c.CreateSandbox(ctx, client.SandboxRequest{Name: "runs", Template: "base", Network: "none"}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := testctx.Cleanup()
		defer cancel()
		_ = c.DestroySandbox(cctx, s.ID)
	})
	up, err := c.ApplyAgent(ctx, client.AgentRequest{Slug: "echo", ExecutionMode: "in_sandbox", Sandbox: "runs",
		Command: []string{"/bin/sh", "-c", `p=$(cat); echo "got: $p"; [ "$p" != fail ]`}})
	if err != nil || up.Action != "created" {
		t.Fatalf("apply: %+v %v", up, err)
	}

	r, err := c.Run(ctx, "echo", "one", client.RunOptions{})
	if err != nil || r.Status != "completed" || r.Output != "got: one\n" {
		t.Fatalf("Run: %+v %v", r, err)
	}
	var out strings.Builder
	var names []string
	r2, err := c.RunStream(ctx, "echo", "two", client.RunOptions{ThreadID: r.ThreadID}, func(e client.Event) error {
		names = append(names, e.Name)
		if e.ID == "" {
			t.Errorf("event %s without its sequence number", e.Name)
		}
		if e.Name == "stdout" {
			out.WriteString(e.Data)
		}
		return nil
	})
	if err != nil || r2.Status != "completed" || r2.ThreadID != r.ThreadID || out.String() != "got: two\n" {
		t.Fatalf("RunStream: %+v %v, output %q", r2, err, out.String())
	}
	if names[0] != "prompt" || names[len(names)-1] != "result" {
		t.Errorf("RunStream events: %v", names)
	}
	failed, err := c.Run(ctx, "echo", "fail", client.RunOptions{})
	if err != nil || failed.Status != "failed" || failed.ExitCode == nil || *failed.ExitCode != 1 {
		t.Errorf("failed run: %+v %v", failed, err)
	}
	if _, err := c.RunStream(ctx, "nope", "x", client.RunOptions{}, nil); client.ErrorCode(err) != "not_found" {
		t.Errorf("unknown agent: %v", err)
	}

	runs, err := c.AgentRuns(ctx, "echo")
	if err != nil || len(runs) != 3 || runs[0].RunID != r.RunID || runs[2].RunID != failed.RunID {
		t.Errorf("AgentRuns: %+v %v", runs, err)
	}
	evs, err := c.ThreadEventsAfter(ctx, r.ThreadID, "")
	if err != nil || len(evs) == 0 {
		t.Fatalf("ThreadEventsAfter: %v %v", evs, err)
	}
	mid := evs[len(evs)/2].Seq
	rest, err := c.ThreadEventsAfter(ctx, r.ThreadID, strconv.FormatInt(mid, 10))
	if err != nil || len(rest) != len(evs)-len(evs)/2-1 || rest[0].Seq <= mid {
		t.Errorf("ThreadEventsAfter %d: %d of %d events, %v", mid, len(rest), len(evs), err)
	}
}
