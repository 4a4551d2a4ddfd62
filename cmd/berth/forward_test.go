package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

func TestParseForward(t *testing.T) {
	for _, tc := range []struct {
		in            string
		local, remote int
		ok            bool
	}{{"3000", 3000, 3000, true}, {"8080:3000", 8080, 3000, true}, {"0:80", 0, 80, true},
		{"0", 0, 0, false}, {"x:80", 0, 0, false}, {"80:", 0, 0, false}, {"70000", 0, 0, false}} {
		l, r, err := parseForward(tc.in)
		if (err == nil) != tc.ok || l != tc.local || r != tc.remote {
			t.Errorf("%q: %d %d %v", tc.in, l, r, err)
		}
	}
}

// berth sandbox forward: a local server reaches busybox httpd in a sandbox
// with no network through the port proxy.
func TestSandboxForward(t *testing.T) {
	srv := servertest.Start(t, "")
	runtimetest.Require(t, srv.Sandboxes.Runtime())
	runtimetest.BaseImage(t, srv.Sandboxes.Runtime())
	c := newCLI(t, srv)
	ctx := testctx.Context(t)
	sb, err := srv.Admin.CreateSandbox(ctx, client.SandboxRequest{Name: "fwd", Template: "base", Network: "none"}, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.Admin.Exec(ctx, sb.ID, client.ExecRequest{Command: "mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("httpd: %+v %v", r, err)
	}
	local := httptest.NewServer(forwardHandler(client.New(srv.URL, srv.AdminKey), sb.ID, 8080))
	defer local.Close()
	var body string
	testctx.Eventually(t, "httpd through the forward", func() bool {
		resp, err := http.Get(local.URL + "/index.html")
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if strings.TrimSpace(body) != "forwarded" {
		t.Errorf("body %q", body)
	}
	if r := c.Fail("sandbox", "forward", "no-such", "8080"); r.Code != 1 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("unknown sandbox: %d %q", r.Code, r.Stderr)
	}
	if r := c.Fail("sandbox", "forward", "fwd", "x"); r.Code != 1 {
		t.Errorf("bad port: %d %q", r.Code, r.Stderr)
	}
}
