package dashboard_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// TestUploadProgressAndCancel: on a slow link an upload shows its progress
// moving, and cancelling it stops it: the file never lands in the workspace.
func TestUploadProgressAndCancel(t *testing.T) {
	env, b := start(t)
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "slow"})
	must(t, err)
	b.SignIn(env.AdminKey)
	b.Open("/workspaces/"+ws.ID+"/files", ".listing")

	// 64 KiB/s up: a 4 MiB file takes a minute, far longer than the test.
	b.Run(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{URLPattern: "", Latency: 0, DownloadThroughput: -1, UploadThroughput: 64 << 10}},
		})
		return err
	}))
	src := filepath.Join(t.TempDir(), "big.bin")
	mustWrite(t, src, make([]byte, 4<<20))
	b.Run(chromedp.SetUploadFiles(chromedp.CSS("#upload-files"), []string{src}))
	row := `.upload[data-name="big.bin"]`
	b.WaitJS(`(() => { const p = document.querySelector('` + row + ` progress'); return !!p && p.value > 0 && p.value < p.max; })()`)
	b.WaitText("#upload-summary", "Uploading 0/1")
	b.Click(row + ` button[aria-label="Cancel upload of big.bin"]`)
	b.WaitText(row+" .upload-state", "cancelled")
	b.WaitNoRow("/big.bin")
	mustNotExist(t, filepath.Join(env.API.Workspaces.Dir(ws.ID), "big.bin"))
}
