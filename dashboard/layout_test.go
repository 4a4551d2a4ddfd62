package dashboard_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestLayout: at a laptop's 1280x800 and a phone's 390x844 the pages fit
// the width (no sideways scrolling) and the main controls are on screen.
func TestLayout(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "a workspace with a rather long name to wrap"})
	must(t, err)
	long := "a-file-with-a-very-long-name-that-must-not-push-the-layout-sideways-0123456789.txt"
	body := "x"
	_, err = env.Admin.CreateFile(ctx, ws.ID, "/", long, "file", &body)
	must(t, err)
	for _, size := range [][2]int{{1280, 800}, {390, 844}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			b := NewBrowser(t, env.URL, size[0], size[1])
			b.SignIn(env.AdminKey)
			fits := func(page string) {
				t.Helper()
				if over := Eval[int](b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
					t.Errorf("%s at %dx%d: %d px wider than the window", page, size[0], size[1], over)
				}
			}
			b.WaitText("#org-workspaces", "rather long name")
			fits("workspaces")
			b.Open("/workspaces/"+ws.ID+"/files", rowSel("/"+long))
			fits("files")
			for _, sel := range []string{`label[for=upload-files]`, "#new-folder", "#signout", rowSel("/"+long) + " button.name"} {
				b.Run(chromedp.WaitVisible(chromedp.CSS(sel)))
				inView := Eval[bool](b, fmt.Sprintf(`(() => { const r = document.querySelector(%s).getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth + 1 && r.width > 0; })()`, jsString(sel)))
				if !inView {
					t.Errorf("%s is not within the window at %dx%d", sel, size[0], size[1])
				}
			}
		})
	}
}

// TestKeyboard: sign in, move through a listing, select and open a folder
// with the keyboard alone.
func TestKeyboard(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "keys"})
	must(t, err)
	for _, d := range []string{"a-dir", "b-dir", "c-dir"} {
		_, err := env.Admin.CreateFile(ctx, ws.ID, "/", d, "directory", nil)
		must(t, err)
	}
	b.Open("/workspaces/"+ws.ID+"/files", "#apikey")
	// The key field has the focus: type and press Enter.
	b.Run(chromedp.KeyEvent(env.AdminKey), chromedp.KeyEvent("\r"))
	b.WaitRow("/c-dir")
	// Tab from the toolbar reaches the first row's name past the column
	// headers (one tab stop for the whole list: arrows move inside it).
	b.Run(chromedp.Focus(chromedp.CSS("#show-hidden")))
	for i := 0; i < 8 && Eval[string](b, `document.activeElement.closest('[data-id]')?.dataset.id || ""`) != "/a-dir"; i++ {
		b.Run(chromedp.KeyEvent("\t"))
	}
	b.WaitJS(`document.activeElement.closest('[data-id]').dataset.id === "/a-dir"`)
	b.Run(chromedp.KeyEvent(kb.ArrowDown))
	b.WaitJS(`document.activeElement.closest('[data-id]')?.dataset.id === "/b-dir"`)
	b.Run(chromedp.KeyEvent(" "))
	b.WaitText("#sel-count", "1 selected")
	if !Eval[bool](b, `document.querySelector(`+jsString(rowSel("/b-dir"))+` + ' td.sel input').checked`) {
		t.Fatal("space did not select the focused row")
	}
	b.Run(chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent("\r"))
	b.WaitText(".crumbs", "c-dir")
}

// TestSortAndHidden: the column headers sort through the API (size, then
// reversed) and the show-hidden toggle lists dot files.
func TestSortAndHidden(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "sorting"})
	must(t, err)
	for name, size := range map[string]int{"a-mid": 20, "b-big": 300, "c-small": 1, ".hidden": 5} {
		body := strings.Repeat("x", size)
		_, err := env.Admin.CreateFile(ctx, ws.ID, "/", name, "file", &body)
		must(t, err)
	}
	order := func() string {
		return Eval[string](b, `Array.from(document.querySelectorAll('.listing tr[data-id]')).map(r => r.dataset.id).join(" ")`)
	}
	b.SignIn(env.AdminKey)
	b.Open("/workspaces/"+ws.ID+"/files", rowSel("/c-small"))
	if got := order(); got != "/a-mid /b-big /c-small" {
		t.Fatalf("by name: %s", got)
	}
	b.Click(`th button[data-sort=size]`)
	b.WaitJS(`document.querySelector('.listing tbody tr[data-id]').dataset.id === "/c-small"`)
	if got := order(); got != "/c-small /a-mid /b-big" {
		t.Fatalf("by size: %s", got)
	}
	b.Click(`th button[data-sort=size]`)
	b.WaitJS(`document.querySelector('.listing tbody tr[data-id]').dataset.id === "/b-big"`)
	if got := order(); got != "/b-big /a-mid /c-small" {
		t.Fatalf("by size, reversed: %s", got)
	}
	b.Click("#show-hidden")
	b.WaitRow("/.hidden")
	if got := order(); got != "/b-big /a-mid /.hidden /c-small" {
		t.Fatalf("by size, reversed, with hidden: %s", got)
	}
}
