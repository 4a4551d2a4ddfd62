package dashboard_test

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestSandboxCreateWithMountAndConsole: the create form offers the
// organization workspace (not the personal one) for mounting, shows the
// API's validation messages at the field they are about (a resource, a
// mount path) and, once valid, creates the sandbox; its console streams a
// command's stdout and stderr and shows the exit code, and the file the
// command wrote through the mount is in the workspace.
func TestSandboxCreateWithMountAndConsole(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Project"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Mine", Personal: true})
	if err != nil {
		t.Fatal(err)
	}

	b.SignIn(env.AdminKey)
	b.Open("/sandboxes", "#new-sandbox")
	b.Press("#new-sandbox")
	b.Until(`(() => { const s = document.querySelector("#sbx-template"); return !!s && s.value === "base"; })()`)
	b.Type("#sbx-name", "ui-box")
	b.Press("#add-mount")
	b.Until(`document.querySelector("#mount-0-ws").value === ` + jsString(ws.ID))
	offered := Eval[[]string](b, `[...document.querySelectorAll("#mount-0-ws option")].map(o => o.value)`)
	if slices.Contains(offered, mine.ID) {
		t.Fatalf("the mount picker offers the personal workspace (%v)", offered)
	}
	if b.Value("#mount-0-path") != "/workspace" {
		t.Fatalf("first mount path: %q, want /workspace", b.Value("#mount-0-path"))
	}

	// A resource the API refuses: its message, with the request id, at
	// the memory field.
	b.Fill("#sbx-memory", "12")
	b.Press("#create-sandbox")
	b.UntilText(`[data-field="sbx-memory"] .field-error`, `resources.memory "12" is below the minimum`)
	if rid := b.Text(`[data-field="sbx-memory"] .field-error .request-id`); !strings.HasPrefix(rid, "req_") {
		t.Fatalf("field error request id %q", rid)
	}
	if !Eval[bool](b, `document.querySelector("#sbx-memory").getAttribute("aria-invalid") === "true"`) {
		t.Fatal("the memory field is not marked aria-invalid")
	}

	// An invalid mount path: the message at that mount's row.
	b.Fill("#sbx-memory", "")
	b.Fill("#mount-0-path", "/workspace/../etc")
	b.Press("#create-sandbox")
	b.UntilText(`[data-mount="0"] .mount-error`, `mount path "/workspace/../etc" is invalid`)
	b.WaitGone(`[data-field="sbx-memory"] .field-error`)
	if !Eval[bool](b, `document.querySelector("#mount-0-path").getAttribute("aria-invalid") === "true"`) {
		t.Fatal("the mount path is not marked aria-invalid")
	}
	// A path given twice: the error's field (mounts[1].path) puts it at
	// the second row only. The message names just the path, which both
	// rows have, so the wording fallback could not tell them apart.
	b.Fill("#mount-0-path", "/workspace/dup")
	b.Press("#add-mount")
	b.Until(`document.querySelector("#mount-1-path") !== null`)
	b.Fill("#mount-1-path", "/workspace/dup")
	b.Press("#create-sandbox")
	b.UntilText(`[data-mount="1"] .mount-error`, `mount path "/workspace/dup" appears twice`)
	b.WaitGone(`[data-mount="0"] .mount-error`)
	if Eval[bool](b, `document.querySelector("#mount-0-path").getAttribute("aria-invalid") === "true"`) {
		t.Fatal("the first mount's path is marked aria-invalid for the second's error")
	}
	b.Press(`[aria-label="Remove mount 2"]`)
	b.WaitGone(`[data-mount="1"]`)

	list, _, err := env.Admin.Sandboxes(ctx, client.SandboxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("refused creates left sandboxes: %+v", list)
	}

	b.Fill("#mount-0-path", "/workspace")
	b.Press("#create-sandbox")
	// The form goes to the new sandbox's page.
	b.UntilText("main h1", "ui-box")
	b.Type("#exec-command", `echo hello-$((6*7)); echo warn-on-stderr >&2; echo from-ui > /workspace/made-by-ui.txt; exit 3`)
	b.Press("#exec-run")
	b.UntilText("#exec-exit", "3")
	out := b.Text("#exec-output")
	if !strings.Contains(out, "hello-42") || !strings.Contains(out, "warn-on-stderr") {
		t.Fatalf("console output %q lacks the command's stdout and stderr", out)
	}
	if !strings.Contains(b.Text("#exec-output .out-stderr"), "warn-on-stderr") {
		t.Fatal("stderr is not shown as stderr")
	}

	// A second command, run with Enter: output appended, new exit code.
	b.Type("#exec-command", `cat /workspace/made-by-ui.txt`+kb.Enter)
	b.UntilText("#exec-exit", "0")
	b.UntilText("#exec-output", "from-ui")

	sb, err := env.Admin.Sandbox(ctx, "ui-box")
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Mounts) != 1 || sb.Mounts[0].WorkspaceID != ws.ID || sb.Mounts[0].Path != "/workspace" || sb.Mounts[0].ReadOnly {
		t.Fatalf("mounts through the API: %+v, want %s at /workspace read-write", sb.Mounts, ws.ID)
	}
	res, err := env.Admin.Download(ctx, ws.ID, "/made-by-ui.txt", client.DownloadOptions{})
	if err != nil {
		t.Fatalf("the file the console command wrote is not in the workspace: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if cerr := res.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "from-ui\n" {
		t.Fatalf("workspace file: %q", body)
	}
}

// TestSandboxLifecycleFromList drives pause, resume, stop, start, keep
// alive and destroy (confirmed) from the list's buttons and checks each
// through the API.
func TestSandboxLifecycleFromList(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	if _, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "cycle", Template: "base"}, false); err != nil {
		t.Fatal(err)
	}
	b.SignIn(env.AdminKey)
	b.Open("/sandboxes", `tr[data-sandbox="cycle"]`)
	row := `tr[data-sandbox="cycle"] `
	b.UntilText(row+".status", "running")

	status := func(want string) {
		t.Helper()
		b.UntilText(row+".status", want)
		sb, err := env.Admin.Sandbox(ctx, "cycle")
		if err != nil {
			t.Fatal(err)
		}
		if sb.Status != want {
			t.Fatalf("the page shows %s, the API %s", want, sb.Status)
		}
	}
	b.Press(row + `button[data-action="pause"]`)
	status("paused")
	b.Press(row + `button[data-action="resume"]`)
	status("running")

	before, err := env.Admin.Sandbox(ctx, "cycle")
	if err != nil {
		t.Fatal(err)
	}
	b.Press(row + `button[data-action="keepalive"]`)
	b.UntilText(".notices", "Idle timer of cycle reset")
	after, err := env.Admin.Sandbox(ctx, "cycle")
	if err != nil {
		t.Fatal(err)
	}
	// The notice comes only with the API's 200; the timestamp's resolution
	// may hide the step, so it must only not go back.
	if after.LastActivityAt.Before(before.LastActivityAt) {
		t.Fatalf("keepalive moved lastActivityAt back (%v, then %v)", before.LastActivityAt, after.LastActivityAt)
	}

	b.Press(row + `button[data-action="stop"]`)
	status("stopped")
	// The console of a stopped sandbox shows the API's refusal with its
	// request id.
	b.Open("/sandboxes/cycle", "#exec-command")
	b.Type("#exec-command", "true")
	b.Press("#exec-run")
	b.UntilText(".console .error-text", "must be running")
	if rid := b.Text(".console .error-text .request-id"); !strings.HasPrefix(rid, "req_") {
		t.Fatalf("console error request id %q", rid)
	}
	b.Open("/sandboxes", row+".status")
	b.Press(row + `button[data-action="start"]`)
	status("running")

	b.Press(row + `button[data-action="destroy"]`)
	b.Press(`dialog .confirm-ok`)
	b.WaitGone(`tr[data-sandbox="cycle"]`)
	sb, err := env.Admin.Sandbox(ctx, "cycle")
	switch {
	case err == nil && sb.Status != "destroyed":
		t.Fatalf("after destroy the API says %s", sb.Status)
	case err != nil && client.ErrorCode(err) != "not_found":
		t.Fatal(err)
	}
}

// TestSandboxReadOnlyMount mounts two workspaces side by side from the form,
// one with the read-only toggle: a write through it fails in the console,
// the other lands in its workspace.
func TestSandboxReadOnlyMount(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	rw, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Writable"})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Reference"})
	if err != nil {
		t.Fatal(err)
	}
	b.SignIn(env.AdminKey)
	b.Open("/sandboxes", "#new-sandbox")
	b.Press("#new-sandbox")
	b.Until(`document.querySelector("#sbx-template").value === "base"`)
	b.Type("#sbx-name", "two-mounts")
	b.Press("#add-mount")
	b.Press("#add-mount")
	b.Fill("#mount-0-ws", rw.ID)
	b.Fill("#mount-0-path", "/workspace/rw")
	b.Fill("#mount-1-ws", ro.ID)
	b.Fill("#mount-1-path", "/workspace/ro")
	b.Press(`[data-mount="1"] .mount-ro`)
	b.Press("#create-sandbox")
	b.UntilText("main h1", "two-mounts")

	b.Type("#exec-command", `echo kept > /workspace/rw/out.txt; echo lost > /workspace/ro/out.txt`)
	b.Press("#exec-run")
	b.Until(`(() => { const e = document.querySelector("#exec-exit"); return !!e && e.textContent !== "0"; })()`)
	b.UntilText("#exec-output .out-stderr", "Read-only file system")

	sb, err := env.Admin.Sandbox(ctx, "two-mounts")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]client.Mount{}
	for _, m := range sb.Mounts {
		got[m.Path] = m
	}
	if m := got["/workspace/rw"]; m.WorkspaceID != rw.ID || m.ReadOnly {
		t.Fatalf("rw mount through the API: %+v", sb.Mounts)
	}
	if m := got["/workspace/ro"]; m.WorkspaceID != ro.ID || !m.ReadOnly {
		t.Fatalf("ro mount through the API: %+v", sb.Mounts)
	}
	if _, err := env.Admin.FileInfo(ctx, rw.ID, "/out.txt"); err != nil {
		t.Fatalf("the write through the writable mount: %v", err)
	}
	if _, err := env.Admin.FileInfo(ctx, ro.ID, "/out.txt"); client.ErrorCode(err) != "not_found" {
		t.Fatalf("the read-only workspace got a file (%v)", err)
	}
}
