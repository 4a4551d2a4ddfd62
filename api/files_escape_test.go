package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace/files"
	"github.com/berth-dev/berth/workspace/files/filestest"
)

const escapeSecret = filestest.Secret

// plantHostileWS fills <ws>/h with every object a sandbox could leave to
// trick the server, pointing at secrets next to the workspaces directory
// (<data>/outside). It returns the planted names.
func plantHostileWS(t *testing.T, dataDir, ws string) []string {
	t.Helper()
	return filestest.Plant(t, ws, filepath.Join(dataDir, "outside"))
}

// outsideSnapshot records everything under dataDir except the workspaces.
func outsideSnapshot(t *testing.T, dataDir string) string {
	t.Helper()
	var b strings.Builder
	// Entries that vanish while walking (the database's journal) are
	// skipped; only an unreadable data directory fails the walk.
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if p == filepath.Join(dataDir, "workspaces") {
			return filepath.SkipDir
		}
		if strings.HasPrefix(filepath.Base(p), "berth.db") {
			return nil // the database changes with every request
		}
		info, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %v\n", p, info.Mode())
		if info.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			b.Write(c)
			b.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot outside the workspaces: %v", err)
	}
	// The workspaces directory itself holds only workspace directories.
	es, err := os.ReadDir(filepath.Join(dataDir, "workspaces"))
	if err != nil {
		t.Fatalf("snapshot outside the workspaces: %v", err)
	}
	for _, e := range es {
		fmt.Fprintf(&b, "workspaces/%s %v\n", e.Name(), e.Type())
	}
	return b.String()
}

// hostileReq is one request of the escape suite.
type hostileReq struct {
	method, path string // path is raw: sent as is, never cleaned
	body         any    // JSON, rawBody, or nil
	want         int    // 0: any 4xx or 2xx
}

// send issues a raw request with the test's deadline (testctx: a fixed
// guard once gave up on deleting the 10,000-deep tree on a busy machine);
// it fails the test on a hang, a 5xx, or an answer that carries the secret.
func send(t *testing.T, env *servertest.Env, r hostileReq) int {
	t.Helper()
	ctx := testctx.Context(t)
	var body io.Reader
	ct := ""
	switch b := r.body.(type) {
	case nil:
	case rawBody:
		body, ct = bytes.NewReader(b.data), b.contentType
	default:
		j, _ := json.Marshal(b)
		body, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.method, env.URL+r.path, body)
	if err != nil {
		// Go refuses to even build some of these (raw NUL, spaces): the
		// server can't see them either.
		return 0
	}
	req.Header.Set("X-API-Key", env.AdminKey)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := env.HTTP().Do(req)
	if err != nil {
		t.Errorf("%s %q: %v (hang or crash)", r.method, r.path, err)
		return 0
	}
	defer closeBody(resp)
	// Archives and watch streams are read for a bounded time only.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode >= 500 {
		t.Errorf("%s %q: %d %s", r.method, r.path, resp.StatusCode, b)
	}
	if bytes.Contains(b, []byte(escapeSecret)) {
		t.Errorf("%s %q: the answer contains the secret", r.method, r.path)
	}
	if r.want != 0 && resp.StatusCode != r.want {
		t.Errorf("%s %q: %d, want %d: %s", r.method, r.path, resp.StatusCode, r.want, b)
	}
	return resp.StatusCode
}

func TestFilesEscapeHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("plants a 10,000-level tree")
	}
	env := servertest.Start(t, "")
	ctx := context.Background()
	w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "hostile"})
	must(t, err)
	names := plantHostileWS(t, env.Config.DataDir, wsDir(env, w.ID))
	_, err = env.Admin.CreateFile(ctx, w.ID, "/", "ok.txt", "file", ptr("fine"))
	must(t, err)
	_, err = env.Admin.CreateFile(ctx, w.ID, "/", "copies", "directory", nil)
	must(t, err)
	before := outsideSnapshot(t, env.Config.DataDir)
	base := "/v1/workspaces/" + w.ID

	// Every route at every planted object, by its API name.
	var reqs []hostileReq
	for _, n := range names {
		p := "/h/" + files.EncodeName(n)
		esc := escapePath(p)
		q := url.QueryEscape(p)
		reqs = append(reqs,
			hostileReq{method: "GET", path: base + "/files" + esc + "?showHidden=true"},
			hostileReq{method: "GET", path: base + "/info" + esc},
			hostileReq{method: "GET", path: base + "/direct?id=" + q},
			hostileReq{method: "GET", path: base + "/direct?download=true&format=tar.gz&id=" + q},
			hostileReq{method: "POST", path: base + "/files" + esc, body: map[string]string{"name": "x", "type": "file", "contents": "pwned"}},
			hostileReq{method: "POST", path: base + "/upload" + esc, body: multipartBody("up.txt", "pwned")},
			hostileReq{method: "PUT", path: base + "/files" + esc, body: map[string]string{"operation": "write", "contents": "pwned"}},
			hostileReq{method: "PUT", path: base + "/files" + esc, body: map[string]string{"operation": "copy", "target": "/copies"}},
			hostileReq{method: "PUT", path: base + "/files" + esc + "?overwrite=true", body: map[string]string{"operation": "copy", "target": "/copies"}},
			hostileReq{method: "PUT", path: base + "/files", body: map[string]any{"operation": "copy", "ids": []string{p}, "target": "/copies"}},
		)
	}
	// The whole hostile directory, listed, summed, archived, watched.
	reqs = append(reqs,
		hostileReq{method: "GET", path: base + "/files/h?showHidden=true&limit=500", want: 200},
		hostileReq{method: "GET", path: base + "/info/h", want: 200},
		hostileReq{method: "GET", path: base + "/direct?id=/h", want: 200},
		hostileReq{method: "GET", path: base + "/direct?id=/&format=tar.gz", want: 200},
		hostileReq{method: "PUT", path: base + "/files/h", body: map[string]string{"operation": "copy", "target": "/copies"}},
	)
	// Hostile request paths and fields.
	for _, c := range []hostileReq{
		{"GET", base + "/files/../../outside", nil, 400},
		{"GET", base + "/files/%2e%2e/%2e%2e/outside", nil, 400},
		{"GET", base + "/files/%2e%2e%2f%2e%2e%2foutside", nil, 400},
		{"GET", base + "/info/..%2F..%2F..%2Foutside%2Fsecret.txt", nil, 400},
		{"GET", base + "/files/%252e%252e%252f%252e%252e", nil, 404}, // a name "%2e%2e%2f...": decoded once
		{"GET", base + "/files/a%5c..%5c..%5coutside", nil, 400},
		{"GET", base + "/files/a%00b", nil, 400},
		{"GET", base + "/files/%ff%fe", nil, 400},
		{"GET", base + "/files/%zz", nil, 400},
		{"GET", base + "/direct?id=/../../outside/secret.txt", nil, 400},
		{"GET", base + "/direct?id=..%2F..%2F..%2Foutside%2Fsecret.txt", nil, 400},
		{"GET", base + "/direct?id=%2Fetc%2Fpasswd", nil, 404},
		{"GET", base + "/direct?id=%5C..%5Csecret", nil, 400},
		{"GET", base + "/direct?id=/ok.txt%00.png", nil, 400},
		{"GET", base + "/watch?path=/../..", nil, 400},
		{"POST", base + "/files/..%2f..", map[string]string{"name": "x", "type": "file"}, 400},
		{"POST", base + "/files", map[string]string{"name": "../../../outside/new", "type": "file"}, 400},
		{"POST", base + "/files", map[string]string{"name": "/etc", "type": "directory"}, 400},
		{"POST", base + "/upload/%2e%2e", multipartBody("x", "pwned"), 400},
		{"POST", base + "/upload", multipartBody("../../../outside/new", "pwned"), 400},
		{"POST", base + "/upload", multipartBody("/outside/new", "pwned"), 400},
		{"POST", base + "/upload", multipartBody(`..\..\outside`, "pwned"), 400},
		{"PUT", base + "/files/ok.txt", map[string]string{"operation": "rename", "target": "../../../outside/secret.txt"}, 400},
		{"PUT", base + "/files/ok.txt", map[string]string{"operation": "move", "target": "/../../outside"}, 400},
		{"PUT", base + "/files/ok.txt", map[string]string{"operation": "copy", "target": "../../outside"}, 400},
		{"PUT", base + "/files/ok.txt", map[string]string{"operation": "copy", "target": "/h/abs-dir-link"}, 0},
		{"PUT", base + "/files/ok.txt", map[string]string{"operation": "move", "target": "/h/rel-dir-link"}, 0},
		{"PUT", base + "/files", map[string]any{"operation": "copy", "ids": []string{"/../../outside/secret.txt"}, "target": "/"}, 400},
		{"PUT", base + "/files", map[string]any{"operation": "move", "ids": []string{"/ok.txt"}, "target": "/h/root-link/tmp"}, 0},
		{"DELETE", base + "/files", map[string]any{"ids": []string{"../../outside/secret.txt"}}, 400},
		{"DELETE", base + "/files/..%2F..%2F..%2Foutside", nil, 400},
		{"DELETE", base + "/files/h/rel-dir-link/secret.txt", nil, 0},
		{"DELETE", base + "/files/h/abs-link/", nil, 0},
	} {
		reqs = append(reqs, c)
	}
	// A watch on the hostile tree: starts, then ends with the client.
	watchCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = env.Admin.WatchFiles(watchCtx, w.ID, "/h", nil, func(client.FileEvent) error { return nil })
	cancel()
	if err != nil && !strings.Contains(err.Error(), "context deadline") {
		t.Errorf("watch of the hostile tree: %v", err)
	}
	for _, r := range reqs {
		send(t, env, r)
	}
	// Finally delete every planted object, links first: the targets stay.
	for _, n := range names {
		send(t, env, hostileReq{method: "DELETE", path: base + "/files" + escapePath("/h/"+files.EncodeName(n))})
	}
	send(t, env, hostileReq{method: "DELETE", path: base + "/files/h", want: 200})

	if after := outsideSnapshot(t, env.Config.DataDir); after != before {
		t.Errorf("something outside the workspace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if b, err := os.ReadFile(filepath.Join(env.Config.DataDir, "outside", "secret.txt")); err != nil || string(b) != escapeSecret {
		t.Errorf("secret changed: %q %v", b, err)
	}
	testctx.Eventually(t, "every request to release its workspace", func() bool { return env.API.Files.Stats().InUse == 0 })
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
