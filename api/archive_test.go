package api_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace"
)

// TestArchiveDownloadCap: archives are capped server-wide. With one slot,
// a download in progress makes the next one wait, then answer 503 with
// Retry-After and the error envelope; once the first is done, downloads
// work again.
func TestArchiveDownloadCap(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	// The slot stays taken for the whole wait, so how long the wait is
	// does not change the outcome.
	cfg.Archives = workspace.ArchiveLimits{Max: 1, Wait: 100 * time.Millisecond}
	env := servertest.StartConfig(t, cfg)
	ctx := t.Context()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "cap"})
	if err != nil {
		t.Fatal(err)
	}
	// 32 MiB that does not compress: more than the connection buffers
	// hold, so a download nobody reads keeps its slot.
	big := make([]byte, 32<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(wsDir(env, w.ID), "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}

	first, err := a.Download(ctx, w.ID, "/", client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(first)
	// Headers are out: the first archive holds the slot until its body is
	// read.
	if st := env.API.Files.ArchiveStats(); st.Running != 1 {
		t.Errorf("running archives %d, want 1", st.Running)
	}

	req, err := a.NewRequest(ctx, "GET", "/v1/workspaces/"+w.ID+"/direct?id=/&format=tar.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	closeBody(resp)
	var env503 struct {
		Error struct{ Code, Message, RequestID string }
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		json.Unmarshal(body, &env503) != nil || env503.Error.Code != "unavailable" || env503.Error.RequestID == "" {
		t.Fatalf("second archive: %d Retry-After %q %s; want 503, Retry-After 1, the error envelope",
			resp.StatusCode, resp.Header.Get("Retry-After"), body[:min(len(body), 300)])
	}
	if resp.Header.Get("Content-Disposition") != "" {
		t.Error("a refused archive still names an attachment")
	}

	// The first archive is whole.
	data, err := io.ReadAll(first.Body)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil || len(zr.File) != 1 || zr.File[0].UncompressedSize64 != uint64(len(big)) {
		t.Fatalf("first archive: %v", err)
	}
	// Its handler gives the slot back once done; wait for that, not a while.
	for st := env.API.Files.ArchiveStats(); st.Running != 0; st = env.API.Files.ArchiveStats() {
		select {
		case <-st.Changed:
		case <-ctx.Done():
			t.Fatal("slot never released")
		}
	}
	third, err := a.Download(ctx, w.ID, "/", client.DownloadOptions{Format: "tar.gz"})
	if err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
	if _, err := io.Copy(io.Discard, third.Body); err != nil {
		t.Fatal(err)
	}
	closeBody(third)
}
