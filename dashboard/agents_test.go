package dashboard_test

import (
	"io"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestAgentDefineRunAndThread defines an agent in the form (a missing
// command first: the API's message at the command field), runs it and
// sees its output while the run is still going — it waits inside the
// sandbox until the test releases it — then the exit code, and the thread
// with the run and its events; a second run in the same thread is
// cancelled from the page.
func TestAgentDefineRunAndThread(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	sb, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "agent-home", Template: "base"}, false)
	if err != nil {
		t.Fatal(err)
	}

	b.SignIn(env.AdminKey)
	b.Open("/agents", "#new-agent")
	b.Press("#new-agent")
	b.Type("#agent-slug", "echoer")
	b.Type("#agent-name", "Echoer")
	b.Until(`document.querySelector("#agent-sandbox").value === ` + jsString(sb.ID))
	b.Press("#save-agent")
	b.UntilText(`[data-field="agent-command"] .field-error`, "command is required")
	if _, err := env.Admin.Agent(ctx, "echoer"); client.ErrorCode(err) != "not_found" {
		t.Fatalf("a refused define stored the agent (err %v)", err)
	}
	b.Fill("#agent-command", `echo "got: $BERTH_PROMPT"; echo "stdin: $(cat)"; while [ ! -e /tmp/release ]; do sleep 1; done; echo released; echo to-stderr >&2`)
	b.Press("#save-agent")
	b.UntilText("main h1", "Echoer")
	a, err := env.Admin.Agent(ctx, "echoer")
	if err != nil {
		t.Fatal(err)
	}
	if a.ExecutionMode != "in_sandbox" || a.SandboxID != sb.ID || len(a.Command) != 3 || a.Command[0] != "/bin/sh" {
		t.Fatalf("agent through the API: %+v", a)
	}

	// Edit: the form comes back filled in; a new timeout makes version 2
	// with the command and sandbox kept.
	b.Press("#edit-agent")
	b.Until(`document.querySelector("#agent-command").value.includes("BERTH_PROMPT") && document.querySelector("#agent-sandbox").value === ` + jsString(sb.ID))
	b.Fill("#agent-timeout", "30")
	b.Press("#save-agent")
	b.WaitGone("dialog[open]")
	b.UntilText("main dl.props", "version 2")
	a2, err := env.Admin.Agent(ctx, "echoer")
	if err != nil {
		t.Fatal(err)
	}
	if a2.Version != 2 || a2.Timeout != 30000 || a2.SandboxID != sb.ID || strings.Join(a2.Command, " ") != strings.Join(a.Command, " ") {
		t.Fatalf("after the edit, through the API: %+v", a2)
	}

	b.Type("#run-prompt", "hello agent")
	b.Press("#run-agent")
	// Streamed: the first lines are on the page while the run still waits.
	b.UntilText("#run-output", "got: hello agent")
	b.UntilText("#run-output", "stdin: hello agent")
	if Eval[bool](b, `!!document.querySelector("#run-exit")`) || strings.Contains(b.Text("#run-output"), "released") {
		t.Fatal("the run shows a result before the test released it")
	}
	if _, err := env.Admin.Exec(ctx, sb.ID, client.ExecRequest{Command: "touch /tmp/release"}); err != nil {
		t.Fatal(err)
	}
	b.UntilText("#run-output", "released")
	b.UntilText("#run-output .out-stderr", "to-stderr")
	b.UntilText("#run-exit", "0")
	b.UntilText("#run-status", "completed")

	threads, _, err := env.Admin.Threads(ctx, "echoer", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != 1 {
		t.Fatalf("threads through the API: %+v", threads)
	}
	b.Press("#run-thread-link")
	b.UntilText("table.runs", "completed")
	b.UntilText("#thread-events", "hello agent")
	b.UntilText("#thread-events", "got: hello agent")
	if !strings.HasSuffix(Eval[string](b, `location.pathname`), "/threads/"+threads[0].ID) {
		t.Fatalf("thread page at %s, want thread %s", Eval[string](b, `location.pathname`), threads[0].ID)
	}
	th, err := env.Admin.Thread(ctx, threads[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(th.Runs) != 1 || !strings.Contains(b.Text("table.runs"), th.Runs[0].RunID) {
		t.Fatalf("the thread page does not show the API's run %+v", th.Runs)
	}
	// The agent's page lists the thread.
	b.Press(`p.crumbs a[href="/agents/echoer"]`)
	b.UntilText(`tr[data-thread="`+threads[0].ID+`"]`, "")

	// A run that would wait for ever is cancelled from the page.
	if _, err := env.Admin.Exec(ctx, sb.ID, client.ExecRequest{Command: "rm /tmp/release"}); err != nil {
		t.Fatal(err)
	}
	b.Until(`!!document.querySelector('#run-thread option[value="` + threads[0].ID + `"]')`)
	b.Fill("#run-thread", threads[0].ID)
	b.Type("#run-prompt", "second")
	b.Press("#run-agent")
	b.UntilText("#run-output", "got: second")
	b.Press("#run-cancel")
	b.UntilText("#run-status", "cancelled")
	b.WaitGone("#run-cancelling")
	th, err = env.Admin.Thread(ctx, threads[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(th.Runs) != 2 || th.Runs[1].Status != "cancelled" {
		t.Fatalf("the second run (same thread) through the API: %+v", th.Runs)
	}
}

// TestManagedAgentFromForm defines a managed agent with a workspace mount
// in the form and runs it: a fresh sandbox per run, and what the run wrote
// under the mount stays in the workspace.
func TestManagedAgentFromForm(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Notes"})
	if err != nil {
		t.Fatal(err)
	}
	b.SignIn(env.AdminKey)
	b.Open("/agents", "#new-agent")
	b.Press("#new-agent")
	b.Type("#agent-slug", "scribe")
	b.Press("#mode-managed")
	b.Until(`(() => { const s = document.querySelector("#agent-template"); return !!s && s.value === "base"; })()`)
	b.Press("#add-mount")
	b.Until(`document.querySelector("#mount-0-ws").value === ` + jsString(ws.ID))
	b.Fill("#agent-command", `echo "$BERTH_PROMPT" > /workspace/note.txt; echo "wrote in $(hostname)"`)
	// A bad mount path: the error's field (mounts[0].path) puts it at the
	// mount's row; the wording fallback knows only the mounts as a whole.
	b.Fill("#mount-0-path", "/etc")
	b.Press("#save-agent")
	b.UntilText(`[data-mount="0"] .mount-error`, `mount path "/etc" is invalid`)
	if !Eval[bool](b, `document.querySelector("#mount-0-path").getAttribute("aria-invalid") === "true"`) {
		t.Fatal("the agent's mount path is not marked aria-invalid")
	}
	b.Fill("#mount-0-path", "/workspace")
	b.Press("#save-agent")
	b.UntilText("main h1", "scribe")
	a, err := env.Admin.Agent(ctx, "scribe")
	if err != nil {
		t.Fatal(err)
	}
	if a.ExecutionMode != "managed" || a.Template != "base" || len(a.Mounts) != 1 || a.Mounts[0].WorkspaceID != ws.ID || a.Mounts[0].Path != "/workspace" {
		t.Fatalf("managed agent through the API: %+v", a)
	}

	b.Type("#run-prompt", "remember this")
	b.Press("#run-agent")
	b.UntilText("#run-output", "wrote in")
	b.UntilText("#run-exit", "0")
	res, err := env.Admin.Download(ctx, ws.ID, "/note.txt", client.DownloadOptions{})
	if err != nil {
		t.Fatalf("the managed run's file is not in the workspace: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if cerr := res.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "remember this\n" {
		t.Fatalf("note.txt: %q", body)
	}
}
