package dashboard_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// firstListing sets up a 10,000-entry directory and a signed-in browser,
// then measures n visits: the time from navigating to the directory's page
// (app files cached, as a returning user has them) until its first rows
// are on screen: page load, session check, the first sorted page from the
// API and the render.
func firstListing(tb testing.TB, n int) time.Duration {
	env := servertest.Start(tb, "")
	ctx := testctx.Context(tb)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "big"})
	must(tb, err)
	dir := filepath.Join(env.API.Workspaces.Dir(ws.ID), "big")
	must(tb, os.MkdirAll(dir, 0o755))
	for i := range 10000 {
		must(tb, os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d.txt", i)), nil, 0o644))
	}
	br := NewBrowser(tb, env.URL, 1280, 800)
	br.SignIn(env.AdminKey)
	page := env.URL + "/workspaces/" + ws.ID + "/files/big"
	first := chromedp.CSS(rowSel("/big/file-00000.txt"))
	// One visit to warm the caches (HTTP revalidation, the directory's dentries).
	br.Navigate(page)
	br.Run(chromedp.WaitVisible(first))
	var total time.Duration
	for range n {
		br.Navigate("about:blank")
		start := time.Now()
		br.Navigate(page)
		br.Run(chromedp.WaitVisible(first))
		total += time.Since(start)
	}
	return total
}

// BenchmarkFirstListing10k: time to the first listing of a 10k-entry
// directory in Chromium (ms/first-listing).
func BenchmarkFirstListing10k(b *testing.B) {
	total := firstListing(b, b.N)
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/first-listing")
}

// TestFirstListing10k runs the benchmark's scenario once as a test: a
// 10k-entry directory lists (and logs how long its first page took).
func TestFirstListing10k(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,000 files")
	}
	t.Logf("first listing of a 10k-entry directory: %v", firstListing(t, 3)/3)
}
