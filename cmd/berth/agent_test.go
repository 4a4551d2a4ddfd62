package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// echoScript answers "got: <prompt>", notes on stderr, and fails with exit
// code 3 when the prompt asks it to.
const echoScript = `p=$(cat); echo "got: $p"; echo "note: $GREETING" >&2; case "$p" in *fail*) exit 3;; esac`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAgentCommands(t *testing.T) {
	needEngine(t)
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	ctx := testctx.Context(t)

	var ws client.Workspace
	c.JSON(&ws, "workspace", "create", "Docs Project", "--slug", "docs-project")
	c.OK("sandbox", "create", "--name", "repo-env", "--mount", "docs-project:/workspace", "--network", "none")

	// apply from YAML creates; applying it changed updates.
	spec := `slug: echo
name: Echo
sandbox: repo-env
command: ["/bin/sh", "-c", '` + echoScript + `']
env: {GREETING: hello}
timeout: 2m
`
	file := writeFile(t, "echo.yaml", spec)
	out := c.OK("agent", "apply", "-f", file)
	if !strings.HasPrefix(out, "agent echo created (agt_") || !strings.HasSuffix(out, ", version 1)\n") {
		t.Errorf("apply said %q", out)
	}
	file = writeFile(t, "echo.yaml", strings.Replace(spec, "name: Echo", "name: Echo Two", 1))
	out = c.OK("agent", "apply", "-f", file)
	if !strings.HasPrefix(out, "agent echo updated (agt_") || !strings.HasSuffix(out, ", version 2)\n") {
		t.Errorf("re-apply said %q", out)
	}
	var echo client.Agent
	c.JSON(&echo, "agent", "get", "echo")
	if echo.Name != "Echo Two" || echo.Version != 2 || echo.ExecutionMode != "in_sandbox" || echo.Timeout != 120000 || echo.Env[0] != "GREETING" {
		t.Errorf("after re-apply: %+v", echo)
	}

	// A JSON file of two agents, from stdin: a managed one with a
	// read-only mount by slug and a command line.
	c.Stdin = strings.NewReader(`[
	  {"slug": "lister", "template": "base", "mounts": ["docs-project:/workspace:ro"], "command": "ls /workspace"},
	  {"slug": "writer", "template": "base", "mounts": [{"workspace": "docs-project", "path": "/workspace"}], "command": "echo hi > /workspace/out.txt"}
	]`)
	var ups []client.AgentUpserted
	c.JSON(&ups, "agent", "apply", "-f", "-")
	if len(ups) != 2 || ups[0].Slug != "lister" || ups[0].Action != "created" || ups[1].Slug != "writer" {
		t.Errorf("apply JSON: %+v", ups)
	}
	var lister client.Agent
	c.JSON(&lister, "agent", "get", "lister")
	if lister.ExecutionMode != "managed" || len(lister.Mounts) != 1 || lister.Mounts[0] != (client.Mount{WorkspaceID: ws.ID, Path: "/workspace", ReadOnly: true}) ||
		strings.Join(lister.Command, " ") != "/bin/sh -c ls /workspace" {
		t.Errorf("lister: %+v", lister)
	}
	if r := c.Fail("agent", "apply", "-f", writeFile(t, "bad.yaml", "slug: x\ncommand: [true]\nbogus: 1\n")); !strings.Contains(r.Stderr, `unknown field "bogus"`) {
		t.Errorf("bad file: %q", r.Stderr)
	}

	// create from flags; create again is refused.
	out = c.OK("agent", "create", "flagged", "--sandbox", "repo-env", "--env", "A=1", "--timeout", "30s", "--", "/bin/sh", "-c", "echo flagged $A")
	if !strings.HasPrefix(out, "agent flagged created (agt_") {
		t.Errorf("create said %q", out)
	}
	if r := c.Fail("agent", "create", "flagged", "--sandbox", "repo-env", "--", "true"); !strings.Contains(r.Stderr, "agent flagged exists") {
		t.Errorf("create again: %q", r.Stderr)
	}

	// The example of the repository applies and runs as its comment says.
	if _, err := srv.Admin.WriteFile(ctx, ws.ID, "/README.md", "# Docs\nhello from the workspace\n"); err != nil {
		t.Fatal(err)
	}
	out = c.OK("agent", "apply", "-f", filepath.Join("..", "..", "examples", "agents", "code-assistant.yaml"))
	if !strings.HasPrefix(out, "agent code-assistant created (") {
		t.Errorf("apply the example said %q", out)
	}
	out = c.OK("agent", "run", "code-assistant", "Open /workspace/README.md and summarise it")
	if want := "prompt: Open /workspace/README.md and summarise it\n--- /workspace/README.md\n# Docs\nhello from the workspace\n"; out != want {
		t.Errorf("the example's run printed %q, want %q", out, want)
	}
	c.OK("agent", "delete", "code-assistant")

	// list and get.
	rows := c.Table("agent", "list")
	if len(rows) != 4 {
		t.Fatalf("list: %v", rows)
	}
	if e := row(t, rows, "SLUG", "echo"); e["NAME"] != "Echo Two" || e["MODE"] != "in_sandbox" || e["VERSION"] != "2" {
		t.Errorf("echo row: %v", e)
	}
	if row(t, rows, "SLUG", "lister")["MODE"] != "managed" {
		t.Errorf("lister row: %v", rows)
	}
	var ags []client.Agent
	c.JSON(&ags, "agent", "list")
	if len(ags) != 4 {
		t.Errorf("list -o json: %+v", ags)
	}
	if g := c.Table("agent", "get", "flagged"); len(g) != 1 || g[0]["SLUG"] != "flagged" {
		t.Errorf("get: %v", g)
	}
	if out := c.OK("__complete", "agent", "run", ""); !strings.Contains(out, "echo\tEcho Two") {
		t.Errorf("agent completion: %q", out)
	}

	// run: streamed output on stdout, stderr on stderr, exit 0.
	r := c.Run("agent", "run", "echo", "hello there")
	if r.Code != 0 || r.Stdout != "got: hello there\n" || !strings.Contains(r.Stderr, "note: hello") {
		t.Errorf("run: %+v", r)
	}
	if out := c.OK("agent", "run", "flagged", "x"); out != "flagged 1\n" {
		t.Errorf("run flagged: %q", out)
	}
	// A failing run exits with the agent's exit code and says why.
	r = c.Run("agent", "run", "echo", "please fail")
	if r.Code != 3 || r.Stdout != "got: please fail\n" || !strings.Contains(r.Stderr, " failed") || !strings.Contains(r.Stderr, "(exit code 3)") {
		t.Errorf("failing run: %+v", r)
	}
	if r := c.Run("agent", "run", "echo", "fail again", "--no-stream"); r.Code != 3 || r.Stdout != "got: fail again\n" {
		t.Errorf("failing run --no-stream: %+v", r)
	}
	if r := c.Fail("agent", "run", "no-such", "x"); r.Code != 1 || !strings.Contains(r.Stderr, `agent "no-such" not found (request req_`) {
		t.Errorf("run unknown agent: %+v", r)
	}
	// -o json: the run; --thread continues it.
	var run client.Run
	c.JSON(&run, "agent", "run", "echo", "first")
	if run.Status != "completed" || run.Output != "got: first\n" || run.ThreadID == "" || run.ExitCode == nil || *run.ExitCode != 0 {
		t.Errorf("run -o json: %+v", run)
	}
	c.Stdin = strings.NewReader("second")
	if out := c.OK("agent", "run", "echo", "-", "--thread", run.ThreadID, "--no-stream"); out != "got: second\n" {
		t.Errorf("run --thread --no-stream with the prompt on stdin: %q", out)
	}
	// A managed run: a fresh sandbox with the workspace mounted.
	if out := c.OK("agent", "run", "writer", "go"); out != "" {
		t.Errorf("writer said %q", out)
	}
	if out := c.OK("agent", "run", "lister", "go"); !strings.Contains(out, "out.txt") {
		t.Errorf("lister: %q", out)
	}

	// runs: every run of echo, table and JSON.
	runs := c.Table("agent", "runs", "echo")
	if len(runs) != 5 {
		t.Fatalf("runs: %v", runs)
	}
	if x := row(t, runs, "RUN", run.RunID); x["STATUS"] != "completed" || x["EXIT"] != "0" || x["THREAD"] != run.ThreadID {
		t.Errorf("run row: %v", x)
	}
	var rs []client.Run
	c.JSON(&rs, "agent", "runs", "echo")
	failed := 0
	for _, x := range rs {
		if x.Status == "failed" {
			failed++
		}
	}
	if len(rs) != 5 || failed != 2 {
		t.Errorf("runs -o json: %d runs, %d failed", len(rs), failed)
	}

	// threads: list, show, follow.
	trows := c.Table("thread", "list", "--agent", "echo")
	if len(trows) != 4 || row(t, trows, "ID", run.ThreadID)["EVENTS"] == "0" {
		t.Errorf("thread list: %v", trows)
	}
	var ths []client.Thread
	c.JSON(&ths, "thread", "list")
	if len(ths) != 8 { // echo's 4, flagged, writer, lister, and the deleted code-assistant's
		t.Errorf("thread list -o json: %d threads", len(ths))
	}
	parts := strings.SplitN(c.OK("thread", "show", run.ThreadID), "\n\n", 2)
	if len(parts) != 2 {
		t.Fatalf("thread show: %q", parts)
	}
	if rr := parseTable(t, parts[0]); len(rr) != 2 || rr[0]["RUN"] != run.RunID {
		t.Errorf("thread show runs: %v", rr)
	}
	evs := parseTable(t, parts[1])
	if row(t, evs, "TEXT", "got: second")["TYPE"] != "stdout" || row(t, evs, "TEXT", "first")["TYPE"] != "prompt" {
		t.Errorf("thread show events: %v", evs)
	}
	var detail struct {
		client.Thread
		Events []client.RunEvent `json:"events"`
	}
	c.JSON(&detail, "thread", "show", run.ThreadID)
	if len(detail.Runs) != 2 || len(detail.Events) != len(evs) || detail.AgentSlug != "echo" {
		t.Errorf("thread show -o json: %+v", detail)
	}

	f := c.Start("thread", "follow", run.ThreadID, "--from-start")
	testctx.Eventually(t, "follow prints the thread's history", func() bool {
		return strings.Contains(f.Stdout.String(), "got: second\n")
	})
	c.OK("agent", "run", "echo", "third", "--thread", run.ThreadID)
	testctx.Eventually(t, "follow prints a new run's output", func() bool {
		return strings.Contains(f.Stdout.String(), "got: third\n")
	})
	if code := f.Stop(t); code != 0 {
		t.Errorf("follow interrupted: exit %d, stderr %q", code, f.Stderr.String())
	}
	if got := f.Stdout.String(); got != "got: first\ngot: second\ngot: third\n" {
		t.Errorf("follow printed %q", got)
	}
	if !strings.Contains(f.Stderr.String(), "> third") {
		t.Errorf("follow's prompts: %q", f.Stderr.String())
	}

	// -o json: one event object per line.
	jf := c.Start("thread", "follow", run.ThreadID, "--from-start", "-o", "json")
	testctx.Eventually(t, "follow -o json prints the last run's output", func() bool {
		return strings.Contains(jf.Stdout.String(), `"text":"got: third\n"`)
	})
	if code := jf.Stop(t); code != 0 {
		t.Errorf("follow -o json interrupted: exit %d", code)
	}
	var types []string
	for _, l := range strings.Split(strings.TrimSpace(jf.Stdout.String()), "\n") {
		var e client.RunEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.ThreadID != run.ThreadID || e.Seq == 0 {
			t.Fatalf("follow -o json line %q: %+v %v", l, e, err)
		}
		types = append(types, e.Type)
	}
	if n := strings.Count(strings.Join(types, " "), "result"); n != 3 {
		t.Errorf("follow -o json: %d results in %v", n, types)
	}

	// Streaming is live: the first line shows while the run still waits.
	c.OK("agent", "create", "slow", "--sandbox", "repo-env", "--", "/bin/sh", "-c",
		"echo first; while [ ! -e /workspace/go ]; do sleep 0.1; done; echo second")
	live := c.Start("agent", "run", "slow", "x")
	testctx.Eventually(t, "the first line of a running run", func() bool {
		return live.Stdout.String() == "first\n"
	})
	if _, err := srv.Admin.WriteFile(ctx, ws.ID, "/go", ""); err != nil {
		t.Fatal(err)
	}
	if code := live.Wait(t); code != 0 || live.Stdout.String() != "first\nsecond\n" {
		t.Errorf("live run: exit %d, %q %q", code, live.Stdout.String(), live.Stderr.String())
	}

	// cancel: the run ends cancelled, its CLI exits non-zero.
	if err := srv.Admin.DeleteFile(ctx, ws.ID, "/go"); err != nil {
		t.Fatal(err)
	}
	stuck := c.Start("agent", "run", "slow", "y")
	var runID string
	testctx.Eventually(t, "the slow run to be running", func() bool {
		var rs []client.Run
		c.JSON(&rs, "agent", "runs", "slow")
		for _, x := range rs {
			if x.Status == "running" && stuck.Stdout.String() == "first\n" {
				runID = x.RunID
				return true
			}
		}
		return false
	})
	out = c.OK("agent", "cancel", runID)
	if out != "run "+runID+" cancelled (cancelled)\n" {
		t.Errorf("cancel said %q", out)
	}
	if code := stuck.Wait(t); code == 0 || !strings.Contains(stuck.Stderr.String(), "cancelled") {
		t.Errorf("cancelled run: exit %d, %q", code, stuck.Stderr.String())
	}

	// Interrupted, the CLI exits 130 and says how to stop the run that
	// goes on.
	bg := c.Start("agent", "run", "slow", "z")
	testctx.Eventually(t, "the interrupted run's first line", func() bool { return bg.Stdout.String() == "first\n" })
	if code := bg.Stop(t); code != exitInterrupted {
		t.Errorf("interrupted run: exit %d", code)
	}
	hint := bg.Stderr.String()
	i := strings.Index(hint, "berth agent cancel ")
	if i < 0 {
		t.Fatalf("no cancel hint: %q", hint)
	}
	bgID := strings.TrimSuffix(strings.Fields(hint[i+len("berth agent cancel "):])[0], "`")
	if out := c.OK("agent", "cancel", bgID); out != "run "+bgID+" cancelled (cancelled)\n" {
		t.Errorf("cancel from the hint said %q", out)
	}

	// delete.
	if out := c.OK("agent", "delete", "flagged"); out != "agent flagged deleted\n" {
		t.Errorf("delete said %q", out)
	}
	if r := c.Fail("agent", "get", "flagged"); !strings.Contains(r.Stderr, "not found (request req_") {
		t.Errorf("get deleted: %q", r.Stderr)
	}
}
