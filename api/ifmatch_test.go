package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestWriteIfMatch: a write with the ETag of the version it read succeeds
// and answers the new ETag; with a stale ETag it is refused with 412
// precondition_failed and the file keeps the newer contents.
func TestWriteIfMatch(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "ifmatch"})
	if err != nil {
		t.Fatal(err)
	}
	v1 := "one"
	if _, err := env.Admin.CreateFile(ctx, ws.ID, "/", "a.txt", "file", &v1); err != nil {
		t.Fatal(err)
	}
	do := func(method, path, ifMatch, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, env.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-API-Key", env.AdminKey)
		req.Header.Set("Content-Type", "application/json")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := env.HTTP().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer closeBody(resp)
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	write := func(ifMatch, contents string) (*http.Response, string) {
		b, err := json.Marshal(map[string]string{"operation": "write", "contents": contents})
		if err != nil {
			t.Fatal(err)
		}
		return do("PUT", "/v1/workspaces/"+ws.ID+"/files/a.txt", ifMatch, string(b))
	}
	get, _ := do("GET", "/v1/workspaces/"+ws.ID+"/direct?id=/a.txt", "", "")
	etag1 := get.Header.Get("ETag")
	if etag1 == "" {
		t.Fatal("download has no ETag")
	}

	resp, body := write(etag1, "two")
	if resp.StatusCode != 200 {
		t.Fatalf("write with the current ETag: %d %s", resp.StatusCode, body)
	}
	etag2 := resp.Header.Get("ETag")
	if etag2 == "" || etag2 == etag1 {
		t.Fatalf("write answered ETag %q (before: %q)", etag2, etag1)
	}
	get, _ = do("GET", "/v1/workspaces/"+ws.ID+"/direct?id=/a.txt", "", "")
	if got := get.Header.Get("ETag"); got != etag2 {
		t.Fatalf("download ETag %q, write said %q", got, etag2)
	}

	// A stale ETag (the file changed since it was read): 412, no write.
	resp, body = write(etag1, "three")
	if resp.StatusCode != http.StatusPreconditionFailed || !strings.Contains(body, `"code":"precondition_failed"`) || !strings.Contains(body, `"requestId":"req_`) {
		t.Fatalf("write with a stale ETag: %d %s, want 412 precondition_failed", resp.StatusCode, body)
	}
	_, got := do("GET", "/v1/workspaces/"+ws.ID+"/direct?id=/a.txt", "", "")
	if got != "two" {
		t.Fatalf("after the refused write the file holds %q, want %q", got, "two")
	}
	// "*" needs the file to exist; no If-Match writes unconditionally.
	if resp, body := write("*", "four"); resp.StatusCode != 200 {
		t.Fatalf("If-Match *: %d %s", resp.StatusCode, body)
	}
	if resp, body := write("", "five"); resp.StatusCode != 200 {
		t.Fatalf("no If-Match: %d %s", resp.StatusCode, body)
	}
	b, err := json.Marshal(map[string]string{"operation": "write", "contents": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := do("PUT", "/v1/workspaces/"+ws.ID+"/files/gone.txt", etag2, string(b)); resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("If-Match on a missing file: %d %s, want 412", resp.StatusCode, body)
	}
}

// TestListSortParams: ?sort and ?order reach the listing; bad values are 400.
func TestListSortParams(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := testctx.Context(t)
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "sorted"})
	if err != nil {
		t.Fatal(err)
	}
	for name, contents := range map[string]string{"a": "xxx", "b": "x", "c": "xx"} {
		if _, err := env.Admin.CreateFile(ctx, ws.ID, "/", name, "file", &contents); err != nil {
			t.Fatal(err)
		}
	}
	list := func(q string) (int, []string) {
		req, err := http.NewRequestWithContext(ctx, "GET", env.URL+"/v1/workspaces/"+ws.ID+"/files?"+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-API-Key", env.AdminKey)
		resp, err := env.HTTP().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer closeBody(resp)
		var out struct {
			Data []struct{ Name string } `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range out.Data {
			names = append(names, e.Name)
		}
		return resp.StatusCode, names
	}
	for q, want := range map[string]string{
		"":                     "a b c",
		"order=desc":           "c b a",
		"sort=size":            "b c a",
		"sort=size&order=desc": "a c b",
	} {
		st, names := list(q)
		if st != 200 || strings.Join(names, " ") != want {
			t.Errorf("?%s: %d %v, want %s", q, st, names, want)
		}
	}
	for _, q := range []string{"sort=color", "order=up"} {
		if st, _ := list(q); st != 400 {
			t.Errorf("?%s: %d, want 400", q, st)
		}
	}
}
