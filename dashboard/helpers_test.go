package dashboard_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/internal/testctx"
)

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// rowSel selects the listing row of the entry with API path id.
func rowSel(id string) string { return fmt.Sprintf(`.listing tr[data-id=%s]`, jsString(id)) }

// WaitRow waits for the listing row of id.
func (b *Browser) WaitRow(id string) {
	b.t.Helper()
	b.Run(chromedp.WaitVisible(chromedp.CSS(rowSel(id))))
}

// WaitNoRow waits until the listing has no row for id.
func (b *Browser) WaitNoRow(id string) {
	b.t.Helper()
	b.WaitJS(fmt.Sprintf(`document.querySelector(%s) === null`, jsString(rowSel(id))))
}

// WaitPicker waits until the move/copy folder picker has listed the folder
// it shows (its list is no longer aria-busy): the dialog's layout has
// settled, so a click aimed at its buttons lands where it was aimed.
func (b *Browser) WaitPicker() {
	b.t.Helper()
	b.WaitJS(`document.querySelector('.pick-list[aria-busy="false"]') !== null`)
}

// Select ticks the selection checkbox of id's row.
func (b *Browser) Select(id string) {
	b.t.Helper()
	b.Run(chromedp.Click(chromedp.CSS(rowSel(id) + ` td.sel input`)))
}

// Click clicks the element matching sel once it is visible.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Run(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// Type clears the input matching sel and types s into it.
func (b *Browser) Type(sel, s string) {
	b.t.Helper()
	// Select what is there so that the typing replaces it: the page sees
	// the input events a person's typing makes (Clear would bypass them).
	b.Run(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)))
	Eval[bool](b, fmt.Sprintf(`(() => { document.querySelector(%s).select(); return true; })()`, jsString(sel)))
	b.Run(chromedp.SendKeys(chromedp.CSS(sel), s))
}

// WaitDownload waits for the browser to finish downloading name and returns
// its bytes.
func (b *Browser) WaitDownload(name string) []byte {
	b.t.Helper()
	p := filepath.Join(b.Downloads, name)
	var data []byte
	testctx.Eventually(b.t, "download of "+name, func() bool {
		if _, err := os.Stat(p + ".crdownload"); err == nil {
			return false
		}
		d, err := os.ReadFile(p)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				b.t.Fatal(err)
			}
			return false
		}
		data = d
		return true
	})
	return data
}

// NoticeErrors returns the texts of the error notices shown.
func (b *Browser) NoticeErrors() string {
	b.t.Helper()
	return Eval[string](b, `Array.from(document.querySelectorAll('.notice-error')).map(e => e.textContent).join("\n")`)
}

func mustWrite(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: %v, want it gone", p, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
