package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace"
)

// writeTree creates files (path → contents; a path ending in "/" is an
// empty directory) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree is the reverse of writeTree.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			ents, err := os.ReadDir(p)
			if err == nil && len(ents) == 0 {
				out[rel+"/"] = ""
			}
			return err
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d entries %v, want %d %v", what, len(got), keys(got), len(want), keys(want))
		return
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s = %q (present %v), want %q", what, k, g, ok, v)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestFilesCommands(t *testing.T) {
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	ctx := testctx.Context(t)
	c.OK("workspace", "create", "Docs Project", "--slug", "docs-project")
	var ws client.Workspace
	c.JSON(&ws, "workspace", "get", "docs-project")
	local := t.TempDir()
	writeTree(t, local, map[string]string{"README.md": "# hello\n", "notes.txt": "notes"})

	// put a file into a directory (created), then under a new name.
	out := c.OK("files", "put", filepath.Join(local, "README.md"), "docs-project:/src/")
	if !strings.HasPrefix(out, "uploaded ") || !strings.Contains(out, "to docs-project:/src/README.md") {
		t.Errorf("put said %q", out)
	}
	c.OK("files", "put", filepath.Join(local, "notes.txt"), "docs-project:/src/renamed.txt")
	var es []client.FileEntry
	c.JSON(&es, "files", "ls", "docs-project:/src")
	if len(es) != 2 || es[0].Name != "README.md" || es[1].Name != "renamed.txt" || es[1].Size != 5 {
		t.Fatalf("ls -o json: %+v", es)
	}
	rows := c.Table("files", "ls", "docs-project:/")
	if len(rows) != 1 || rows[0]["NAME"] != "src/" || rows[0]["TYPE"] != "directory" {
		t.Errorf("ls /: %v", rows)
	}
	rows = c.Table("files", "ls", ws.ID+":/src/")
	if row(t, rows, "NAME", "README.md")["SIZE"] != "8 B" {
		t.Errorf("ls by id: %v", rows)
	}
	if ids := strings.Fields(c.OK("files", "ls", "docs-project:/src", "-q")); len(ids) != 2 || ids[0] != "/src/README.md" {
		t.Errorf("ls -q: %v", ids)
	}
	if out := c.OK("files", "ls", "docs-project"); !strings.Contains(out, "src/") {
		t.Errorf("ls of a bare workspace: %q", out)
	}

	// put from stdin.
	c.Stdin = strings.NewReader("from stdin")
	if out := c.OK("files", "put", "-", "docs-project:/in.txt"); !strings.Contains(out, "uploaded stdin to docs-project:/in.txt (10 B)") {
		t.Errorf("put - said %q", out)
	}
	if out := c.OK("files", "cat", "docs-project:/in.txt"); out != "from stdin" {
		t.Errorf("put -: %q", out)
	}
	c.Fail("files", "put", "-", "docs-project:/src/")
	c.OK("files", "rm", "docs-project:/in.txt")

	// cat.
	if out := c.OK("files", "cat", "docs-project:/src/README.md", "docs-project:/src/renamed.txt"); out != "# hello\nnotes" {
		t.Errorf("cat: %q", out)
	}
	if r := c.Fail("files", "cat", "docs-project:/src"); !strings.Contains(r.Stderr, "is a directory") {
		t.Errorf("cat of a dir: %q", r.Stderr)
	}
	if r := c.Fail("files", "cat", "docs-project:/nope"); !strings.Contains(r.Stderr, "(request ") || r.Code != 1 {
		t.Errorf("cat of nothing: %+v", r)
	}

	// mkdir.
	if out := c.OK("files", "mkdir", "docs-project:/out"); out != "directory docs-project:/out created\n" {
		t.Errorf("mkdir said %q", out)
	}
	// An empty directory: no table at all, [] in JSON.
	if out := c.OK("files", "ls", "docs-project:/out"); out != "" {
		t.Errorf("ls of an empty dir: %q", out)
	}
	if out := c.OK("files", "ls", "docs-project:/out", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("ls -o json of an empty dir: %q", out)
	}
	if r := c.Fail("files", "mkdir", "docs-project:/out"); !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("mkdir of an existing dir: %q", r.Stderr)
	}
	c.OK("files", "mkdir", "-p", "docs-project:/a/b/c", "docs-project:/out")
	if info, err := srv.Admin.FileInfo(ctx, ws.ID, "/a/b/c"); err != nil || info.Type != "directory" {
		t.Errorf("mkdir -p: %+v %v", info, err)
	}

	// mv: rename in place, into a directory, to a new path elsewhere.
	if out := c.OK("files", "mv", "docs-project:/src/renamed.txt", "docs-project:/src/notes.txt"); !strings.Contains(out, "moved to docs-project:/src/notes.txt") {
		t.Errorf("mv rename: %q", out)
	}
	c.OK("files", "mv", "docs-project:/src/notes.txt", "docs-project:/out")
	c.OK("files", "mv", "docs-project:/out/notes.txt", "docs-project:/a/moved.txt")
	// cp: into a directory, to a new name elsewhere, several at once.
	c.OK("files", "cp", "docs-project:/src/README.md", "docs-project:/out/")
	c.OK("files", "cp", "docs-project:/src/README.md", "docs-project:/a/b/copy.md")
	if r := c.Fail("files", "cp", "docs-project:/src/README.md", "docs-project:/src/again.md"); !strings.Contains(r.Stderr, "same directory") {
		t.Errorf("cp to the same dir: %q", r.Stderr)
	}
	if r := c.Fail("files", "cp", "docs-project:/src/README.md", "docs-project:/out/"); !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("cp onto an existing file: %q", r.Stderr)
	}
	c.OK("files", "cp", "--overwrite", "docs-project:/src/README.md", "docs-project:/out/")
	var batch []client.BatchResult
	c.JSON(&batch, "files", "cp", "docs-project:/src/README.md", "docs-project:/a/moved.txt", "docs-project:/a/b/c")
	if len(batch) != 2 || !batch[0].OK || !batch[1].OK {
		t.Errorf("cp of two: %+v", batch)
	}
	want := map[string]string{
		"/src/README.md": "# hello\n", "/out/README.md": "# hello\n", "/a/moved.txt": "notes",
		"/a/b/copy.md": "# hello\n", "/a/b/c/README.md": "# hello\n", "/a/b/c/moved.txt": "notes",
	}
	for p, body := range want {
		if out := c.OK("files", "cat", "docs-project:"+p); out != body {
			t.Errorf("%s: %q, want %q", p, out, body)
		}
	}
	if _, err := srv.Admin.FileInfo(ctx, ws.ID, "/src/renamed.txt"); client.ErrorCode(err) != "not_found" {
		t.Errorf("moved file still there: %v", err)
	}

	// rm: a file, a directory only with -r, the root never.
	if out := c.OK("files", "rm", "docs-project:/a/moved.txt"); out != "docs-project:/a/moved.txt deleted\n" {
		t.Errorf("rm said %q", out)
	}
	if r := c.Fail("files", "rm", "docs-project:/a"); !strings.Contains(r.Stderr, "use rm -r") {
		t.Errorf("rm of a dir: %q", r.Stderr)
	}
	c.Fail("files", "rm", "-r", "docs-project:/")
	c.OK("files", "rm", "-r", "docs-project:/a")
	if _, err := srv.Admin.FileInfo(ctx, ws.ID, "/a"); client.ErrorCode(err) != "not_found" {
		t.Errorf("rm -r left /a: %v", err)
	}

	// get of a file; to stdout.
	dl := t.TempDir()
	out = c.OK("files", "get", "docs-project:/src/README.md", dl)
	if b, err := os.ReadFile(filepath.Join(dl, "README.md")); err != nil || string(b) != "# hello\n" || !strings.Contains(out, "downloaded docs-project:/src/README.md") {
		t.Errorf("get: %q %v (%q)", b, err, out)
	}
	if out := c.OK("files", "get", "docs-project:/src/README.md", "-"); out != "# hello\n" {
		t.Errorf("get -: %q", out)
	}
	if r := c.Fail("files", "get", "docs-project:/missing", dl); !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("get of nothing: %q", r.Stderr)
	}

	// Bad paths.
	if r := c.Fail("files", "ls", ":/x"); !strings.Contains(r.Stderr, "<workspace id or slug>:/path") {
		t.Errorf("no workspace: %q", r.Stderr)
	}
	if r := c.Fail("files", "put", filepath.Join(local, "README.md"), filepath.Join(local, "x")); !strings.Contains(r.Stderr, "where to put") {
		t.Errorf("put to a local path: %q", r.Stderr)
	}
	if r := c.Fail("files", "ls", "nope:/"); !strings.Contains(r.Stderr, `workspace "nope" not found (request `) {
		t.Errorf("unknown workspace: %q", r.Stderr)
	}

	// Completion of remote paths.
	if out := c.OK("__complete", "files", "ls", "docs"); !strings.Contains(out, "docs-project:/") {
		t.Errorf("workspace completion: %q", out)
	}
	if out := c.OK("__complete", "files", "cat", "docs-project:/src/"); !strings.Contains(out, "docs-project:/src/README.md") {
		t.Errorf("path completion: %q", out)
	}
}

func TestFilesDirectoryRoundTrip(t *testing.T) {
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	c.OK("workspace", "create", "rt")
	src := filepath.Join(t.TempDir(), "site")
	tree := map[string]string{
		"index.html":           "<h1>hi</h1>",
		"css/main.css":         "body{}",
		"deep/er/still/x.txt":  strings.Repeat("x", 100_000),
		"empty/":               "",
		"deep/empty-too/":      "",
		"name with spaces.txt": "spaces",
	}
	writeTree(t, src, tree)

	out := c.OK("files", "put", src, "rt:/")
	if !strings.Contains(out, "uploaded 4 files") {
		t.Errorf("put of a dir said %q", out)
	}
	// The progress bar is drawn only on a terminal: stderr stays empty here.
	if r := c.Run("files", "put", src, "rt:/again/"); r.Code != 0 || r.Stderr != "" {
		t.Errorf("put without a terminal: exit %d, stderr %q", r.Code, r.Stderr)
	}

	// tar.gz, extracted.
	dst := t.TempDir()
	c.OK("files", "get", "rt:/site", dst, "--extract")
	sameTree(t, "get -x", readTree(t, filepath.Join(dst, "site")), tree)

	// zip, saved, then read back.
	zdir := t.TempDir()
	out = c.OK("files", "get", "rt:/site", zdir)
	zp := filepath.Join(zdir, "site.zip")
	if !strings.Contains(out, zp) {
		t.Errorf("get of a dir said %q", out)
	}
	zr, err := zip.OpenReader(zp)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		_ = rc.Close()
		got[strings.TrimPrefix(f.Name, "site/")] = string(b)
	}
	if err := zr.Close(); err != nil {
		t.Fatal(err)
	}
	for k, v := range tree {
		if !strings.HasSuffix(k, "/") && got[k] != v {
			t.Errorf("zip: %s = %.20q, want %.20q", k, got[k], v)
		}
	}
	// zip extracted; the root as tar.gz by name.
	zx := t.TempDir()
	c.OK("files", "get", "rt:/site", zx, "-x", "--format", "zip")
	sameTree(t, "get -x --format zip", readTree(t, filepath.Join(zx, "site")), tree)
	tg := filepath.Join(t.TempDir(), "all.tar.gz")
	if out := c.OK("files", "get", "rt:/", tg); !strings.Contains(out, "downloaded rt:/ to "+tg) {
		t.Errorf("get of the root said %q", out)
	}
	f, err := os.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	rootX := t.TempDir()
	if _, err := untar(f, rootX); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	sameTree(t, "root tar.gz", readTree(t, filepath.Join(rootX, "site")), tree)
	sameTree(t, "second put", readTree(t, filepath.Join(rootX, "again", "site")), tree)

	// On a terminal the bar is drawn on stderr; stdout keeps only the result.
	c.TTY = true
	r := c.Run("files", "put", src, "rt:/tty/")
	if r.Code != 0 || !strings.Contains(r.Stderr, "upload") || !strings.Contains(r.Stdout, "uploaded 4 files") {
		t.Errorf("put on a terminal: %+v", r)
	}
	r = c.Run("files", "get", "rt:/site/deep/er/still/x.txt", t.TempDir())
	if r.Code != 0 || !strings.Contains(r.Stderr, "download") {
		t.Errorf("get on a terminal: %+v", r)
	}
}

// cutProxy forwards to a berth server and cuts the body of the next cuts
// downloads (/direct) after n bytes, as a dropped connection would. It
// records the Range and If-Range headers of every download.
type cutProxy struct {
	*httptest.Server
	n    int64
	cuts atomic.Int32
	mu   sync.Mutex
	seen []http.Header
}

func newCutProxy(t *testing.T, target string, n int64) *cutProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{n: n}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1                    // every write reaches the client before the cut
	rp.ErrorLog = log.New(io.Discard, "", 0) // the cuts are on purpose
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/direct") {
			return nil
		}
		p.mu.Lock()
		p.seen = append(p.seen, resp.Request.Header.Clone())
		p.mu.Unlock()
		if p.cuts.Add(-1) >= 0 {
			resp.Body = &cutBody{rc: resp.Body, left: p.n}
		}
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

func (p *cutProxy) requests() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.seen...)
}

type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

func TestFilesGetResumes(t *testing.T) {
	srv := servertest.Start(t, "")
	ctx := testctx.Context(t)
	w, err := srv.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "big"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+12345)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Admin.UploadAs(ctx, w.ID, "/", "big.bin", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	const cutAt = 1 << 20
	proxy := newCutProxy(t, srv.URL, cutAt)
	c := newCLI(t, srv)
	c.Setenv("BERTH_URL", proxy.URL)
	dir := t.TempDir()
	local := filepath.Join(dir, "big.bin")

	// Cut off, no retries: the command fails and keeps what it got.
	proxy.cuts.Store(1)
	r := c.Fail("files", "get", "big:/big.bin", local, "--retries", "0")
	if !strings.Contains(r.Stderr, "cut off after") || !strings.Contains(r.Stderr, "run the same command again") {
		t.Errorf("cut download: %q", r.Stderr)
	}
	st, err := os.Stat(local + ".partial")
	if err != nil {
		t.Fatal(err)
	}
	got := st.Size()
	if got <= 0 || got > cutAt {
		t.Fatalf("partial file of %d bytes, want 1..%d", got, cutAt)
	}
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Errorf("the unfinished download is at its final name: %v", err)
	}

	// The same command again resumes with a Range and the ETag.
	out := c.OK("files", "get", "big:/big.bin", local)
	if !strings.Contains(out, "resumed at byte") {
		t.Errorf("resume said %q", out)
	}
	b, err := os.ReadFile(local)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("resumed download: %d bytes (%v), want %d matching", len(b), err, len(data))
	}
	reqs := proxy.requests()
	last := reqs[len(reqs)-1]
	if last.Get("Range") != "bytes="+itoa(got)+"-" || last.Get("If-Range") == "" {
		t.Errorf("resume request: Range %q If-Range %q, want bytes=%d- and the ETag", last.Get("Range"), last.Get("If-Range"), got)
	}
	for _, p := range []string{local + ".partial", local + ".partial.etag"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}

	// Cut twice within one command: it resumes by itself.
	local2 := filepath.Join(dir, "again.bin")
	proxy.cuts.Store(2)
	r = c.Run("files", "get", "big:/big.bin", local2)
	if r.Code != 0 || strings.Count(r.Stderr, "resuming") != 2 {
		t.Errorf("auto-resume: %+v", r)
	}
	if b, err := os.ReadFile(local2); err != nil || !bytes.Equal(b, data) {
		t.Errorf("auto-resumed download: %d bytes (%v)", len(b), err)
	}

	// The file changes between the cut and the resume: If-Range fails,
	// the server sends it whole, and the new contents land, not a mix.
	local3 := filepath.Join(dir, "changed.bin")
	proxy.cuts.Store(1)
	c.Fail("files", "get", "big:/big.bin", local3, "--retries", "0")
	data2 := bytes.Repeat([]byte("new contents "), 300_000)
	if _, err := srv.Admin.UploadAs(ctx, w.ID, "/", "big.bin", bytes.NewReader(data2)); err != nil {
		t.Fatal(err)
	}
	out = c.OK("files", "get", "big:/big.bin", local3)
	if strings.Contains(out, "resumed") {
		t.Errorf("a changed file was resumed: %q", out)
	}
	if b, err := os.ReadFile(local3); err != nil || !bytes.Equal(b, data2) {
		t.Errorf("download of the changed file: %d bytes (%v), want %d of the new contents", len(b), err, len(data2))
	}

	// To stdout, cut once: resumed in place.
	proxy.cuts.Store(1)
	if out := c.OK("files", "get", "big:/big.bin", "-"); out != string(data2) {
		t.Errorf("get - after a cut: %d bytes, want %d", len(out), len(data2))
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// lockedBuffer is a buffer written by a running command and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestFilesWatch(t *testing.T) {
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	c.OK("workspace", "create", "watched")
	var ws client.Workspace
	c.JSON(&ws, "workspace", "get", "watched")
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testctx.Context(t))
			var out, errb lockedBuffer
			a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return c.env[k] }}
			done := make(chan int, 1)
			go func() { done <- a.run(ctx, []string{"files", "watch", "watched:/", "-o", format}) }()
			testctx.Eventually(t, "the watch to be in place", func() bool { return strings.Contains(errb.String(), "watching watched:/") })
			name := "/w-" + format + ".txt"
			if _, err := srv.Admin.UploadAs(testctx.Context(t), ws.ID, "/", name[1:], strings.NewReader("x")); err != nil {
				t.Fatal(err)
			}
			testctx.Eventually(t, "the change to be printed", func() bool { return strings.Contains(out.String(), name) })
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("watch ended with %d: %s", code, errb.String())
			}
			line := strings.SplitN(out.String(), "\n", 2)[0]
			if format == "json" {
				var e client.FileEvent
				if err := json.Unmarshal([]byte(line), &e); err != nil || e.Path != name || e.Type == "" {
					t.Errorf("json event %q: %+v %v", line, e, err)
				}
			} else if !strings.HasSuffix(line, "\t"+name) {
				t.Errorf("event line %q", line)
			}
		})
	}
}

// TestFilesGetWaitsForAnArchiveTurn: a server busy making archives answers
// 503 with Retry-After; get waits that long and tries again.
func TestFilesGetWaitsForAnArchiveTurn(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Sandbox.ReconcileInterval = time.Hour
	cfg.Archives = workspace.ArchiveLimits{Max: 1, Wait: time.Millisecond}
	srv := servertest.StartConfig(t, cfg)
	ctx := testctx.Context(t)
	w, err := srv.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	// Incompressible and larger than every buffer between the server and
	// a client that does not read: the archive stays in the making.
	big := make([]byte, 32<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Admin.UploadAs(ctx, w.ID, "/d", "big.bin", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Admin.UploadAs(ctx, w.ID, "/small", "a.txt", strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	held, err := srv.Admin.Download(ctx, w.ID, "/d", client.DownloadOptions{Format: "tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQuietly(held.Body)

	c := newCLI(t, srv)
	var out, errb lockedBuffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return c.env[k] }}
	dst := t.TempDir()
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"files", "get", "busy:/small", dst, "-x"}) }()
	testctx.Eventually(t, "get to be told to come back", func() bool { return strings.Contains(errb.String(), "trying again in") })
	closeQuietly(held.Body) // the turn is free
	if code := <-done; code != 0 {
		t.Fatalf("get: exit %d: %s", code, errb.String())
	}
	if b, err := os.ReadFile(filepath.Join(dst, "small", "a.txt")); err != nil || string(b) != "a" {
		t.Errorf("after the wait: %q %v", b, err)
	}
}
