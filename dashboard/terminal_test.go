package dashboard_test

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestSandboxTerminal: the sandbox page's Terminal tab opens a shell in the
// sandbox over the pty WebSocket (signed in by the session cookie), runs
// what is typed into it and shows the exit code when the shell exits.
func TestSandboxTerminal(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	sb, err := env.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "term-box", Template: "base"}, false)
	if err != nil {
		t.Fatal(err)
	}
	b.SignIn(env.AdminKey)
	b.Open("/sandboxes/"+sb.ID, "#tab-terminal")
	b.Press("#tab-terminal")
	b.UntilText("#term-status", "Connected")
	b.Until(`document.querySelector("#terminal .xterm-rows").textContent.includes("# ")`)
	typeLine(b, "echo hi-$((40+2))")
	b.Until(`document.querySelector("#terminal .xterm-rows").textContent.includes("hi-42")`)
	typeLine(b, "exit 3")
	b.UntilText("#term-exit", "3")
	b.Press("#term-restart")
	b.UntilText("#term-status", "Connected")
	b.NoOverflow("sandbox terminal")
}

// typeLine types s into the terminal as text input (as a paste or an input
// method would deliver it), then presses Enter.
func typeLine(b *Browser, s string) {
	b.t.Helper()
	b.Run(chromedp.Focus(chromedp.CSS("#terminal .xterm-helper-textarea")),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: s})
			return err
		}),
		chromedp.KeyEvent(kb.Enter))
}
