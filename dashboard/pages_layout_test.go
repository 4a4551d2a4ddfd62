package dashboard_test

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestSandboxAgentOrgPagesAtBothSizes opens every sandbox, agent and
// organization page, and their forms, at 1280x800 and at 390x844: no
// console errors, nothing wider than the window, every control labelled.
func TestSandboxAgentOrgPagesAtBothSizes(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "Look"})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "look-box", Template: "base",
		Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace"}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "looker", Name: "A rather long agent name for narrow screens",
		ExecutionMode: "in_sandbox", Sandbox: sb.ID, Command: []string{"/bin/sh", "-c", "echo looked at $BERTH_PROMPT"}}); err != nil {
		t.Fatal(err)
	}
	run, err := env.Admin.RunAgent(ctx, "looker", client.RunRequest{Prompt: "the layout"})
	if err != nil {
		t.Fatal(err)
	}
	pages := []struct{ path, sel, dialog, dialogSel string }{
		{"/sandboxes", `tr[data-sandbox="look-box"]`, "#new-sandbox", "#sbx-template"},
		{"/sandboxes/" + sb.ID, "#exec-command", "", ""},
		{"/agents", `tr[data-agent="looker"]`, "#new-agent", "#agent-slug"},
		{"/agents/looker", `tr[data-thread="` + run.ThreadID + `"]`, "#edit-agent", "#agent-command"},
		{"/threads/" + run.ThreadID, "#thread-events li", "", ""},
		{"/organization", `tr[data-key]`, "#new-key", "#key-name"},
	}
	for _, size := range [][2]int{{1280, 800}, {390, 844}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			b := NewBrowser(t, env.URL, size[0], size[1])
			b.SignIn(env.AdminKey)
			for _, p := range pages {
				b.Open(p.path, p.sel)
				b.NoOverflow(p.path)
				b.Labelled(p.path)
				if p.dialog != "" {
					b.Press(p.dialog)
					b.Until(`!!document.querySelector("dialog[open] ` + p.dialogSel + `")`)
					b.NoOverflow(p.path + " " + p.dialog)
					b.Labelled(p.path + " " + p.dialog)
					// Escape closes the dialog (keyboard use).
					b.Run(keyEscape())
					b.WaitGone("dialog[open]")
				}
				b.Check()
			}
		})
	}
}
