package dashboard_test

import (
	"context"
	"fmt"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/berth-dev/berth/internal/testctx"
)

// Helpers for the sandbox, agent and organization page tests. Every one
// waits for a DOM condition (until the test's deadline), never for time.

// Press waits until the element matching sel is enabled and would itself
// get a click at its centre (scrolled to the middle of the window, not
// under a notice or another layer), then clicks it.
func (b *Browser) Press(sel string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e || e.disabled) return false;
		e.scrollIntoView({ block: "center", inline: "center" });
		const r = e.getBoundingClientRect();
		if (!r.width || !r.height) return false;
		const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
		return !!hit && (hit === e || e.contains(hit));
	})()`, jsString(sel)))
	b.Run(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Fill replaces the value of an input, textarea or select as a user's edit
// does: through the value setter, then input and change events, so the
// page's state follows.
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(sel)))
	Eval[bool](b, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		const proto = Object.getPrototypeOf(el);
		Object.getOwnPropertyDescriptor(proto, "value").set.call(el, %s);
		el.dispatchEvent(new Event("input", { bubbles: true }));
		el.dispatchEvent(new Event("change", { bubbles: true }));
		return true;
	})()`, jsString(sel), jsString(value)))
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(sel string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`!document.querySelector(%s)`, jsString(sel)))
}

// Value returns the value property of the element matching sel.
func (b *Browser) Value(sel string) string {
	b.t.Helper()
	return Eval[string](b, fmt.Sprintf(`document.querySelector(%s).value`, jsString(sel)))
}

// NoOverflow fails when the page is wider than the window (a layout that
// does not hold at this width scrolls sideways).
func (b *Browser) NoOverflow(page string) {
	b.t.Helper()
	w := Eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`)
	if w[0] > w[1] {
		b.t.Errorf("%s: the page is %d px wide in a %d px window", page, w[0], w[1])
	}
}

// Until waits until the expression is true, polling in the page for one
// step at most (stepTimeout, ending 30 s before the test's deadline so that
// the failure can still be reported). A wait that fails reports the page's
// text, to tell what the page showed instead.
func (b *Browser) Until(expr string) {
	b.t.Helper()
	timeout := max(time.Until(b.stepDeadline()), time.Second)
	if d, ok := testctx.Deadline(b.t); ok {
		timeout = min(timeout, max(time.Until(d)-30*time.Second, time.Second))
	}
	ctx, cancel := b.ctx()
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		tctx, tcancel := context.WithTimeout(b.tab, 20*time.Second)
		defer tcancel()
		text, terr := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body.innerText`))
		if terr != nil {
			text = "(unreadable: " + terr.Error() + ")"
		}
		b.t.Fatalf("waiting for %s: %v (console errors: %v)\npage text:\n%s", expr, err, b.Errors(), text)
	}
	b.Check()
}

// UntilText waits until the element matching sel contains want, until the
// test's deadline.
func (b *Browser) UntilText(sel, want string) {
	b.t.Helper()
	b.Until(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.textContent.includes(%s); })()`, jsString(sel), jsString(want)))
}

// keyEscape presses Escape in the focused element.
func keyEscape() chromedp.Action[chromedp.Void] { return chromedp.KeyEvent(kb.Escape) }

// Labelled fails for every visible control without an accessible name: a
// form field without a label (or aria-label), a button or link without
// text (or aria-label).
func (b *Browser) Labelled(page string) {
	b.t.Helper()
	bad := Eval[[]string](b, `(() => {
		const out = [];
		const shown = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
		for (const e of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
			if (!shown(e)) continue;
			if (e.labels && e.labels.length) continue;
			if (e.getAttribute("aria-label") || e.getAttribute("aria-labelledby")) continue;
			out.push(e.outerHTML.slice(0, 120));
		}
		for (const e of document.querySelectorAll("button, a[href]")) {
			if (!shown(e)) continue;
			if (e.textContent.trim() || e.getAttribute("aria-label")) continue;
			out.push(e.outerHTML.slice(0, 120));
		}
		return out;
	})()`)
	for _, e := range bad {
		b.t.Errorf("%s: control without a label: %s", page, e)
	}
}
