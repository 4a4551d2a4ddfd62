package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// needEngine skips (or, in CI, fails) without a Docker engine and makes the
// base image present.
func needAgentEngine(t *testing.T) {
	t.Helper()
	rt := dockertest.New(t)
	runtimetest.BaseImage(t, rt)
}

// agentSetup is a workspace and a running base sandbox mounting it at
// /workspace, both the admin's; the sandbox is destroyed when t ends.
type agentSetup struct {
	env *servertest.Env
	ws  string
	sbx *client.Sandbox
}

func newAgentSetup(t *testing.T, env *servertest.Env, c *client.Client) *agentSetup {
	t.Helper()
	ctx := context.Background()
	ws, err := c.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "agent ws"})
	must(t, err)
	sb, err := c.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none",
		Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace"}}}, false)
	must(t, err)
	destroyOnCleanup(t, env.Admin, sb.ID)
	return &agentSetup{env: env, ws: ws.ID, sbx: sb}
}

// hostFile reads a file of the setup's workspace from the host.
func (a *agentSetup) hostFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.env.API.Workspaces.Dir(a.ws), name))
	if err != nil {
		t.Fatalf("read %s from the workspace: %v", name, err)
	}
	return string(b)
}

func agentSh(script string) []string { return []string{"/bin/sh", "-c", script} }

func readJSONL(t *testing.T, s string) []client.RunEvent {
	t.Helper()
	var out []client.RunEvent
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e client.RunEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("thread file line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestAgentInSandbox(t *testing.T) {
	needAgentEngine(t)
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		a := newAgentSetup(t, env, env.Admin)
		// The agent prints its env and the thread file it was given.
		up, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "echo", ExecutionMode: "in_sandbox", Sandbox: a.sbx.Name,
			Env: map[string]string{"GREETING": "hi"},
			Command: agentSh(`read -r p; echo "$GREETING stdin=$p env=$BERTH_PROMPT run=$BERTH_RUN_ID thread=$BERTH_THREAD_ID"
				echo "file=$BERTH_THREAD_FILE"; cat "$BERTH_THREAD_FILE"; echo oops >&2`)})
		must(t, err)
		if up.Action != "created" || up.Version != 1 || up.SandboxID != a.sbx.ID || up.Endpoint != "/v1/agents/echo/run" {
			t.Fatalf("upsert answer %+v", up)
		}

		// One-shot JSON.
		r1, err := env.Admin.RunAgent(ctx, "echo", client.RunRequest{Prompt: "first"})
		must(t, err)
		if r1.Status != "completed" || r1.ExitCode == nil || *r1.ExitCode != 0 || r1.SandboxID != a.sbx.ID || r1.ExecutionMode != "in_sandbox" {
			t.Fatalf("run 1: %+v", r1)
		}
		wantLine := "hi stdin=first env=first run=" + r1.RunID + " thread=" + r1.ThreadID
		if !strings.Contains(r1.Output, wantLine) || r1.Stderr != "oops\n" {
			t.Errorf("run 1 output %q stderr %q, want %q", r1.Output, r1.Stderr, wantLine)
		}
		// The thread file is in the sandbox's own /tmp, never in a workspace.
		if !regexp.MustCompile(`file=/tmp/berth-thread\.[^/\n]+/` + r1.ThreadID + `\.jsonl\n`).MatchString(r1.Output) {
			t.Errorf("run 1: BERTH_THREAD_FILE not in /tmp: %q", r1.Output)
		}

		// SSE, continuing the thread: the thread file holds run 1's events.
		var names []string
		var result client.Run
		var stdout strings.Builder
		err = env.Admin.RunAgentStream(ctx, "echo", client.RunRequest{Prompt: "second", ThreadID: r1.ThreadID}, func(e client.Event) error {
			names = append(names, e.Name)
			switch e.Name {
			case "stdout":
				stdout.WriteString(e.Data)
			case "result":
				return json.Unmarshal([]byte(e.Data), &result)
			}
			return nil
		})
		must(t, err)
		if result.Status != "completed" || result.ThreadID != r1.ThreadID || names[len(names)-1] != "result" {
			t.Fatalf("stream: events %v, result %+v", names, result)
		}
		for _, want := range []string{"prompt", "status", "stdout", "stderr", "result"} {
			if !slices.Contains(names, want) {
				t.Errorf("stream lacks a %s event: %v", want, names)
			}
		}
		// The file the second run read: run 1's events, in order, and none of its own.
		history := readJSONL(t, stdout.String()[strings.Index(stdout.String(), "\n{")+1:])
		var types []string
		for i, e := range history {
			if e.RunID != r1.RunID || e.ThreadID != r1.ThreadID {
				t.Errorf("thread file event %d is of run %s, want only run 1's", i, e.RunID)
			}
			if i > 0 && e.Seq <= history[i-1].Seq {
				t.Errorf("thread file out of order at %d", i)
			}
			types = append(types, e.Type)
		}
		if len(history) == 0 || history[0].Type != "prompt" || history[0].Text != "first" || types[len(types)-1] != "result" {
			t.Errorf("thread file seen by run 2: %v (first %+v)", types, history)
		}
		// After the run its thread file is gone from the sandbox, and the
		// workspace got none.
		if ex, err := env.Admin.Exec(ctx, a.sbx.ID, client.ExecRequest{Command: "ls -d /tmp/berth-thread.* 2>/dev/null; ls -A /workspace"}); err != nil || ex.Stdout != "" {
			t.Errorf("after the runs: %+v %v", ex, err)
		}
		evs, err := env.Admin.ThreadEvents(ctx, r1.ThreadID)
		must(t, err)
		if len(evs) < 10 {
			t.Errorf("the thread has %d events", len(evs))
		}
		for i := range evs {
			if evs[i].Seq != int64(i+1) {
				t.Fatalf("thread events not numbered 1..n: %d at %d", evs[i].Seq, i)
			}
		}

		// POST /v1/run names the agent in the body; thread and run reads.
		r3, err := env.Admin.RunNamed(ctx, client.RunRequest{Agent: "echo", Prompt: "third"})
		must(t, err)
		if r3.Status != "completed" || r3.ThreadID == r1.ThreadID {
			t.Errorf("POST /v1/run: %+v", r3)
		}
		th, err := env.Admin.Thread(ctx, r1.ThreadID)
		must(t, err)
		if len(th.Runs) != 2 || th.Runs[0].RunID != r1.RunID || th.Title != "first" || th.AgentSlug != "echo" {
			t.Errorf("thread: %+v", th)
		}
		ts, _, err := env.Admin.Threads(ctx, "echo", 0, "")
		must(t, err)
		if len(ts) != 2 {
			t.Errorf("threads of echo: %d, want 2", len(ts))
		}
		got, err := env.Admin.GetRun(ctx, r1.RunID)
		must(t, err)
		if got.Status != "completed" || got.StartedAt == nil || got.FinishedAt == nil {
			t.Errorf("GET run: %+v", got)
		}
		revs, err := env.Admin.RunEvents(ctx, r1.RunID)
		must(t, err)
		if revs[0].Type != "prompt" || revs[len(revs)-1].Type != "result" {
			t.Errorf("run events: first %s, last %s", revs[0].Type, revs[len(revs)-1].Type)
		}
		// A late follower of an ended run gets the backlog and the end.
		var followed []string
		must(t, env.Admin.FollowRun(ctx, r1.RunID, "", func(e client.Event) error { followed = append(followed, e.Name); return nil }))
		if len(followed) != len(revs) || followed[len(followed)-1] != "result" {
			t.Errorf("follow of an ended run: %v", followed)
		}

		// The agent shows in the workspace's usage and blocks its deletion.
		u, err := env.Admin.WorkspaceUsage(ctx, a.ws)
		must(t, err)
		if u.Counts.Agents != 1 || u.Agents[0].Slug != "echo" || u.Agents[0].SandboxID != a.sbx.ID {
			t.Errorf("usage: %+v", u)
		}

		// Upsert again: version 2.
		up, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "echo", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: []string{"true"}})
		must(t, err)
		if up.Action != "updated" || up.Version != 2 {
			t.Errorf("second upsert: %+v", up)
		}

		// PATCH, DELETE thread; deleting the agent keeps the rest readable.
		title, archived := "renamed", true
		pt, err := env.Admin.UpdateThread(ctx, r1.ThreadID, &title, &archived)
		must(t, err)
		if pt.Title != "renamed" || !pt.Archived {
			t.Errorf("patched thread %+v", pt)
		}
		must(t, env.Admin.DeleteAgent(ctx, "echo"))
		if _, err := env.Admin.GetRun(ctx, r1.RunID); err != nil {
			t.Errorf("run of a deleted agent: %v", err)
		}
		if _, err := env.Admin.Thread(ctx, r1.ThreadID); err != nil {
			t.Errorf("thread of a deleted agent: %v", err)
		}
		must(t, env.Admin.DeleteThread(ctx, r1.ThreadID))
		if _, err := env.Admin.GetRun(ctx, r1.RunID); client.ErrorCode(err) != "not_found" {
			t.Errorf("run of a deleted thread: %v", err)
		}
		if _, err := os.Stat(filepath.Join(env.API.Workspaces.Dir(a.ws), ".berth/threads", r1.ThreadID+".jsonl")); !os.IsNotExist(err) {
			t.Errorf("thread file after the thread's deletion: %v", err)
		}
	})
}

func TestAgentRunEndings(t *testing.T) {
	needAgentEngine(t)
	forRuntimes(t, testAgentRunEndings)
}

func testAgentRunEndings(t *testing.T, env *servertest.Env) {
	ctx := context.Background()
	a := newAgentSetup(t, env, env.Admin)
	mk := func(slug string, cmd []string) {
		_, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: slug, ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: cmd})
		must(t, err)
	}

	t.Run("failure exit code", func(t *testing.T) {
		mk("fails", agentSh("echo bad >&2; exit 3"))
		r, err := env.Admin.RunAgent(ctx, "fails", client.RunRequest{Prompt: "x"})
		must(t, err)
		if r.Status != "failed" || r.ExitCode == nil || *r.ExitCode != 3 || r.StatusReason != "exit code 3" || r.Stderr != "bad\n" {
			t.Errorf("run: %+v", r)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		mk("sleeper", agentSh("echo started > /workspace/sleeper; sleep 60; echo survived >> /workspace/sleeper"))
		r, err := env.Admin.RunAgent(ctx, "sleeper", client.RunRequest{Prompt: "x", Timeout: 1500})
		must(t, err)
		if r.Status != "timed_out" || r.ExitCode != nil || r.Timeout != 1500 {
			t.Errorf("run: %+v", r)
		}
		// The process is gone: nothing of it is left in the sandbox.
		ps, err := env.Admin.Exec(ctx, a.sbx.ID, client.ExecRequest{Command: "ps -o args | grep -c '[s]leep 60' || true"})
		must(t, err)
		if strings.TrimSpace(ps.Stdout) != "0" {
			t.Errorf("sleep still running after the timeout: %q", ps.Stdout)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		mk("long", agentSh("echo working; sleep 60"))
		var mu sync.Mutex
		var id string
		running := make(chan struct{}, 1)
		var result client.Run
		done := make(chan error, 1)
		go func() {
			done <- env.Admin.RunAgentStream(ctx, "long", client.RunRequest{Prompt: "x"}, func(e client.Event) error {
				switch e.Name {
				case "status":
					var st struct{ Status, RunID string }
					if err := json.Unmarshal([]byte(e.Data), &st); err != nil {
						return err
					}
					mu.Lock()
					id = st.RunID
					mu.Unlock()
				case "stdout":
					// The process runs for sure: cancel it from outside.
					select {
					case running <- struct{}{}:
					default:
					}
				case "result":
					return json.Unmarshal([]byte(e.Data), &result)
				}
				return nil
			})
		}()
		select {
		case <-running:
		case err := <-done:
			t.Fatalf("stream ended before output: %v", err)
		case <-testctx.Context(t).Done():
			t.Fatal("no output from the run")
		}
		mu.Lock()
		runID := id
		mu.Unlock()
		r, err := env.Admin.CancelRun(ctx, runID)
		must(t, err)
		if r.Status != "cancelled" {
			t.Errorf("cancel answered %+v", r)
		}
		must(t, <-done)
		if result.Status != "cancelled" || result.RunID != runID {
			t.Errorf("stream result %+v", result)
		}
		if _, err := env.Admin.CancelRun(ctx, runID); client.ErrorCode(err) != "conflict" {
			t.Errorf("cancel of an ended run: %v, want conflict", err)
		}
	})

	t.Run("paused sandbox resumed", func(t *testing.T) {
		mk("wake", agentSh("echo awake"))
		_, err := env.Admin.SandboxAction(ctx, a.sbx.ID, "pause")
		must(t, err)
		r, err := env.Admin.RunAgent(ctx, "wake", client.RunRequest{Prompt: "x"})
		must(t, err)
		if r.Status != "completed" || r.Output != "awake\n" {
			t.Errorf("run: %+v", r)
		}
		sb, err := env.Admin.Sandbox(ctx, a.sbx.ID)
		must(t, err)
		if sb.Status != "running" {
			t.Errorf("sandbox after the run: %s, want running", sb.Status)
		}
	})

	t.Run("concurrent runs queue", func(t *testing.T) {
		mk("serial", agentSh(`echo "start $BERTH_RUN_ID" >> /workspace/serial.log; sleep 0.3; echo "end $BERTH_RUN_ID" >> /workspace/serial.log`))
		const n = 4
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := env.Admin.RunAgent(ctx, "serial", client.RunRequest{Prompt: "x"})
				if err == nil && r.Status != "completed" {
					err = &client.Error{Code: r.Status, Message: r.StatusReason}
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err)
		}
		lines := strings.Split(strings.TrimSpace(a.hostFile(t, "serial.log")), "\n")
		if len(lines) != 2*n {
			t.Fatalf("log has %d lines, want %d:\n%s", len(lines), 2*n, strings.Join(lines, "\n"))
		}
		for i := 0; i < len(lines); i += 2 {
			s, e := strings.TrimPrefix(lines[i], "start "), strings.TrimPrefix(lines[i+1], "end ")
			if !strings.HasPrefix(lines[i], "start ") || s != e {
				t.Fatalf("runs interleaved:\n%s", strings.Join(lines, "\n"))
			}
		}
	})

	t.Run("hostile thread dir", func(t *testing.T) {
		// The sandbox plants a link where berth used to write thread files.
		outside := t.TempDir()
		mk("plain", []string{"true"})
		ex, err := env.Admin.Exec(ctx, a.sbx.ID, client.ExecRequest{Command: "rm -rf /workspace/.berth && ln -s " + outside + " /workspace/.berth"})
		must(t, err)
		if ex.ExitCode != 0 {
			t.Fatalf("plant: %+v", ex)
		}
		r, err := env.Admin.RunAgent(ctx, "plain", client.RunRequest{Prompt: "x"})
		must(t, err)
		if r.Status != "completed" {
			t.Fatalf("run: %+v", r)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Errorf("berth wrote through the .berth symlink: %v", ents)
		}
		if target, err := os.Readlink(filepath.Join(env.API.Workspaces.Dir(a.ws), ".berth")); err != nil || target != outside {
			t.Errorf("the sandbox's .berth symlink was not left alone: %q %v", target, err)
		}
	})
}

// TestAgentThreadFileReadOnlyMount: a run in a sandbox whose only mount is
// read-only, over a workspace holding a user's regular file named .berth,
// leaves the workspace exactly as it was and still gives the agent its
// thread's history.
func TestAgentThreadFileReadOnlyMount(t *testing.T) {
	needAgentEngine(t)
	forRuntimes(t, testAgentThreadFileReadOnlyMount)
}

func testAgentThreadFileReadOnlyMount(t *testing.T, env *servertest.Env) {
	ctx := context.Background()
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "ro"})
	must(t, err)
	dir := env.API.Workspaces.Dir(ws.ID)
	must(t, os.WriteFile(filepath.Join(dir, ".berth"), []byte("user data"), 0o644))
	sb, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none",
		Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace", ReadOnly: true}}}, false)
	must(t, err)
	t.Cleanup(func() { _ = env.Admin.DestroySandbox(context.Background(), sb.ID) })
	_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "hist", ExecutionMode: "in_sandbox", Sandbox: sb.ID,
		Command: agentSh(`cat "$BERTH_THREAD_FILE"`)})
	must(t, err)
	r1, err := env.Admin.RunAgent(ctx, "hist", client.RunRequest{Prompt: "remember me"})
	must(t, err)
	r2, err := env.Admin.RunAgent(ctx, "hist", client.RunRequest{Prompt: "again", ThreadID: r1.ThreadID})
	must(t, err)
	if r1.Status != "completed" || r2.Status != "completed" {
		t.Fatalf("runs: %+v %+v", r1, r2)
	}
	history := readJSONL(t, r2.Output)
	if len(history) == 0 || history[0].Type != "prompt" || history[0].Text != "remember me" {
		t.Errorf("run 2 read %q as its history", r2.Output)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".berth")); err != nil || string(b) != "user data" {
		t.Errorf("the user's .berth changed: %q %v", b, err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("the read-only workspace now holds %v (%v)", ents, err)
	}
}

func TestAgentManaged(t *testing.T) {
	needAgentEngine(t)
	forRuntimes(t, testAgentManaged)
}

func testAgentManaged(t *testing.T, env *servertest.Env) {
	ctx := context.Background()
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "managed ws"})
	must(t, err)
	mk := func(slug, script string) {
		_, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: slug, ExecutionMode: "managed", Template: "base",
			Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace"}}, Command: agentSh(script)})
		must(t, err)
	}
	gone := func(t *testing.T, r *client.Run) {
		t.Helper()
		if r.SandboxID == "" {
			t.Fatalf("run has no sandbox: %+v", r)
		}
		sb, err := env.Admin.Sandbox(ctx, r.SandboxID)
		must(t, err)
		if sb.Status != "destroyed" {
			t.Errorf("the run's sandbox is %s, want destroyed", sb.Status)
		}
	}

	mk("writer", `echo "$BERTH_PROMPT" >> /workspace/managed.txt; hostname; echo file=$BERTH_THREAD_FILE`)
	r1, err := env.Admin.RunAgent(ctx, "writer", client.RunRequest{Prompt: "one"})
	must(t, err)
	if r1.Status != "completed" || r1.ExecutionMode != "managed" {
		t.Fatalf("run 1: %+v", r1)
	}
	gone(t, r1)
	r2, err := env.Admin.RunAgent(ctx, "writer", client.RunRequest{Prompt: "two", ThreadID: r1.ThreadID})
	must(t, err)
	gone(t, r2)
	if r2.SandboxID == r1.SandboxID {
		t.Errorf("both runs used sandbox %s", r1.SandboxID)
	}
	b, err := os.ReadFile(filepath.Join(env.API.Workspaces.Dir(ws.ID), "managed.txt"))
	must(t, err)
	if string(b) != "one\ntwo\n" {
		t.Errorf("workspace file after two managed runs: %q", b)
	}
	u, err := env.Admin.WorkspaceUsage(ctx, ws.ID)
	must(t, err)
	if u.Counts.Agents != 1 || u.Agents[0].ExecutionMode != "managed" || u.Counts.MountedSandboxes != 0 {
		t.Errorf("usage: %+v", u)
	}
	if err := env.Admin.DeleteWorkspace(ctx, ws.ID, false); client.ErrorCode(err) != "WORKSPACE_IN_USE" {
		t.Errorf("deleting a workspace a managed agent mounts: %v, want WORKSPACE_IN_USE", err)
	}

	t.Run("failed and timed out runs destroy their sandbox", func(t *testing.T) {
		mk("bad", "exit 7")
		r, err := env.Admin.RunAgent(ctx, "bad", client.RunRequest{Prompt: "x"})
		must(t, err)
		if r.Status != "failed" || *r.ExitCode != 7 {
			t.Errorf("run: %+v", r)
		}
		gone(t, r)
		mk("slow", "sleep 60")
		r, err = env.Admin.RunAgent(ctx, "slow", client.RunRequest{Prompt: "x", Timeout: 1000})
		must(t, err)
		if r.Status != "timed_out" {
			t.Errorf("run: %+v", r)
		}
		gone(t, r)
	})
}

// TestAgentExampleNotes runs examples/agents/notes.sh as the README does.
func TestAgentExampleNotes(t *testing.T) {
	needAgentEngine(t)
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := newAgentSetup(t, env, env.Admin)
	script, err := os.ReadFile("../examples/agents/notes.sh")
	must(t, err)
	_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "notes", ExecutionMode: "in_sandbox", Sandbox: a.sbx.Name, Command: agentSh(string(script))})
	must(t, err)
	r1, err := env.Admin.RunAgent(ctx, "notes", client.RunRequest{Prompt: "buy milk"})
	must(t, err)
	r2, err := env.Admin.RunAgent(ctx, "notes", client.RunRequest{Prompt: "call bob", ThreadID: r1.ThreadID})
	must(t, err)
	if r1.Status != "completed" || r2.Status != "completed" {
		t.Fatalf("runs: %+v / %+v", r1, r2)
	}
	if !strings.Contains(r2.Output, "earlier prompts in this thread: 1") || !strings.Contains(r2.Output, "  - buy milk") {
		t.Errorf("second run does not remember the first: %q", r2.Output)
	}
	ex, err := env.Admin.Exec(ctx, a.sbx.ID, client.ExecRequest{Command: "cat /workspace/NOTES.md"})
	must(t, err)
	if !strings.HasPrefix(ex.Stdout, "# Notes\n") || !strings.Contains(ex.Stdout, "buy milk") || !strings.Contains(ex.Stdout, "call bob") {
		t.Errorf("NOTES.md: %q", ex.Stdout)
	}
}

func TestAgentRestartInterruptsRuns(t *testing.T) {
	dbs := map[string]string{"sqlite": ""}
	if os.Getenv("BERTH_TEST_POSTGRES") != "" {
		dbs["postgres"] = "" // filled below, inside the subtest
	}
	for name := range dbs {
		t.Run(name, func(t *testing.T) {
			cfg := server.Defaults()
			cfg.Addr = "127.0.0.1:0"
			cfg.DataDir = t.TempDir()
			if name == "postgres" {
				cfg.Database = dbtest.PostgresDSN(t)
			}
			var runIDs []string
			t.Run("first life", func(t *testing.T) {
				env := servertest.StartConfig(t, cfg)
				ctx := context.Background()
				_, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "a", ExecutionMode: "managed", Template: "base", Command: []string{"true"}})
				must(t, err)
				ag, err := env.Admin.Agent(ctx, "a")
				must(t, err)
				me, err := env.Admin.Me(ctx)
				must(t, err)
				// Rows as a crash would leave them: one queued, one running.
				now := time.Now().UTC()
				_, err = env.DB.Exec(env.DB.Rebind(`INSERT INTO threads (id, org_id, owner_user_id, agent_id, agent_slug, title, created_at, updated_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), "thr_crash", me.Org.ID, me.User.ID, ag.ID, "a", "t", now, now)
				must(t, err)
				for _, st := range []string{"queued", "running"} {
					id := "run_crash" + st
					_, err = env.DB.Exec(env.DB.Rebind(`INSERT INTO runs (id, org_id, owner_user_id, thread_id, agent_id, agent_slug, agent_version,
						execution_mode, status, timeout_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
						id, me.Org.ID, me.User.ID, "thr_crash", ag.ID, "a", 1, "managed", st, 1000, now)
					must(t, err)
					runIDs = append(runIDs, id)
				}
			})
			env := servertest.StartConfig(t, cfg)
			ctx := context.Background()
			for _, id := range runIDs {
				r, err := env.Admin.GetRun(ctx, id)
				must(t, err)
				if r.Status != "failed" || r.StatusReason != "interrupted" || r.FinishedAt == nil {
					t.Errorf("%s after restart: %+v", id, r)
				}
				evs, err := env.Admin.RunEvents(ctx, id)
				must(t, err)
				if len(evs) != 2 || evs[1].Type != "result" {
					t.Errorf("%s events after restart: %+v", id, evs)
				}
				// A follower ends at once.
				must(t, env.Admin.FollowRun(ctx, id, "", func(client.Event) error { return nil }))
			}
		})
	}
}

func TestAgentScopes(t *testing.T) {
	needAgentEngine(t)
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := newAgentSetup(t, env, env.Admin)
	_, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "adm", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: agentSh("echo ok")})
	must(t, err)
	r, err := env.Admin.RunAgent(ctx, "adm", client.RunRequest{Prompt: "x"})
	must(t, err)

	key := func(scopes ...string) *client.Client {
		k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "k", Scopes: scopes})
		must(t, err)
		return env.Admin.WithKey(k.Key)
	}
	reader := key("agent:read")
	if _, err := reader.GetRun(ctx, r.RunID); err != nil {
		t.Errorf("agent:read GET run: %v", err)
	}
	if _, err := reader.ThreadEvents(ctx, r.ThreadID); err != nil {
		t.Errorf("agent:read thread events: %v", err)
	}
	if _, err := reader.RunAgent(ctx, "adm", client.RunRequest{Prompt: "x"}); client.ErrorCode(err) != "forbidden" {
		t.Errorf("agent:read runs an agent: %v, want forbidden", err)
	}
	if _, err := reader.UpsertAgent(ctx, client.AgentRequest{Slug: "x", ExecutionMode: "managed", Template: "base", Command: []string{"true"}}); client.ErrorCode(err) != "forbidden" {
		t.Errorf("agent:read upserts: %v, want forbidden", err)
	}
	runner := key("agent:run")
	if rr, err := runner.RunAgent(ctx, "adm", client.RunRequest{Prompt: "x"}); err != nil || rr.Status != "completed" {
		t.Errorf("agent:run runs: %v %+v", err, rr)
	}
	if _, err := runner.GetRun(ctx, r.RunID); client.ErrorCode(err) != "forbidden" {
		t.Errorf("agent:run reads a run: %v, want forbidden", err)
	}

	// A member cannot see the admin's agent, runs or threads ...
	_, m := env.Member(t, "mallory", "member")
	if _, err := m.RunAgent(ctx, "adm", client.RunRequest{Prompt: "x"}); client.ErrorCode(err) != "not_found" {
		t.Errorf("member runs the admin's agent: %v, want not_found", err)
	}
	if _, err := m.GetRun(ctx, r.RunID); client.ErrorCode(err) != "not_found" {
		t.Errorf("member reads the admin's run: %v, want not_found", err)
	}
	if _, err := m.RunAgent(ctx, "adm", client.RunRequest{Prompt: "x", ThreadID: r.ThreadID}); client.ErrorCode(err) != "not_found" {
		t.Errorf("member continues the admin's thread: %v", err)
	}
	// ... cannot link the admin's sandbox ...
	if _, err := m.UpsertAgent(ctx, client.AgentRequest{Slug: "mine", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: []string{"true"}}); client.ErrorCode(err) != "not_found" {
		t.Errorf("member links the admin's sandbox: %v, want not_found", err)
	}
	// ... and cannot run an agent of theirs that an admin pointed at it.
	mws, err := m.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "m"})
	must(t, err)
	msb, err := m.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none", Mounts: []client.Mount{{WorkspaceID: mws.ID, Path: "/workspace"}}}, false)
	must(t, err)
	destroyOnCleanup(t, env.Admin, msb.ID)
	_, err = m.UpsertAgent(ctx, client.AgentRequest{Slug: "mine", ExecutionMode: "in_sandbox", Sandbox: msb.ID, Command: agentSh("echo mine")})
	must(t, err)
	if mr, err := m.RunAgent(ctx, "mine", client.RunRequest{Prompt: "x"}); err != nil || mr.Output != "mine\n" {
		t.Errorf("member runs own agent: %v %+v", err, mr)
	}
	up, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "mine", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: agentSh("echo mine")})
	must(t, err)
	if up.Action != "updated" {
		t.Fatalf("admin upsert of the member's agent: %+v", up)
	}
	if _, err := m.RunAgent(ctx, "mine", client.RunRequest{Prompt: "x"}); client.ErrorCode(err) != "not_found" {
		t.Errorf("member runs on a sandbox they cannot see: %v, want not_found", err)
	}
	// Admins see the org's agents with all=true; members may not ask.
	if as, err := env.Admin.Agents(ctx, true); err != nil || len(as) != 2 {
		t.Errorf("admin all agents: %v %d", err, len(as))
	}
	if _, err := m.Agents(ctx, true); client.ErrorCode(err) != "forbidden" {
		t.Errorf("member all=true: %v", err)
	}
}

func TestAgentBadInput(t *testing.T) {
	needAgentEngine(t)
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := newAgentSetup(t, env, env.Admin)
	dead, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none"}, false)
	must(t, err)
	_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "ok", ExecutionMode: "in_sandbox", Sandbox: dead.ID, Command: []string{"true"}})
	must(t, err)
	must(t, env.Admin.DestroySandbox(ctx, dead.ID))
	_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "live", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: []string{"true"}})
	must(t, err)
	_, err = env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "live2", ExecutionMode: "in_sandbox", Sandbox: a.sbx.ID, Command: []string{"true"}})
	must(t, err)
	r, err := env.Admin.RunAgent(ctx, "live", client.RunRequest{Prompt: "x"})
	must(t, err)

	in := func(extra string) string {
		return `{"slug":"b","executionMode":"in_sandbox","sandbox":"` + a.sbx.ID + `","command":["true"]` + extra + `}`
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown agent run", "POST", "/v1/agents/nope/run", `{"prompt":"x"}`, 404, "not_found"},
		{"unknown agent get", "GET", "/v1/agents/nope", ``, 404, "not_found"},
		{"unknown agent delete", "DELETE", "/v1/agents/nope", ``, 404, "not_found"},
		{"unknown agent /v1/run", "POST", "/v1/run", `{"agent":"nope","prompt":"x"}`, 404, "not_found"},
		{"/v1/run without agent", "POST", "/v1/run", `{"prompt":"x"}`, 400, "invalid_request"},
		{"in_sandbox without sandbox", "POST", "/v1/agents", `{"slug":"b","executionMode":"in_sandbox","command":["true"]}`, 400, "invalid_request"},
		{"in_sandbox unknown sandbox", "POST", "/v1/agents", `{"slug":"b","executionMode":"in_sandbox","sandbox":"sbx_nope","command":["true"]}`, 404, "not_found"},
		{"in_sandbox destroyed sandbox", "POST", "/v1/agents", `{"slug":"b","executionMode":"in_sandbox","sandbox":"` + dead.ID + `","command":["true"]}`, 400, "invalid_request"},
		{"in_sandbox with template", "POST", "/v1/agents", in(`,"template":"base"`), 400, "invalid_request"},
		{"managed without template", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","command":["true"]}`, 400, "invalid_request"},
		{"managed unknown template", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"nope","command":["true"]}`, 400, "invalid_request"},
		{"managed bad mount path", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"base","command":["true"],"mounts":[{"workspaceId":"` + a.ws + `","path":"/etc"}]}`, 400, "invalid_request"},
		{"managed unknown workspace", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"base","command":["true"],"mounts":[{"workspaceId":"00000000-0000-0000-0000-000000000000","path":"/workspace"}]}`, 404, "not_found"},
		{"no mode", "POST", "/v1/agents", `{"slug":"b","command":["true"]}`, 400, "invalid_request"},
		{"bad mode", "POST", "/v1/agents", `{"slug":"b","executionMode":"remote","command":["true"]}`, 400, "invalid_request"},
		{"empty command", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"base","command":[]}`, 400, "invalid_request"},
		{"missing command", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"base"}`, 400, "invalid_request"},
		{"command wrong type", "POST", "/v1/agents", `{"slug":"b","executionMode":"managed","template":"base","command":42}`, 400, "invalid_request"},
		{"bad slug", "POST", "/v1/agents", in(`,"slug":"Bad Slug"`), 400, "invalid_request"},
		{"bad env key", "POST", "/v1/agents", in(`,"env":{"1X":"y"}`), 400, "invalid_request"},
		{"negative timeout", "POST", "/v1/agents", in(`,"timeout":-1`), 400, "invalid_request"},
		{"unknown field", "POST", "/v1/agents", in(`,"colour":"red"`), 400, "invalid_request"},
		{"run unknown field", "POST", "/v1/agents/live/run", `{"prompt":"x","colour":"red"}`, 400, "invalid_request"},
		{"run empty prompt", "POST", "/v1/agents/live/run", `{"prompt":""}`, 400, "invalid_request"},
		{"run huge prompt", "POST", "/v1/agents/live/run", `{"prompt":"` + strings.Repeat("a", 200_000) + `"}`, 400, "invalid_request"},
		{"run NUL prompt", "POST", "/v1/agents/live/run", `{"prompt":"a\u0000b"}`, 400, "invalid_request"},
		{"run bad timeout", "POST", "/v1/agents/live/run", `{"prompt":"x","timeout":-5}`, 400, "invalid_request"},
		{"run unknown thread", "POST", "/v1/agents/live/run", `{"prompt":"x","threadId":"thr_nope"}`, 404, "not_found"},
		{"run other agent's thread", "POST", "/v1/agents/live2/run", `{"prompt":"x","threadId":"` + r.ThreadID + `"}`, 400, "invalid_request"},
		{"run body names another agent", "POST", "/v1/agents/live/run", `{"agent":"ok","prompt":"x"}`, 400, "invalid_request"},
		{"run destroyed sandbox", "POST", "/v1/agents/ok/run", `{"prompt":"x"}`, 409, "conflict"},
		{"unknown run", "GET", "/v1/runs/run_nope", ``, 404, "not_found"},
		{"unknown run events", "GET", "/v1/runs/run_nope/events", ``, 404, "not_found"},
		{"run events bad cursor", "GET", "/v1/runs/" + r.RunID + "/events?cursor=x", ``, 400, "invalid_request"},
		{"run events bad limit", "GET", "/v1/runs/" + r.RunID + "/events?limit=0", ``, 400, "invalid_request"},
		{"cancel unknown run", "POST", "/v1/runs/run_nope/cancel", ``, 404, "not_found"},
		{"cancel ended run", "POST", "/v1/runs/" + r.RunID + "/cancel", ``, 409, "conflict"},
		{"unknown thread", "GET", "/v1/threads/thr_nope", ``, 404, "not_found"},
		{"threads bad cursor", "GET", "/v1/threads?cursor=zz!", ``, 400, "invalid_request"},
		{"patch thread nothing", "PATCH", "/v1/threads/" + r.ThreadID, `{}`, 400, "invalid_request"},
		{"patch thread unknown field", "PATCH", "/v1/threads/" + r.ThreadID, `{"colour":"red"}`, 400, "invalid_request"},
		{"patch thread bad title", "PATCH", "/v1/threads/" + r.ThreadID, `{"title":"a\nb"}`, 400, "invalid_request"},
		{"patch thread wrong type", "PATCH", "/v1/threads/" + r.ThreadID, `{"archived":"yes"}`, 400, "invalid_request"},
		{"delete unknown thread", "DELETE", "/v1/threads/thr_nope", ``, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, code, msg := rawCall(t, env, c.method, c.path, c.body)
			if st != c.status || code != c.code {
				t.Errorf("%s %s: %d %s (%s), want %d %s", c.method, c.path, st, code, msg, c.status, c.code)
			}
		})
	}
	if as, err := env.Admin.Agents(ctx, false); err != nil || len(as) != 3 {
		t.Errorf("bad input left agents behind: %v %d", err, len(as))
	}
}
