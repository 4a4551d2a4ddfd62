package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestEditConflict: a text file edited and saved in the browser lands on
// disk; when the file changes underneath (through the API) a second save is
// refused and shown as a conflict, and the newer version survives.
func TestEditConflict(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "notes"})
	must(t, err)
	v1 := "first line\n"
	_, err = env.Admin.CreateFile(ctx, ws.ID, "/", "note.txt", "file", &v1)
	must(t, err)
	disk := env.API.Workspaces.Dir(ws.ID)

	b.SignIn(env.AdminKey)
	b.Open("/workspaces/"+ws.ID+"/files", rowSel("/note.txt"))
	b.Click(rowSel("/note.txt") + " button.name")
	b.WaitText(".preview-text", "first line")
	b.Click("#edit")
	b.Run(chromedp.Focus(chromedp.CSS("#editor")), chromedp.KeyEvent(kb.End, chromedp.KeyModifiers(kb.ModifierCtrl)), chromedp.SendKeys(chromedp.CSS("#editor"), "second line\n"))
	b.Click("#save")
	b.WaitText(".notices", "Saved note.txt")
	if got := string(mustRead(t, filepath.Join(disk, "note.txt"))); got != "first line\nsecond line\n" {
		t.Fatalf("after save the file holds %q", got)
	}

	// Someone else writes the file; our next save must not overwrite it.
	_, err = env.Admin.WriteFile(ctx, ws.ID, "/note.txt", "their version\n")
	must(t, err)
	b.Click("#edit")
	b.Run(chromedp.Focus(chromedp.CSS("#editor")), chromedp.SendKeys(chromedp.CSS("#editor"), "my change "))
	b.Click("#save")
	b.WaitText(".conflict", "Conflict")
	if rid := b.Text(".conflict .request-id"); !strings.HasPrefix(rid, "req_") {
		t.Fatalf("the conflict shows request id %q", rid)
	}
	if got := string(mustRead(t, filepath.Join(disk, "note.txt"))); got != "their version\n" {
		t.Fatalf("after the refused save the file holds %q, want their version", got)
	}
	// Taking theirs shows their version.
	b.Click("#conflict-reload")
	b.WaitText(".preview-text", "their version")
}

// TestWatchExecLive: a file written by a command inside a sandbox that
// mounts the workspace appears in the open listing without a reload.
func TestWatchExecLive(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "live"})
	must(t, err)
	sb, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none",
		Mounts: []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace"}}}, false)
	must(t, err)
	t.Cleanup(func() {
		cctx, cancel := testctx.Cleanup()
		defer cancel()
		if err := env.Admin.DestroySandbox(cctx, sb.ID); err != nil && client.ErrorCode(err) != "not_found" {
			t.Errorf("destroy sandbox: %v", err)
		}
	})

	b.SignIn(env.AdminKey)
	b.Open("/workspaces/"+ws.ID+"/files", ".listing")
	b.WaitJS(`document.querySelector('.live.on') !== null`)
	res, err := env.Admin.Exec(ctx, sb.ID, client.ExecRequest{Command: []string{"/bin/sh", "-c", "echo from-sandbox > /workspace/made-in-sandbox.txt"}})
	must(t, err)
	if res.ExitCode != 0 {
		t.Fatalf("exec: %+v", res)
	}
	b.WaitRow("/made-in-sandbox.txt")
	// Same page, no navigation: the row came from the watch stream.
	if n := Eval[int](b, `performance.getEntriesByType("navigation").length`); n != 1 {
		t.Fatalf("%d navigations, want the one page load", n)
	}

	// Deleting the mounted workspace shows who uses it and needs the slug
	// typed to force it.
	b.Click(`.crumbs li:first-child a`)
	b.Click(`.ws-card[data-slug="` + ws.Slug + `"] button.danger`)
	b.WaitText("dialog .usage-list", sb.Name)
	if !Eval[bool](b, `document.querySelector('#ws-delete-confirm').disabled`) {
		t.Fatal("force delete is enabled before the slug is typed")
	}
	b.Type("#ws-force", ws.Slug)
	b.WaitJS(`!document.querySelector('#ws-delete-confirm').disabled`)
	b.Click("#ws-delete-confirm")
	b.WaitJS(`document.querySelector('dialog') === null`)
	b.WaitJS(`document.querySelector('.ws-card[data-slug=` + jsString(ws.Slug) + `]') === null`)
	if _, err := env.Admin.Workspace(ctx, ws.ID); client.ErrorCode(err) != "not_found" {
		t.Fatalf("after the forced delete GET workspace: %v, want not_found", err)
	}
}

// TestMemberView: a member sees their own personal workspace and the org's,
// never another member's personal one, not even by its URL.
func TestMemberView(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	_, alice := env.Member(t, "alice", "member")
	_, bob := env.Member(t, "bob", "member")
	secret, err := alice.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "alice private", Personal: true})
	must(t, err)
	_, err = bob.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bob private", Personal: true})
	must(t, err)
	_, err = env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "team shared"})
	must(t, err)

	b.SignIn(bob.Key)
	b.WaitText("#personal-workspaces", "bob private")
	page := Eval[string](b, `document.querySelector('main').textContent`)
	if strings.Contains(page, "alice private") {
		t.Fatal("bob's workspaces page shows alice's personal workspace")
	}
	if Eval[bool](b, `!!document.querySelector('header.top nav a[href="/organization"]')`) {
		t.Fatal("a member sees the Organization entry")
	}
	// By URL: the API refuses, the page says so with a request id.
	b.Open("/workspaces/"+secret.ID+"/files", ".notice-error .request-id")
	if strings.Contains(Eval[string](b, `document.body.textContent`), "alice private") {
		t.Fatal("alice's workspace name shows on bob's page")
	}
}

// TestPlantedScriptInert: .html, .svg and Markdown files that try to run
// script are previewed and opened without running it (no dialog, no console
// message), and the file answers carry the headers that keep them inert.
func TestPlantedScriptInert(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "untrusted"})
	must(t, err)
	planted := map[string]string{
		"evil.html": `<html><body><script>alert("html")</script><img src=x onerror="alert('img')"><script>console.error("xss-html")</script></body></html>`,
		"evil.svg":  `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert('svg')"><script>alert("svg2")</script><rect width="10" height="10"/></svg>`,
		"evil.md":   "# title\n\n<script>alert('md')</script>\n\n<img src=x onerror=\"alert('md-img')\">\n\n[link](javascript:alert('md-link'))\n",
	}
	for name, body := range planted {
		_, err := env.Admin.CreateFile(ctx, ws.ID, "/", name, "file", &body)
		must(t, err)
	}
	b.SignIn(env.AdminKey)
	b.Open("/workspaces/"+ws.ID+"/files", rowSel("/evil.html"))

	// The HTML shows as text.
	b.Click(rowSel("/evil.html") + " button.name")
	b.WaitText(".preview-text", `alert("html")`)
	b.Run(chromedp.KeyEvent("\x1b"))
	b.WaitJS(`document.querySelector('dialog') === null`)

	// The SVG shows as an image (an <img> never runs script).
	b.Click(rowSel("/evil.svg") + " button.name")
	b.WaitJS(`(() => { const i = document.querySelector('.preview-img'); return !!i && i.complete && i.naturalWidth > 0; })()`)
	b.Run(chromedp.KeyEvent("\x1b"))
	b.WaitJS(`document.querySelector('dialog') === null`)

	// The Markdown renders sanitized: no script, no handlers, no javascript: links.
	b.Click(rowSel("/evil.md") + " button.name")
	b.WaitText(".markdown h1", "title")
	active := Eval[bool](b, `(() => { const m = document.querySelector('.markdown');
		if (m.querySelector('script, iframe, object, embed')) return true;
		for (const el of m.querySelectorAll('*')) {
			for (const a of el.attributes) {
				if (a.name.startsWith('on') || /^\s*javascript:/i.test(a.value)) return true;
			}
		}
		return false; })()`)
	if active {
		t.Fatalf("markdown preview keeps active content: %s", Get(b, chromedp.InnerHTML(chromedp.CSS(".markdown"))))
	}
	b.Run(chromedp.KeyEvent("\x1b"))

	// Opened directly, the files are attachments in a CSP sandbox, never
	// a page on the dashboard's origin.
	cookie := b.Cookie("berth_session")
	for _, name := range []string{"evil.html", "evil.svg"} {
		req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/workspaces/%s/direct?id=/%s", env.URL, ws.ID, name), nil)
		must(t, err)
		req.AddCookie(&http.Cookie{Name: "berth_session", Value: cookie})
		res, err := http.DefaultClient.Do(req)
		must(t, err)
		_, err = io.Copy(io.Discard, res.Body)
		must(t, err)
		must(t, res.Body.Close())
		h := res.Header
		if res.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") ||
			h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
			t.Fatalf("%s: %d %v, want an inert attachment", name, res.StatusCode, h)
		}
	}
	// Navigating the tab to the file downloads it rather than rendering it.
	_ = chromedp.Do(withTimeout(b), chromedp.Navigate(fmt.Sprintf("%s/v1/workspaces/%s/direct?id=/evil.html", env.URL, ws.ID)))
	b.WaitDownload("evil.html")
	b.Check()
}

// withTimeout is the tab's context for an action whose error is expected.
func withTimeout(b *Browser) context.Context {
	ctx, cancel := b.ctx()
	b.t.Cleanup(cancel)
	return ctx
}
