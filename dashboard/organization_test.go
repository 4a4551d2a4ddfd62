package dashboard_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestAPIKeyShownOnceAndRevoked creates a key with one scope in the UI: its
// secret is shown once (with the warning) and works against the API with
// exactly that scope; after the dialog it is nowhere in the page, also
// after a reload; revoking it in the UI makes the API answer 401.
func TestAPIKeyShownOnceAndRevoked(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	b.SignIn(env.AdminKey)
	b.Open("/organization", "#new-key")
	b.Press("#new-key")
	b.Press(`input[data-scope="files:read"]`)
	// Enter in the name field submits the form (keyboard use).
	b.Type("#key-name", "ci-reader"+kb.Enter)
	b.Until(`(() => { const e = document.querySelector("#new-key-secret"); return !!e && e.value.length > 0; })()`)
	secret := b.Value("#new-key-secret")
	b.UntilText("dialog .warning", "shown only once")

	c := env.Client(secret)
	if _, err := c.Workspaces(ctx, false); err != nil {
		t.Fatalf("the created key does not work: %v", err)
	}
	if _, _, err := c.Sandboxes(ctx, client.SandboxFilter{}); client.ErrorCode(err) != "forbidden" {
		t.Fatalf("a files:read key listing sandboxes: %v, want forbidden", err)
	}

	b.Press("#copy-key")
	b.Until(`document.querySelector("#copy-key").textContent === "Copied" || document.querySelector(".notices").textContent.includes("Ctrl+C")`)
	b.Press("#key-done")
	b.WaitGone("#new-key-secret")
	b.UntilText(`tr[data-key="ci-reader"]`, "active")
	if strings.Contains(Eval[string](b, `document.documentElement.outerHTML`), secret) {
		t.Fatal("the secret is still in the page after its dialog closed")
	}
	b.Open("/organization", `tr[data-key="ci-reader"]`)
	if strings.Contains(Eval[string](b, `document.documentElement.outerHTML`), secret) {
		t.Fatal("the secret is in the page after a reload")
	}

	b.Press(`tr[data-key="ci-reader"] button[data-action="revoke"]`)
	b.Press("dialog .confirm-ok")
	b.UntilText(`tr[data-key="ci-reader"]`, "revoked")
	if _, err := c.Workspaces(ctx, false); client.ErrorCode(err) != "unauthorized" {
		t.Fatalf("the revoked key: %v, want unauthorized", err)
	}
}

// TestMemberAddRoleChangeRemove adds a member in the UI, makes them an
// admin (confirmed) and removes them (confirmed), each checked through the
// API.
func TestMemberAddRoleChangeRemove(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	member := func(name string) *client.Member {
		t.Helper()
		ms, err := env.Admin.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Name == name {
				return &m
			}
		}
		return nil
	}
	b.SignIn(env.AdminKey)
	b.Open("/organization", "#add-member")
	b.Press("#add-member")
	b.Type("#member-name", "Dana")
	b.Press("#save-member")
	row := `tr[data-member="Dana"]`
	b.Until(`!!document.querySelector(` + jsString(row) + `)`)
	if m := member("Dana"); m == nil || m.Role != "member" {
		t.Fatalf("Dana through the API: %+v", m)
	}

	b.Fill(row+" select.member-role", "admin")
	b.UntilText("dialog", "Make Dana an admin?")
	b.Press("dialog .confirm-ok")
	b.WaitGone("dialog")
	b.Until(`document.querySelector(` + jsString(row+" select.member-role") + `).value === "admin"`)
	if m := member("Dana"); m == nil || m.Role != "admin" {
		t.Fatalf("after the role change, Dana through the API: %+v", m)
	}

	// Cancelling a role change changes nothing.
	b.Fill(row+" select.member-role", "member")
	b.UntilText("dialog", "Make Dana a member?")
	b.Press("dialog .dialog-actions button:not(.confirm-ok)")
	b.WaitGone("dialog")
	if v := b.Value(row + " select.member-role"); v != "admin" {
		t.Fatalf("after a cancelled change the select shows %q", v)
	}
	if m := member("Dana"); m == nil || m.Role != "admin" {
		t.Fatalf("a cancelled change reached the API: %+v", m)
	}

	b.Press(row + ` button[data-action="remove"]`)
	b.Press("dialog .confirm-ok")
	b.WaitGone(row)
	if m := member("Dana"); m != nil {
		t.Fatalf("Dana is still a member: %+v", m)
	}
}

// TestMemberViewHidesOthers: a member sees their own sandboxes and agents,
// not an admin's, gets a not-found (with request id) for the admin's
// sandbox page, and has no Organization page.
func TestMemberViewHidesOthers(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	adminBox, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "admins-box", Template: "base"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Admin.UpsertAgent(ctx, client.AgentRequest{Slug: "admins-agent", ExecutionMode: "in_sandbox",
		Sandbox: adminBox.ID, Command: []string{"/bin/sh", "-c", "echo hi"}}); err != nil {
		t.Fatal(err)
	}
	_, mc := env.Member(t, "Mo", "member")
	if _, err := mc.CreateSandbox(ctx, client.SandboxRequest{Name: "mos-box", Template: "base"}, false); err != nil {
		t.Fatal(err)
	}

	b.SignIn(mc.Key)
	b.UntilText("header.top nav", "Agents")
	if strings.Contains(b.Text("header.top nav"), "Organization") {
		t.Fatal("a member's navigation shows Organization")
	}
	b.Open("/sandboxes", `tr[data-sandbox="mos-box"]`)
	if Eval[bool](b, `!!document.querySelector('tr[data-sandbox="admins-box"]') || !!document.querySelector("#sbx-all")`) {
		t.Fatal("a member's sandbox list shows the admin's sandbox or the whole-organization switch")
	}
	b.Open("/sandboxes/"+adminBox.ID, "main .error-text")
	b.UntilText("main .error-text", "not found")
	if rid := b.Text("main .error-text .request-id"); !strings.HasPrefix(rid, "req_") {
		t.Fatalf("not-found without a request id (%q)", rid)
	}
	b.Open("/agents", "main h1")
	b.UntilText("main", "No agents yet")
	b.Open("/organization", "main h1")
	b.UntilText("main", "Only organization admins")
	if Eval[bool](b, `!!document.querySelector("#new-key") || !!document.querySelector("table.members")`) {
		t.Fatal("a member sees the organization's members or keys")
	}
}
