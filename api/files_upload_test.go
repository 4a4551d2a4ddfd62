package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace/files/filestest"
)

// postUpload sends a hand-made multipart body and returns the status and
// error code.
func postUpload(t *testing.T, env *servertest.Env, ws string, body []byte, contentType string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", env.URL+"/v1/workspaces/"+ws+"/upload", bytes.NewReader(body))
	must(t, err)
	req.Header.Set("X-API-Key", env.AdminKey)
	req.Header.Set("Content-Type", contentType)
	resp, err := env.HTTP().Do(req)
	must(t, err)
	defer closeBody(resp)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Errorf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, e.Error.Code
}

// wantNothing checks that the workspace holds exactly want, on disk and in
// its listing.
func wantNothing(t *testing.T, env *servertest.Env, ws string, want ...string) {
	t.Helper()
	if got := filestest.OnDisk(t, wsDir(env, ws)); !slices.Equal(got, want) {
		t.Errorf("on disk: %q, want %q", got, want)
	}
	es, _, err := env.Admin.ListFiles(context.Background(), ws, "/", client.ListFilesOptions{ShowHidden: true})
	must(t, err)
	var top []string
	for _, w := range want {
		if !strings.Contains(w, "/") {
			top = append(top, w)
		}
	}
	if got := names(es); !slices.Equal(got, top) {
		t.Errorf("listed: %q, want %q", got, top)
	}
}

// TestUploadReservedNames: no route creates a name reserved for berth's
// temporary files, whatever its spelling; the answer is a 400.
func TestUploadReservedNames(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "reserved"})
	must(t, err)
	_, err = a.CreateFile(ctx, w.ID, "/", "f.txt", "file", ptr("x"))
	must(t, err)
	for _, name := range []string{".berth-tmp-x", ".BERTH-TMP-x", ".berth\u00ad-tmp-x", "\uff0eberth-tmp-x", ".berth-tmp-\uf7ff"} {
		_, err = a.UploadAs(ctx, w.ID, "/", name, strings.NewReader("data"))
		wantCode(t, "upload as "+name, err, "invalid_request")
		_, err = a.Upload(ctx, w.ID, "/", client.UploadPart{Name: name, Body: strings.NewReader("data")})
		wantCode(t, "upload part "+name, err, "invalid_request")
		_, err = a.Upload(ctx, w.ID, "/up", client.UploadPart{Name: "sub/" + name + "/f", Body: strings.NewReader("data")})
		wantCode(t, "upload into "+name, err, "invalid_request")
		_, err = a.CreateFile(ctx, w.ID, "/", name, "file", ptr("x"))
		wantCode(t, "create "+name, err, "invalid_request")
		_, err = a.CreateFile(ctx, w.ID, "/", name, "directory", nil)
		wantCode(t, "mkdir "+name, err, "invalid_request")
		_, err = a.RenameFile(ctx, w.ID, "/f.txt", name, false)
		wantCode(t, "rename to "+name, err, "invalid_request")
	}
	wantNothing(t, env, w.ID, "f.txt")
}

// TestUploadFailureLeavesNothing: an upload that fails, for whatever reason
// and at whatever part, leaves no file, temporary file or directory.
func TestUploadFailureLeavesNothing(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := env.Admin
	big := bytes.Repeat([]byte("u"), 1<<20)

	t.Run("name after the file part", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "late-name"})
		must(t, err)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, err := mw.CreateFormFile("file", "a.bin")
		must(t, err)
		_, err = fw.Write(big)
		must(t, err)
		must(t, mw.WriteField("name", "b.bin"))
		must(t, mw.Close())
		if st, code := postUpload(t, env, w.ID, body.Bytes(), mw.FormDataContentType()); st != 400 || code != "invalid_request" {
			t.Errorf("answer %d %s, want 400 invalid_request", st, code)
		}
		wantNothing(t, env, w.ID)
	})

	t.Run("second part over quota", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "part-quota", QuotaBytes: ptr(int64(1500 << 10))})
		must(t, err)
		_, err = a.Upload(ctx, w.ID, "/", client.UploadPart{Name: "new/dir/first.bin", Body: bytes.NewReader(big)},
			client.UploadPart{Name: "second.bin", Body: bytes.NewReader(big)})
		wantCode(t, "upload over quota", err, "quota_exceeded")
		wantNothing(t, env, w.ID)
		// The quota held by the staged first part was given back.
		_, err = a.Upload(ctx, w.ID, "/", client.UploadPart{Name: "new/dir/first.bin", Body: bytes.NewReader(big)})
		must(t, err)
	})

	t.Run("bad second name", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bad-second"})
		must(t, err)
		_, err = a.Upload(ctx, w.ID, "/", client.UploadPart{Name: "d/first.bin", Body: bytes.NewReader(big)},
			client.UploadPart{Name: "../evil", Body: strings.NewReader("x")})
		wantCode(t, "upload with a bad second name", err, "invalid_request")
		wantNothing(t, env, w.ID)
	})

	t.Run("file where a part needs a directory", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "clash"})
		must(t, err)
		_, err = a.Upload(ctx, w.ID, "/", client.UploadPart{Name: "x", Body: bytes.NewReader(big)},
			client.UploadPart{Name: "x/y", Body: strings.NewReader("y")})
		wantCode(t, "upload of x and x/y", err, "conflict")
		wantNothing(t, env, w.ID)
	})

	t.Run("client goes away", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "aborted"})
		must(t, err)
		var head bytes.Buffer
		mw := multipart.NewWriter(&head)
		fw, err := mw.CreateFormFile("file", "sub/first.bin")
		must(t, err)
		_, err = fw.Write(big)
		must(t, err)
		_, err = mw.CreateFormFile("file", "second.bin")
		must(t, err)
		body := append(head.Bytes(), big...) // the second part never ends
		conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
		must(t, err)
		defer func() { _ = conn.Close() }() // closed below: this is for a failure before
		bw := bufio.NewWriter(conn)
		// bufio.Writer keeps its first error: the Flush below reports it.
		_, _ = fmt.Fprintf(bw, "POST /v1/workspaces/%s/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
			w.ID, env.AdminKey, mw.FormDataContentType(), len(body)+(64<<20))
		_, err = bw.Write(body)
		must(t, err)
		must(t, bw.Flush())
		// Both parts are being written: the first staged whole, the second
		// streaming.
		testctx.Eventually(t, "both parts to be on disk", func() bool { return len(tempLeft(t, wsDir(env, w.ID))) == 2 })
		must(t, conn.Close())
		testctx.Eventually(t, "the aborted upload to clean up", func() bool {
			return len(tempLeft(t, wsDir(env, w.ID))) == 0 && env.API.Files.Stats().InUse == 0
		})
		wantNothing(t, env, w.ID)
	})
}

// TestSparseFileQuota: a sandbox's 1 TiB sparse file (a few KiB on disk)
// and a thousand hard links to one file neither fill the quota nor block
// API writes; the summary shows the apparent size and what the disk holds.
func TestSparseFileQuota(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "sparse", QuotaBytes: ptr(int64(1 << 20))})
	must(t, err)
	dir := filepath.Join(wsDir(env, w.ID), "d")
	must(t, os.Mkdir(dir, 0o755))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(t, err)
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("no 1 TiB sparse file here: %v", err)
	}
	must(t, f.Close())
	must(t, os.WriteFile(filepath.Join(dir, "dense"), make([]byte, 100<<10), 0o644))
	for i := range 1000 {
		must(t, os.Link(filepath.Join(dir, "dense"), filepath.Join(dir, fmt.Sprintf("link%04d", i))))
	}
	_, err = a.UploadAs(ctx, w.ID, "/d", "api.bin", bytes.NewReader(make([]byte, 200<<10)))
	must(t, err)
	sp, err := a.WorkspaceSpace(ctx, w.ID)
	must(t, err)
	if sp.Used != 300<<10 {
		t.Errorf("used %d, want %d (the dense file once, the upload, no sparse bytes)", sp.Used, 300<<10)
	}
	sum, err := a.FileInfo(ctx, w.ID, "/d")
	must(t, err)
	if sum.Size != 1<<40+300<<10 || sum.Allocated < 300<<10 || sum.Allocated > 1<<20 {
		t.Errorf("summary size %d allocated %d", sum.Size, sum.Allocated)
	}
	fs, err := a.FileInfo(ctx, w.ID, "/d/sparse")
	must(t, err)
	if fs.Size != 1<<40 || fs.Allocated > 64<<10 {
		t.Errorf("sparse file: size %d allocated %d", fs.Size, fs.Allocated)
	}
}
