package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

func downloadString(t *testing.T, a *client.Client, ws, p string) (string, string) {
	t.Helper()
	resp, err := a.Download(context.Background(), ws, p, client.DownloadOptions{})
	must(t, err)
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b), resp.Header.Get("ETag")
}

// TestPutFile: the raw upload creates (201) or replaces (200) a file with
// the body's bytes, parents included, with or without Content-Length, and
// honours If-Match.
func TestPutFile(t *testing.T) {
	t.Parallel()
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := testctx.Context(t)
		a := env.Admin
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "put"})
		must(t, err)

		put := func(p, body string, size int64, ifMatch string) (*http.Response, string) {
			t.Helper()
			req, err := a.NewRequest(ctx, "PUT", "/v1/workspaces/"+w.ID+"/upload"+p, strings.NewReader(body))
			must(t, err)
			req.ContentLength = size
			if size < 0 {
				req.Body = io.NopCloser(strings.NewReader(body)) // chunked
			}
			if ifMatch != "" {
				req.Header.Set("If-Match", ifMatch)
			}
			resp, err := env.HTTP().Do(req)
			must(t, err)
			defer closeBody(resp)
			b, err := io.ReadAll(resp.Body)
			must(t, err)
			return resp, string(b)
		}

		resp, body := put("/new/dir/a.txt", "hello", 5, "")
		if resp.StatusCode != 201 || resp.Header.Get("ETag") == "" {
			t.Fatalf("create: %d %s (ETag %q)", resp.StatusCode, body, resp.Header.Get("ETag"))
		}
		got, etag := downloadString(t, a, w.ID, "/new/dir/a.txt")
		if got != "hello" || etag != resp.Header.Get("ETag") {
			t.Errorf("after create: %q etag %s, answer's etag %s", got, etag, resp.Header.Get("ETag"))
		}
		resp, body = put("/new/dir/a.txt", strings.Repeat("chunked ", 1000), -1, etag)
		if resp.StatusCode != 200 {
			t.Fatalf("replace, chunked, If-Match current: %d %s", resp.StatusCode, body)
		}
		if got, _ := downloadString(t, a, w.ID, "/new/dir/a.txt"); got != strings.Repeat("chunked ", 1000) {
			t.Errorf("after a chunked replace: %d bytes", len(got))
		}
		if resp, body = put("/new/dir/a.txt", "stale", 5, etag); resp.StatusCode != 412 || !strings.Contains(body, "precondition_failed") {
			t.Errorf("If-Match of an old version: %d %s", resp.StatusCode, body)
		}
		if resp, body = put("/nope.txt", "x", 1, "*"); resp.StatusCode != 412 {
			t.Errorf("If-Match * of a missing file: %d %s", resp.StatusCode, body)
		}
		if resp, body = put("/new/dir", "x", 1, ""); resp.StatusCode != 409 {
			t.Errorf("a directory at the path: %d %s", resp.StatusCode, body)
		}
		if resp, body = put("/.berth-tmp-x", "x", 1, ""); resp.StatusCode != 400 {
			t.Errorf("a reserved name: %d %s", resp.StatusCode, body)
		}
		if resp, body = put("/empty", "", 0, ""); resp.StatusCode != 201 {
			t.Errorf("an empty file: %d %s", resp.StatusCode, body)
		}

		// The Go client.
		e, err := a.PutFile(ctx, w.ID, "/c/d.bin", bytes.NewReader([]byte("client")), 6)
		must(t, err)
		if e.ID != "/c/d.bin" || e.Size != 6 {
			t.Errorf("PutFile answered %+v", e)
		}
		_, err = a.PutFileIf(ctx, w.ID, "/c/d.bin", strings.NewReader("x"), -1, `"nope"`)
		wantCode(t, "PutFileIf with a wrong ETag", err, "precondition_failed")

		// Read-only keys may not write.
		ro, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "ro", Scopes: []string{"files:read"}})
		must(t, err)
		_, err = a.WithKey(ro.Key).PutFile(ctx, w.ID, "/ro.txt", strings.NewReader("x"), 1)
		wantCode(t, "put with files:read", err, "forbidden")
	})
}

// TestPutFileFailureLeavesNothing: over the quota, or cut short by the
// client, a raw upload leaves no file, no temporary file and no directory
// it created.
func TestPutFileFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	a := env.Admin
	big := bytes.Repeat([]byte("q"), 2<<20)

	t.Run("quota", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "put-quota", QuotaBytes: ptr(int64(1 << 20))})
		must(t, err)
		_, err = a.PutFile(ctx, w.ID, "/deep/er/big.bin", bytes.NewReader(big), int64(len(big)))
		wantCode(t, "put over quota", err, "quota_exceeded")
		_, err = a.PutFile(ctx, w.ID, "/deep/er/big.bin", io.MultiReader(bytes.NewReader(big)), -1)
		wantCode(t, "chunked put over quota", err, "quota_exceeded")
		wantNothing(t, env, w.ID)
		_, err = a.PutFile(ctx, w.ID, "/deep/er/small.bin", bytes.NewReader(big[:1000]), 1000)
		must(t, err)
	})

	t.Run("client goes away", func(t *testing.T) {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "put-aborted"})
		must(t, err)
		conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
		must(t, err)
		defer func() { _ = conn.Close() }() // closed below: this is for a failure before
		bw := bufio.NewWriter(conn)
		// bufio.Writer keeps its first error: the Flush below reports it.
		_, _ = fmt.Fprintf(bw, "PUT /v1/workspaces/%s/upload/sub/f.bin HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: %d\r\n\r\n",
			w.ID, env.AdminKey, len(big)+(64<<20))
		_, err = bw.Write(big)
		must(t, err)
		must(t, bw.Flush())
		testctx.Eventually(t, "the upload to be on disk", func() bool { return len(tempLeft(t, wsDir(env, w.ID))) == 1 })
		must(t, conn.Close())
		testctx.Eventually(t, "the aborted upload to clean up", func() bool {
			return len(tempLeft(t, wsDir(env, w.ID))) == 0 && env.API.Files.Stats().InUse == 0
		})
		wantNothing(t, env, w.ID)
	})
}
