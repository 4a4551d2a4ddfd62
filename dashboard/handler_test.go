package dashboard_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestServedByBerth: berth serve answers the app at / and at any deep link,
// with the CSP and the other headers; the API keeps its JSON 404s.
func TestServedByBerth(t *testing.T) {
	env := servertest.Start(t, "")
	get := func(path string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(testctx.Context(t), "GET", env.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Body.Close(); err != nil {
			t.Fatal(err)
		}
		return res, string(b)
	}
	for _, p := range []string{"/", "/workspaces/abc/files/some/dir", "/app.js", "/app.css"} {
		res, body := get(p)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, res.StatusCode)
		}
		h := res.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", p, h)
		}
		if !strings.HasSuffix(p, ".js") && !strings.HasSuffix(p, ".css") && !strings.Contains(body, `<div id="app">`) {
			t.Errorf("GET %s: not the app's index.html: %.200s", p, body)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") {
			t.Errorf("GET %s: inline script or style", p)
		}
	}
	for _, p := range []string{"/v1/nope", "/v1"} {
		res, body := get(p)
		if res.StatusCode != 404 || !strings.Contains(body, `"code":"not_found"`) {
			t.Errorf("GET %s: %d %s, want the API's JSON 404", p, res.StatusCode, body)
		}
	}
}
