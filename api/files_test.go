package api_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

func wsDir(env *servertest.Env, id string) string {
	return filepath.Join(env.Config.DataDir, "workspaces", id)
}

func ptr[T any](v T) *T { return &v }

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := client.ErrorCode(err); got != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func download(t *testing.T, c *client.Client, ws, p string, opt client.DownloadOptions) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Download(context.Background(), ws, p, opt)
	if err != nil {
		t.Fatalf("download %s: %v", p, err)
	}
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download %s: %v", p, err)
	}
	return resp, b
}

func names(es []client.FileEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestFilesRoutes(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		a := env.Admin
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "files"})
		must(t, err)
		id := w.ID

		t.Run("create", func(t *testing.T) {
			e, err := a.CreateFile(ctx, id, "/", "src", "directory", nil)
			must(t, err)
			if e.ID != "/src" || e.Type != "directory" || e.MimeType != nil || e.Path != "/" {
				t.Errorf("created directory: %+v", e)
			}
			e, err = a.CreateFile(ctx, id, "/src", "a.txt", "file", ptr("hello"))
			must(t, err)
			if e.ID != "/src/a.txt" || e.Size != 5 || e.MimeType == nil || !strings.HasPrefix(*e.MimeType, "text/plain") {
				t.Errorf("created file: %+v", e)
			}
			_, err = a.CreateFile(ctx, id, "/src", "empty", "file", nil)
			must(t, err)
			for _, c := range []struct {
				what, dir, name, typ string
				contents             *string
				code                 string
			}{
				{"duplicate", "/src", "a.txt", "file", nil, "conflict"},
				{"duplicate dir", "/", "src", "directory", nil, "conflict"},
				{"dotdot name", "/src", "..", "file", nil, "invalid_request"},
				{"slash name", "/src", "a/b", "file", nil, "invalid_request"},
				{"backslash name", "/src", `a\b`, "file", nil, "invalid_request"},
				{"empty name", "/src", "", "file", nil, "invalid_request"},
				{"long name", "/src", strings.Repeat("n", 256), "file", nil, "invalid_request"},
				{"bad type", "/src", "x", "fifo", nil, "invalid_request"},
				{"contents for a directory", "/src", "x", "directory", ptr("x"), "invalid_request"},
				{"missing parent", "/nope", "x", "file", nil, "not_found"},
				{"parent is a file", "/src/a.txt", "x", "file", nil, "not_found"},
			} {
				_, err := a.CreateFile(ctx, id, c.dir, c.name, c.typ, c.contents)
				wantCode(t, c.what, err, c.code)
			}
		})

		t.Run("list", func(t *testing.T) {
			_, err := a.CreateFile(ctx, id, "/", ".env", "file", ptr("SECRET=1"))
			must(t, err)
			es, next, err := a.ListFiles(ctx, id, "/", client.ListFilesOptions{})
			must(t, err)
			if !slices.Equal(names(es), []string{"src"}) || next != "" {
				t.Errorf("root listing %v next %q", names(es), next)
			}
			es, _, err = a.ListFiles(ctx, id, "/", client.ListFilesOptions{ShowHidden: true})
			must(t, err)
			if !slices.Equal(names(es), []string{".env", "src"}) {
				t.Errorf("root listing with hidden files: %v", names(es))
			}
			_, err = a.CreateFile(ctx, id, "/", "many", "directory", nil)
			must(t, err)
			var want []string
			for i := range 7 {
				n := fmt.Sprintf("f%02d", i)
				want = append(want, n)
				_, err := a.CreateFile(ctx, id, "/many", n, "file", nil)
				must(t, err)
			}
			var got []string
			cursor, pages := "", 0
			for {
				es, next, err := a.ListFiles(ctx, id, "/many", client.ListFilesOptions{Limit: 3, Cursor: cursor})
				must(t, err)
				pages++
				got = append(got, names(es)...)
				if next == "" {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, want) || pages != 3 {
				t.Errorf("paged listing %v in %d pages, want %v in 3", got, pages, want)
			}
			st, code, _ := rawCall(t, env, "GET", "/v1/workspaces/"+id+"/files/many?limit=501", "")
			if st != 400 || code != "invalid_request" {
				t.Errorf("limit=501: %d %s", st, code)
			}
			_, _, err = a.ListFiles(ctx, id, "/many", client.ListFilesOptions{Cursor: "!!"})
			wantCode(t, "bad cursor", err, "invalid_request")
			_, _, err = a.ListFiles(ctx, id, "/nope", client.ListFilesOptions{})
			wantCode(t, "missing directory", err, "not_found")
			_, _, err = a.ListFiles(ctx, id, "/src/a.txt", client.ListFilesOptions{})
			wantCode(t, "list a file", err, "not_found")
			st, code, _ = rawCall(t, env, "GET", "/v1/workspaces/"+id+"/files?showHidden=perhaps", "")
			if st != 400 || code != "invalid_request" {
				t.Errorf("showHidden=perhaps: %d %s", st, code)
			}
		})

		t.Run("info", func(t *testing.T) {
			s, err := a.FileInfo(ctx, id, "/src")
			must(t, err)
			if s.Type != "directory" || s.Size != 5 || s.Count != 2 {
				t.Errorf("info of /src: %+v", s)
			}
			s, err = a.FileInfo(ctx, id, "/src/a.txt")
			must(t, err)
			if s.Type != "file" || s.Size != 5 || s.Name != "a.txt" {
				t.Errorf("info of a file: %+v", s)
			}
			_, err = a.FileInfo(ctx, id, "/src/nope")
			wantCode(t, "info of a missing entry", err, "not_found")
			sp, err := a.WorkspaceSpace(ctx, id)
			must(t, err)
			if sp.Used != 5+8 || sp.Total != -1 || sp.Free != -1 {
				t.Errorf("space: %+v", sp)
			}
		})

		t.Run("put", func(t *testing.T) {
			e, err := a.WriteFile(ctx, id, "/src/a.txt", "hello world")
			must(t, err)
			if e.Size != 11 {
				t.Errorf("write: %+v", e)
			}
			_, err = a.WriteFile(ctx, id, "/src", "x")
			wantCode(t, "write a directory", err, "conflict")
			_, err = a.WriteFile(ctx, id, "/nope/x", "x")
			wantCode(t, "write under a missing directory", err, "not_found")

			e, err = a.RenameFile(ctx, id, "/src/a.txt", "b.txt", false)
			must(t, err)
			if e.ID != "/src/b.txt" {
				t.Errorf("rename: %+v", e)
			}
			_, err = a.CreateFile(ctx, id, "/src", "c.txt", "file", ptr("c"))
			must(t, err)
			_, err = a.RenameFile(ctx, id, "/src/c.txt", "b.txt", false)
			wantCode(t, "rename onto an existing name", err, "conflict")
			_, err = a.RenameFile(ctx, id, "/src/c.txt", "../c.txt", false)
			wantCode(t, "rename with a path", err, "invalid_request")
			_, err = a.RenameFile(ctx, id, "/src/missing", "x", false)
			wantCode(t, "rename a missing file", err, "not_found")
			e, err = a.RenameFile(ctx, id, "/src/c.txt", "b.txt", true)
			must(t, err)
			if e.Size != 1 {
				t.Errorf("rename with overwrite: %+v", e)
			}

			_, err = a.CreateFile(ctx, id, "/", "dst", "directory", nil)
			must(t, err)
			e, err = a.MoveFile(ctx, id, "/src/b.txt", "/dst", false)
			must(t, err)
			if e.ID != "/dst/b.txt" {
				t.Errorf("move: %+v", e)
			}
			_, err = a.MoveFile(ctx, id, "/dst/b.txt", "/nope", false)
			wantCode(t, "move into a missing directory", err, "not_found")
			_, err = a.MoveFile(ctx, id, "/dst", "/dst", false)
			wantCode(t, "move a directory into itself", err, "invalid_request")
			e, err = a.CopyFile(ctx, id, "/dst/b.txt", "/src", false)
			must(t, err)
			if e.ID != "/src/b.txt" {
				t.Errorf("copy: %+v", e)
			}
			_, err = a.CopyFile(ctx, id, "/dst/b.txt", "/src", false)
			wantCode(t, "copy onto an existing name", err, "conflict")
			_, err = a.CopyFile(ctx, id, "/dst/b.txt", "/src", true)
			must(t, err)
			_, err = a.CopyFile(ctx, id, "/src", "/dst", false)
			must(t, err)
			s, err := a.FileInfo(ctx, id, "/dst/src")
			must(t, err)
			if s.Count != 2 {
				t.Errorf("copied directory: %+v", s)
			}

			for _, c := range []struct{ what, body string }{
				{"unknown operation", `{"operation":"chmod"}`},
				{"rename without target", `{"operation":"rename"}`},
				{"write without contents", `{"operation":"write"}`},
				{"write with target", `{"operation":"write","contents":"x","target":"/a"}`},
				{"unknown field", `{"operation":"write","contents":"x","mode":"0777"}`},
			} {
				st, code, _ := rawCall(t, env, "PUT", "/v1/workspaces/"+id+"/files/src/b.txt", c.body)
				if st != 400 || code != "invalid_request" {
					t.Errorf("%s: %d %s", c.what, st, code)
				}
			}
			st, code, _ := rawCall(t, env, "PUT", "/v1/workspaces/"+id+"/files/src/b.txt?overwrite=yes", `{"operation":"copy","target":"/"}`)
			if st != 400 || code != "invalid_request" {
				t.Errorf("overwrite=yes: %d %s", st, code)
			}
			big := `{"operation":"write","contents":"` + strings.Repeat("x", 1<<20) + `"}`
			st, code, _ = rawCall(t, env, "PUT", "/v1/workspaces/"+id+"/files/src/b.txt", big)
			if st != 413 || code != "payload_too_large" {
				t.Errorf("1 MiB of JSON contents: %d %s", st, code)
			}
		})

		t.Run("batch", func(t *testing.T) {
			_, err := a.CreateFile(ctx, id, "/", "batch", "directory", nil)
			must(t, err)
			res, err := a.BatchFiles(ctx, id, "copy", []string{"/dst/b.txt", "/missing"}, "/batch", false)
			must(t, err)
			if len(res) != 2 || !res[0].OK || res[0].Entry == nil || res[0].Entry.ID != "/batch/b.txt" ||
				res[1].OK || res[1].Error == nil || res[1].Error.Code != "not_found" {
				t.Errorf("batch copy: %+v", res)
			}
			res, err = a.BatchFiles(ctx, id, "copy", []string{"/dst/b.txt"}, "/batch", false)
			must(t, err)
			if res[0].OK || res[0].Error.Code != "conflict" {
				t.Errorf("batch copy clash: %+v", res[0])
			}
			res, err = a.BatchFiles(ctx, id, "move", []string{"/dst/b.txt"}, "/batch", true)
			must(t, err)
			if !res[0].OK {
				t.Errorf("batch move with overwrite: %+v", res[0])
			}
			many := make([]string, 251)
			for i := range many {
				many[i] = fmt.Sprintf("/f%d", i)
			}
			for _, c := range []struct {
				what, op string
				ids      []string
				target   string
			}{
				{"too many ids", "copy", many, "/batch"},
				{"no ids", "copy", nil, "/batch"},
				{"delete through PUT", "delete", []string{"/batch/b.txt"}, "/"},
				{"dotdot id", "move", []string{"/../etc/passwd"}, "/batch"},
				{"dotdot target", "copy", []string{"/batch/b.txt"}, "/../.."},
				{"NUL id", "copy", []string{"/batch/b\x00.txt"}, "/"},
			} {
				_, err := a.BatchFiles(ctx, id, c.op, c.ids, c.target, false)
				wantCode(t, c.what, err, "invalid_request")
			}
			st, code, _ := rawCall(t, env, "PUT", "/v1/workspaces/"+id+"/files", `{"operation":"copy","ids":["/batch/b.txt"]}`)
			if st != 400 || code != "invalid_request" {
				t.Errorf("batch without target: %d %s", st, code)
			}
		})

		t.Run("delete", func(t *testing.T) {
			must(t, a.DeleteFile(ctx, id, "/batch/b.txt"))
			wantCode(t, "delete twice", a.DeleteFile(ctx, id, "/batch/b.txt"), "not_found")
			wantCode(t, "delete the root", a.DeleteFile(ctx, id, "/"), "invalid_request")
			must(t, a.DeleteFile(ctx, id, "/dst"))
			res, err := a.DeleteFiles(ctx, id, []string{"/many/f00", "/many/f00", "/many"})
			must(t, err)
			if len(res) != 3 || !res[0].OK || res[1].OK || res[1].Error.Code != "not_found" || !res[2].OK {
				t.Errorf("batch delete: %+v", res)
			}
			_, err = a.DeleteFiles(ctx, id, []string{"../x"})
			wantCode(t, "batch delete of ../x", err, "invalid_request")
		})

		t.Run("upload", func(t *testing.T) {
			es, err := a.Upload(ctx, id, "/up/nested", client.UploadPart{Name: "one.txt", Body: strings.NewReader("one")},
				client.UploadPart{Name: "sub/two.txt", Body: strings.NewReader("two")})
			must(t, err)
			if len(es) != 2 || es[0].ID != "/up/nested/one.txt" || es[1].ID != "/up/nested/sub/two.txt" || es[1].Size != 3 {
				t.Errorf("upload: %+v", es)
			}
			e, err := a.UploadAs(ctx, id, "/up", "named.bin", strings.NewReader("named"))
			must(t, err)
			if e.ID != "/up/named.bin" || e.Size != 5 {
				t.Errorf("upload with a name field: %+v", e)
			}
			// An upload replaces the file.
			_, err = a.UploadAs(ctx, id, "/up", "named.bin", strings.NewReader("replaced"))
			must(t, err)
			if _, b := download(t, a, id, "/up/named.bin", client.DownloadOptions{}); string(b) != "replaced" {
				t.Errorf("replaced upload reads %q", b)
			}
			for _, bad := range []string{"../evil", "/etc/evil", `a\b`, "a/../../b", "x\x00y", ""} {
				_, err := a.Upload(ctx, id, "/up", client.UploadPart{Name: bad, Body: strings.NewReader("x")})
				wantCode(t, fmt.Sprintf("upload named %q", bad), err, "invalid_request")
			}
			_, err = a.UploadAs(ctx, id, "/up", "../evil", strings.NewReader("x"))
			wantCode(t, "name field ../evil", err, "invalid_request")
			_, err = a.UploadAs(ctx, id, "/src/b.txt", "x", strings.NewReader("x"))
			wantCode(t, "upload below a file", err, "conflict")
			st, code, _ := rawCall(t, env, "POST", "/v1/workspaces/"+id+"/upload", `{"file":"x"}`)
			if st != 400 || code != "invalid_request" {
				t.Errorf("JSON upload: %d %s", st, code)
			}
			if _, err := os.Stat(filepath.Join(env.Config.DataDir, "workspaces", "evil")); err == nil {
				t.Errorf("an upload escaped the workspace")
			}
		})

		t.Run("download", func(t *testing.T) {
			resp, b := download(t, a, id, "/up/nested/one.txt", client.DownloadOptions{})
			if string(b) != "one" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
				resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" ||
				!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "inline") {
				t.Errorf("download: %q %v", b, resp.Header)
			}
			etag := resp.Header.Get("ETag")
			resp, b = download(t, a, id, "/up/nested/one.txt", client.DownloadOptions{Header: http.Header{"If-None-Match": {etag}}})
			if resp.StatusCode != 304 || len(b) != 0 {
				t.Errorf("If-None-Match: %d %q", resp.StatusCode, b)
			}
			resp, b = download(t, a, id, "/up/named.bin", client.DownloadOptions{Header: http.Header{"Range": {"bytes=1-3"}}})
			if resp.StatusCode != 206 || string(b) != "epl" {
				t.Errorf("Range: %d %q", resp.StatusCode, b)
			}
			resp, _ = download(t, a, id, "/up/named.bin", client.DownloadOptions{Attachment: true})
			if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=named.bin` {
				t.Errorf("attachment: %q", cd)
			}
			_, err := a.WriteFile(ctx, id, "/up/named.bin", "changed")
			must(t, err)
			resp, b = download(t, a, id, "/up/named.bin", client.DownloadOptions{Header: http.Header{"If-None-Match": {etag}}})
			if resp.StatusCode != 200 || string(b) != "changed" || resp.Header.Get("ETag") == etag {
				t.Errorf("after a change: %d %q", resp.StatusCode, b)
			}

			resp, b = download(t, a, id, "/up", client.DownloadOptions{})
			if resp.Header.Get("Content-Type") != "application/zip" || !strings.Contains(resp.Header.Get("Content-Disposition"), "up.zip") {
				t.Errorf("zip headers: %v", resp.Header)
			}
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			must(t, err)
			var zn []string
			for _, f := range zr.File {
				zn = append(zn, f.Name)
			}
			for _, want := range []string{"up/named.bin", "up/nested/one.txt", "up/nested/sub/two.txt"} {
				if !slices.Contains(zn, want) {
					t.Errorf("zip lacks %s: %v", want, zn)
				}
			}
			resp, b = download(t, a, id, "/", client.DownloadOptions{Format: "tar.gz"})
			if !strings.Contains(resp.Header.Get("Content-Disposition"), w.Slug+".tar.gz") {
				t.Errorf("tar.gz of the root: %v", resp.Header)
			}
			gz, err := gzip.NewReader(bytes.NewReader(b))
			must(t, err)
			tr := tar.NewReader(gz)
			found := false
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				must(t, err)
				if h.Name == "up/nested/one.txt" {
					c, _ := io.ReadAll(tr)
					found = string(c) == "one"
				}
			}
			if !found {
				t.Errorf("tar.gz lacks up/nested/one.txt")
			}
			for _, c := range []struct{ what, q, code string }{
				{"no id", "", "invalid_request"},
				{"missing file", "?id=/nope", "not_found"},
				{"dotdot", "?id=/../secret", "invalid_request"},
				{"bad format", "?id=/up&format=rar", "invalid_request"},
				{"bad download flag", "?id=/up/named.bin&download=please", "invalid_request"},
			} {
				st, code, _ := rawCall(t, env, "GET", "/v1/workspaces/"+id+"/direct"+c.q, "")
				if code != c.code {
					t.Errorf("download %s: %d %s, want %s", c.what, st, code, c.code)
				}
			}
		})

		t.Run("quota", func(t *testing.T) {
			q, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "quota", QuotaBytes: ptr(int64(100))})
			must(t, err)
			_, err = a.CreateFile(ctx, q.ID, "/", "f", "file", ptr(strings.Repeat("a", 60)))
			must(t, err)
			_, err = a.WriteFile(ctx, q.ID, "/f", strings.Repeat("b", 101))
			wantCode(t, "write over quota", err, "quota_exceeded")
			_, err = a.CreateFile(ctx, q.ID, "/", "g", "file", ptr(strings.Repeat("c", 41)))
			wantCode(t, "create over quota", err, "quota_exceeded")
			_, err = a.UploadAs(ctx, q.ID, "/", "h", strings.NewReader(strings.Repeat("d", 50)))
			wantCode(t, "upload over quota", err, "quota_exceeded")
			_, err = a.CopyFile(ctx, q.ID, "/f", "/sub", false)
			wantCode(t, "copy into a missing dir", err, "not_found")
			_, err = a.CreateFile(ctx, q.ID, "/", "sub", "directory", nil)
			must(t, err)
			_, err = a.CopyFile(ctx, q.ID, "/f", "/sub", false)
			wantCode(t, "copy over quota", err, "quota_exceeded")
			if _, b := download(t, a, q.ID, "/f", client.DownloadOptions{}); string(b) != strings.Repeat("a", 60) {
				t.Errorf("old contents not kept: %q", b)
			}
			sp, err := a.WorkspaceSpace(ctx, q.ID)
			must(t, err)
			if sp.Used != 60 || sp.Total != 100 || sp.Free != 40 {
				t.Errorf("space: %+v", sp)
			}
			// Raising the quota applies to the open workspace at once.
			_, err = a.UpdateWorkspace(ctx, q.ID, map[string]any{"quotaBytes": 1000})
			must(t, err)
			_, err = a.WriteFile(ctx, q.ID, "/f", strings.Repeat("b", 101))
			must(t, err)
			_, err = a.UpdateWorkspace(ctx, q.ID, map[string]any{"quotaBytes": 150})
			must(t, err)
			_, err = a.UploadAs(ctx, q.ID, "/", "h", strings.NewReader(strings.Repeat("d", 50)))
			wantCode(t, "upload over a lowered quota", err, "quota_exceeded")
			_, err = a.UpdateWorkspace(ctx, q.ID, map[string]any{"quotaBytes": nil})
			must(t, err)
			_, err = a.UploadAs(ctx, q.ID, "/", "h", strings.NewReader(strings.Repeat("d", 5000)))
			must(t, err)
			sp, err = a.WorkspaceSpace(ctx, q.ID)
			must(t, err)
			if sp.Used != 5101 || sp.Total != -1 {
				t.Errorf("space, unlimited: %+v", sp)
			}
		})

		t.Run("sizes", func(t *testing.T) {
			s, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "sizes"})
			must(t, err)
			// Files already there before anything opened the workspace
			// (a sandbox wrote them), then through the API, then directly.
			must(t, os.WriteFile(filepath.Join(wsDir(env, s.ID), "pre"), make([]byte, 1000), 0o644))
			got, err := a.Workspace(ctx, s.ID)
			must(t, err)
			if got.SizeBytes != 1000 {
				t.Errorf("sizeBytes of a workspace never opened: %d", got.SizeBytes)
			}
			_, err = a.UploadAs(ctx, s.ID, "/", "api", bytes.NewReader(make([]byte, 500)))
			must(t, err)
			got, err = a.Workspace(ctx, s.ID)
			must(t, err)
			if got.SizeBytes != 1500 {
				t.Errorf("sizeBytes after an upload: %d", got.SizeBytes)
			}
			must(t, os.WriteFile(filepath.Join(wsDir(env, s.ID), "direct"), make([]byte, 2000), 0o644))
			testctx.Eventually(t, "sizeBytes to include a direct write", func() bool {
				got, err := a.Workspace(ctx, s.ID)
				return err == nil && got.SizeBytes == 3500
			})
			l, err := a.Workspaces(ctx, false)
			must(t, err)
			var sum int64
			for _, x := range l.Workspaces {
				sum += x.SizeBytes
				if x.ID == s.ID && x.SizeBytes != 3500 {
					t.Errorf("list sizeBytes %d", x.SizeBytes)
				}
			}
			if l.Storage.UsedBytes != sum || sum < 3500 {
				t.Errorf("storage.usedBytes %d, sum of sizes %d", l.Storage.UsedBytes, sum)
			}
			if got.LastAccessedAt == nil {
				t.Errorf("lastAccessedAt not set by file access")
			}
		})

		t.Run("watch", func(t *testing.T) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ready := make(chan struct{})
			events := make(chan client.FileEvent, 100)
			done := make(chan error, 1)
			go func() {
				done <- a.WatchFiles(wctx, id, "/src", func() { close(ready) }, func(e client.FileEvent) error {
					events <- e
					return nil
				})
				close(events)
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("watch ended before ready: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("watch not ready")
			}
			_, err := a.CreateFile(ctx, id, "/src", "watched.txt", "file", ptr("w"))
			must(t, err)
			must(t, os.WriteFile(filepath.Join(wsDir(env, id), "src", "direct.txt"), []byte("d"), 0o644))
			must(t, os.Remove(filepath.Join(wsDir(env, id), "src", "direct.txt")))
			_, err = a.CreateFile(ctx, id, "/", "outside-watch", "file", nil) // not below /src
			must(t, err)
			// The last change, a barrier: events come in order.
			_, err = a.CreateFile(ctx, id, "/src", "zz-marker", "file", nil)
			must(t, err)
			want := map[string]bool{"create /src/watched.txt": false, "create /src/direct.txt": false, "remove /src/direct.txt": false}
			for e := range events { // closed if the watch ends
				k := e.Type + " " + e.Path
				if strings.Contains(e.Path, "outside-watch") {
					t.Errorf("event outside the watched directory: %+v", e)
				}
				if k == "create /src/zz-marker" {
					break
				}
				want[k] = true
			}
			for k, seen := range want {
				if !seen {
					t.Errorf("no event %q", k)
				}
			}
			cancel()
			select {
			case err := <-done: // that it ends is the point, not how
				t.Logf("watch ended: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("watch did not end after the client went away")
			}
			testctx.Eventually(t, "the watch to release its workspace", func() bool { return env.API.Files.Stats().InUse == 0 })

			wantCode(t, "watch a file", a.WatchFiles(ctx, id, "/src/watched.txt", nil, func(client.FileEvent) error { return nil }), "invalid_request")
			wantCode(t, "watch a missing directory", a.WatchFiles(ctx, id, "/nope", nil, func(client.FileEvent) error { return nil }), "not_found")
			wantCode(t, "watch ..", a.WatchFiles(ctx, id, "/..", nil, func(client.FileEvent) error { return nil }), "invalid_request")
		})

		t.Run("deleting the workspace ends its watches", func(t *testing.T) {
			d, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "doomed"})
			must(t, err)
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- a.WatchFiles(ctx, d.ID, "/", func() { close(ready) }, func(client.FileEvent) error { return nil })
			}()
			<-ready
			_, err = env.Admin.Do(ctx, "DELETE", "/v1/workspaces/"+d.ID, nil, nil)
			must(t, err)
			select {
			case err := <-done: // that it ends is the point, not how
				t.Logf("watch ended: %v", err)
			case <-time.After(2 * time.Minute):
				t.Fatal("watch of a deleted workspace did not end")
			}
			_, _, err = a.ListFiles(ctx, d.ID, "/", client.ListFilesOptions{})
			wantCode(t, "list a deleted workspace", err, "not_found")
		})

		t.Run("personal", func(t *testing.T) {
			_, alice := env.Member(t, "alice-files", "member")
			_, bob := env.Member(t, "bob-files", "member")
			p, err := alice.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "mine", Personal: true})
			must(t, err)
			_, err = alice.CreateFile(ctx, p.ID, "/", "diary", "file", ptr("dear"))
			must(t, err)
			_, _, err = bob.ListFiles(ctx, p.ID, "/", client.ListFilesOptions{})
			wantCode(t, "bob lists alice's personal workspace", err, "not_found")
			_, err = bob.Download(ctx, p.ID, "/diary", client.DownloadOptions{})
			wantCode(t, "bob downloads alice's diary", err, "not_found")
			if _, b := download(t, a, p.ID, "/diary", client.DownloadOptions{}); string(b) != "dear" {
				t.Errorf("admin reads %q", b)
			}
			ro, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "ro", Scopes: []string{"files:read"}})
			must(t, err)
			_, err = a.WithKey(ro.Key).WriteFile(ctx, p.ID, "/diary", "x")
			wantCode(t, "write with files:read", err, "forbidden")
		})
	})
}

var _ = errors.New
var _ sync.Mutex
