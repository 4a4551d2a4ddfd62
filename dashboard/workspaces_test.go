package dashboard_test

import (
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestWorkspaceAdmin: an admin renames a workspace, sets its quota (shown
// on its storage bar) and grants a member access, each checked through the
// API; a malformed quota is refused at the field.
func TestWorkspaceAdmin(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	carol, _ := env.Member(t, "carol", "member")
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "shared"})
	must(t, err)
	card := `.ws-card[data-slug="` + ws.Slug + `"]`
	b.SignIn(env.AdminKey)
	b.WaitText(card, "shared")

	b.Click(card + ` button[aria-label="Rename shared"]`)
	b.Type("#ws-rename", "team shared")
	b.Run(chromedp.KeyEvent("\r"))
	b.WaitText(card+" .ws-name", "team shared")
	got, err := env.Admin.Workspace(ctx, ws.ID)
	must(t, err)
	if got.Name != "team shared" {
		t.Fatalf("renamed in the UI, the API says %q", got.Name)
	}

	b.Click(card + ` button[aria-label="Quota of team shared"]`)
	b.Type("#ws-quota-edit", "-5")
	b.Run(chromedp.KeyEvent("\r"))
	b.WaitText("dialog .error-text", "Quota must be")
	b.Type("#ws-quota-edit", "10M")
	b.Run(chromedp.KeyEvent("\r"))
	b.WaitText(card+" .meter-text", "of 10 MiB")
	got, err = env.Admin.Workspace(ctx, ws.ID)
	must(t, err)
	if got.QuotaBytes == nil || *got.QuotaBytes != 10<<20 {
		t.Fatalf("quota set in the UI, the API says %v", got.QuotaBytes)
	}

	b.Click(card + ` button[aria-label="Access to team shared"]`)
	b.Click(`.access-list input[aria-label="Grant carol"]`)
	b.Click(`dialog .dialog-actions button.primary`)
	b.WaitJS(`document.querySelector('dialog') === null`)
	ids, err := env.Admin.WorkspaceAccess(ctx, ws.ID)
	must(t, err)
	if !slices.Contains(ids, carol.ID) {
		t.Fatalf("access granted in the UI, the API lists %v", ids)
	}
}
