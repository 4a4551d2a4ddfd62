package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/berth-dev/berth/server/servertest"
)

// get fetches url with the env's HTTP client, so that the answer is also
// checked against the OpenAPI document.
func get(t *testing.T, env *servertest.Env, url string) (int, string) {
	t.Helper()
	resp, err := env.HTTP().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBody(resp)
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOpenAPIIsValidAndComplete(t *testing.T) {
	env := servertest.Start(t, "")
	st, body := get(t, env, env.URL+"/v1/openapi.json")
	if st != 200 {
		t.Fatalf("openapi.json: %d", st)
	}
	if file, err := os.ReadFile("openapi.json"); err != nil || string(file) != body {
		t.Errorf("the served document is not api/openapi.json (%v)", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(body))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI 3: %v", err)
	}
	for _, rt := range env.API.Routes() {
		p := rt.Pattern
		if strings.HasSuffix(p, "/*") {
			p = strings.TrimSuffix(p, "/*") + "/{path}"
		}
		item := doc.Paths.Find(p)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("OpenAPI lacks %s %s", rt.Method, p)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	env := servertest.Start(t, "")
	if st, _ := get(t, env, env.URL+"/healthz"); st != 200 {
		t.Errorf("healthz %d", st)
	}
	st, body := get(t, env, env.URL+"/readyz")
	var ready struct {
		Data struct {
			Ready  bool                         `json:"ready"`
			Checks map[string]map[string]string `json:"checks"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatalf("readyz: %v: %s", err, body)
	}
	if st != 200 || !ready.Data.Ready || ready.Data.Checks["database"]["status"] != "up" {
		t.Errorf("readyz: %d %s", st, body)
	}
	if _, err := env.Admin.Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	call(t, env, "", "GET", "/v1/me", nil)
	_, metrics := get(t, env, env.URL+"/metrics")
	for _, want := range []string{
		`berth_http_requests_total{method="GET",route="/v1/me",status="200"} 1`,
		`berth_http_requests_total{method="GET",route="/v1/me",status="401"} 1`,
		`berth_http_request_duration_seconds_count{method="GET",route="/v1/me",status="200"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A database that goes away makes the server unready and says why.
	must(t, env.DB.Close())
	st, body = get(t, env, env.URL+"/readyz")
	if st != 503 || !strings.Contains(body, `"database":{"status":"down","error":"database unreachable"}`) {
		t.Errorf("readyz with the database closed: %d %s", st, body)
	}
}

// The OpenAPI document declares each route's real success status (201 for
// creates, not just 200) and, on lists that paginate, limit and cursor.
func TestOpenAPIMatchesAnswers(t *testing.T) {
	env := servertest.Start(t, "")
	_, body := get(t, env, env.URL+"/v1/openapi.json")
	doc, err := openapi3.NewLoader().LoadFromData([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, env)
	for _, rt := range env.API.Routes() {
		c, ok := matrix[rt.Method+" "+rt.Pattern]
		if !ok || c.admin >= 300 {
			continue
		}
		p, _ := openAPIPathOf(rt.Pattern)
		op := doc.Paths.Find(p).GetOperation(rt.Method)
		if op.Responses.Status(c.admin) == nil {
			t.Errorf("OpenAPI %s %s does not declare its status %d", rt.Method, p, c.admin)
		}
		if rt.Method != "GET" {
			continue
		}
		path, _ := c.call(t, f)
		req, _ := http.NewRequest("GET", env.URL+path, nil)
		req.Header.Set("X-API-Key", env.AdminKey)
		resp, err := env.HTTP().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var answer struct {
			Meta map[string]any `json:"meta"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		closeBody(resp)
		if err != nil && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %v", path, err) // downloads are not envelopes
		}
		_, paged := answer.Meta["hasMore"]
		if documented := op.Parameters.GetByInAndName("query", "limit") != nil && op.Parameters.GetByInAndName("query", "cursor") != nil; paged != documented {
			t.Errorf("%s %s: answers meta.hasMore %v, OpenAPI documents limit and cursor %v", rt.Method, p, paged, documented)
		}
	}
}

func openAPIPathOf(pattern string) (string, bool) {
	if strings.HasSuffix(pattern, "/*") {
		return strings.TrimSuffix(pattern, "/*") + "/{path}", true
	}
	return pattern, false
}
