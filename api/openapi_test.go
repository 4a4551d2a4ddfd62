package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/api/openapitest"
	"github.com/berth-dev/berth/sandbox"
)

// fullServer has every route group (the services are never called).
func fullServer() *Server {
	return &Server{Sandboxes: &sandbox.Manager{}, Agents: &agent.Service{}}
}

func docJSON(t *testing.T) []byte {
	t.Helper()
	doc, err := fullServer().OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every route of the table is in the document with a typed success answer,
// and no schema anywhere is empty or an object without properties: an SDK
// generated from the document gets a type for every body.
func TestOpenAPITypesEveryRoute(t *testing.T) {
	s := fullServer()
	v, err := openapitest.New(docJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	doc := v.Doc()
	routes := s.Routes()
	if len(routes) < 60 {
		t.Fatalf("only %d routes: the test server lacks route groups", len(routes))
	}
	for _, rt := range routes {
		p, _ := openAPIPath(rt.Pattern)
		item := doc.Paths.Find(p)
		if item == nil || item.GetOperation(rt.Method) == nil {
			t.Errorf("%s %s: not in the document", rt.Method, p)
			continue
		}
		op := item.GetOperation(rt.Method)
		typed := false
		for code, resp := range op.Responses.Map() {
			if code == "101" {
				typed = true // a WebSocket: the description says what it carries
				continue
			}
			if !strings.HasPrefix(code, "2") {
				continue
			}
			for mt, c := range resp.Value.Content {
				if c.Schema == nil {
					t.Errorf("%s %s: %s %s has no schema", rt.Method, p, code, mt)
					continue
				}
				if mt == "application/json" && c.Schema.Value.Format != "binary" { // binary: the document itself
					data := c.Schema.Value.Properties["data"]
					if data == nil {
						t.Errorf("%s %s: %s JSON answer is not an envelope with data", rt.Method, p, code)
						continue
					}
				}
				typed = true
			}
		}
		if !typed {
			t.Errorf("%s %s: no typed success answer", rt.Method, p)
		}
		if op.Responses.Default() == nil {
			t.Errorf("%s %s: no default (error) answer", rt.Method, p)
		}
		if (rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "PATCH") && op.RequestBody == nil && !bodyless[rt.Method+" "+rt.Pattern] {
			t.Errorf("%s %s: no request body described", rt.Method, p)
		}
	}
	for _, name := range componentNames(doc) {
		walkSchema(t, "#/components/schemas/"+name, doc.Components.Schemas[name], map[*openapi3.Schema]bool{})
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			for _, p := range op.Parameters {
				walkSchema(t, where+" parameter "+p.Value.Name, p.Value.Schema, map[*openapi3.Schema]bool{})
			}
			if op.RequestBody != nil {
				for mt, c := range op.RequestBody.Value.Content {
					walkSchema(t, where+" request "+mt, c.Schema, map[*openapi3.Schema]bool{})
				}
			}
			for code, resp := range op.Responses.Map() {
				for mt, c := range resp.Value.Content {
					walkSchema(t, fmt.Sprintf("%s %s %s", where, code, mt), c.Schema, map[*openapi3.Schema]bool{})
				}
			}
		}
	}
	t.Logf("component schemas: %s", strings.Join(componentNames(doc), ", "))
}

// bodyless are the write routes that take no request body.
var bodyless = map[string]bool{
	"POST /v1/sandboxes/{id}/pause":     true,
	"POST /v1/sandboxes/{id}/resume":    true,
	"POST /v1/sandboxes/{id}/stop":      true,
	"POST /v1/sandboxes/{id}/start":     true,
	"POST /v1/sandboxes/{id}/keepalive": true,
	"POST /v1/runs/{runId}/cancel":      true,
	"POST /v1/templates/{name}/build":   true,
}

// walkSchema fails on a schema that says nothing: no type, or an object
// without properties or typed additional properties.
func walkSchema(t *testing.T, where string, s *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	t.Helper()
	if s == nil || s.Value == nil {
		t.Errorf("%s: no schema", where)
		return
	}
	v := s.Value
	if seen[v] {
		return
	}
	seen[v] = true
	if s.Ref != "" {
		return // checked as a component
	}
	composed := false
	for _, set := range []openapi3.SchemaRefs{v.AllOf, v.OneOf, v.AnyOf} {
		for i, sub := range set {
			composed = true
			walkSchema(t, fmt.Sprintf("%s/%d", where, i), sub, seen)
		}
	}
	if composed {
		return
	}
	switch {
	case v.Type == nil || len(v.Type.Slice()) == 0:
		t.Errorf("%s: untyped schema", where)
	case v.Type.Is(openapi3.TypeObject):
		ap := v.AdditionalProperties.Schema
		if len(v.Properties) == 0 && ap == nil {
			t.Errorf("%s: object without properties", where)
		}
		for name, p := range v.Properties {
			walkSchema(t, where+"."+name, p, seen)
		}
		if ap != nil {
			walkSchema(t, where+"{}", ap, seen)
		}
	case v.Type.Is(openapi3.TypeArray):
		walkSchema(t, where+"[]", v.Items, seen)
	}
}

// The validator the API tests run every answer through catches a body
// that differs from the document, a status it does not declare, a content
// type it does not list and an answer to a route it does not have; and it
// passes the real encoding of a sandbox.
func TestOpenAPIValidationCatchesWrongAnswers(t *testing.T) {
	v, err := openapitest.New(docJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := sandbox.Sandbox{ID: "sbx_1", Name: "a", Status: sandbox.Running, Template: "base", Network: "bridge", Tags: []string{},
		Env: []string{}, Mounts: []sandbox.Mount{}, Metadata: map[string]string{}, CreatedAt: now, UpdatedAt: now, LastActivityAt: now}
	answer := func(status int, data any) (http.Header, []byte) {
		rec := httptest.NewRecorder()
		writeData(rec, httptest.NewRequest("GET", "/", nil), status, data)
		return rec.Header(), rec.Body.Bytes()
	}
	check := func(method, path string, status int, h http.Header, body []byte) error {
		req := httptest.NewRequest(method, path, nil)
		plan, err := v.Check(req, status, h)
		if err != nil || plan == nil {
			return err
		}
		return plan.JSON(body)
	}
	h, body := answer(200, good)
	if err := check("GET", "/v1/sandboxes/sbx_1", 200, h, body); err != nil {
		t.Errorf("a real sandbox does not validate: %v", err)
	}

	bad := good
	bad.Status = "flying"
	h, body = answer(200, bad)
	err = check("GET", "/v1/sandboxes/sbx_1", 200, h, body)
	if err == nil || !strings.Contains(err.Error(), "/data/status") || !strings.Contains(err.Error(), "GET /v1/sandboxes/{id}") {
		t.Errorf("a status outside the enum: %v", err)
	}
	h, body = answer(200, map[string]any{"id": "sbx_1"})
	if err := check("GET", "/v1/sandboxes/sbx_1", 200, h, body); err == nil {
		t.Error("a sandbox without its required fields validates")
	}
	h, body = answer(200, struct {
		sandbox.Sandbox
		Extra string `json:"extra"`
	}{good, "x"})
	if err := check("GET", "/v1/sandboxes/sbx_1", 200, h, body); err == nil {
		t.Error("a sandbox with an undocumented field validates")
	}
	h, body = answer(201, good)
	if err := check("GET", "/v1/sandboxes/sbx_1", 201, h, body); err == nil {
		t.Error("an undeclared success status validates (it must fall to the error envelope)")
	}
	h, body = answer(200, []sandbox.Sandbox{good})
	if err := check("GET", "/v1/sandboxes", 200, h, body); err == nil || !strings.Contains(err.Error(), "meta") {
		t.Errorf("a list without page meta: %v", err)
	}
	h, body = answer(200, good)
	h.Set("Content-Type", "text/html")
	if err := check("GET", "/v1/sandboxes/sbx_1", 200, h, body); err == nil {
		t.Error("an undocumented content type validates")
	}
	h, body = answer(200, good)
	if err := check("GET", "/v1/nothing", 200, h, body); err == nil {
		t.Error("an answer to a route the document lacks validates")
	}
	// File routes take the rest of the path, slashes included.
	h, body = answer(200, []any{})
	if err := check("GET", "/v1/workspaces/ws_1/files/a/b/c", 200, h, body); err == nil || !strings.Contains(err.Error(), "/v1/workspaces/{id}/files/{path}") {
		t.Errorf("a nested file list without page meta: %v", err)
	}
	// An error answer is checked against the error envelope.
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("GET", "/", nil), berth.Errorf(berth.NotFound, "no sandbox sbx_1"))
	if err := check("GET", "/v1/sandboxes/sbx_1", rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("the error envelope does not validate: %v", err)
	}
	h, body = answer(404, map[string]string{"code": "not_found"})
	if err := check("GET", "/v1/sandboxes/sbx_1", 404, h, body); err == nil {
		t.Error("an error answer that is not the error envelope validates")
	}

	// An event stream's events are checked as they are read: their names
	// and their JSON data.
	sh := http.Header{"Content-Type": {"text/event-stream"}}
	plan, err := v.Check(httptest.NewRequest("POST", "/v1/sandboxes/sbx_1/exec?stream=true", nil), 200, sh)
	if err != nil || plan == nil || plan.Events == nil {
		t.Fatalf("exec stream: %v %+v", err, plan)
	}
	stream := "event: stdout\ndata: line 1\ndata: line 2\n\n: keep-alive\n\n" +
		"event: exit\ndata: {\"exitCode\":0,\"durationMs\":3,\"timedOut\":false}\n\n" +
		"event: exit\ndata: {\"exitCode\":\"zero\",\"durationMs\":3,\"timedOut\":false}\n\n" +
		"event: bogus\ndata: x\n\n"
	var got []string
	r := openapitest.Events(io.NopCloser(iotest.OneByteReader(strings.NewReader(stream))), plan.Events, func(err error) { got = append(got, err.Error()) })
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.Contains(got[0], "/exitCode") || !strings.Contains(got[1], `event "bogus" is not documented`) {
		t.Errorf("stream errors: %q", got)
	}
}

// api/openapi.json is the document as served, committed so that clients
// (the TypeScript SDK's types) are generated from a file in the repository.
// BERTH_UPDATE_OPENAPI=1 rewrites it; otherwise it must be current.
func TestOpenAPIFileIsCurrent(t *testing.T) {
	doc, err := fullServer().OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if os.Getenv("BERTH_UPDATE_OPENAPI") != "" {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("api/openapi.json is not the current document: run BERTH_UPDATE_OPENAPI=1 go test ./api -run TestOpenAPIFileIsCurrent")
	}
}

// A request the server accepted is checked against the document too: its
// body, query and path.
func TestOpenAPIValidationCatchesWrongRequests(t *testing.T) {
	v, err := openapitest.New(docJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	req := func(method, target, body string) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	for _, c := range []struct {
		method, target, body string
		bad                  string // a part of the error; "" for a valid request
	}{
		{"POST", "/v1/api-keys", `{"name":"k","scopes":["files:read"],"expiresIn":"30d"}`, ""},
		{"POST", "/v1/api-keys", `{"name":"k","expiresIn":"2y"}`, "/expiresIn"},
		{"POST", "/v1/api-keys", `{"scopes":["files:read"]}`, "name"},
		{"POST", "/v1/api-keys", `{"name":"k","color":"red"}`, "color"},
		{"GET", "/v1/sandboxes?status=running&tag=a&tag=b&limit=10", "", ""},
		{"GET", "/v1/sandboxes?status=flying", "", "status"},
		{"GET", "/v1/sandboxes?limit=1000", "", "limit"},
		{"POST", "/v1/sandboxes/sbx_1/exec", `{"command":["ls","-l"]}`, ""},
		{"POST", "/v1/sandboxes/sbx_1/exec", `{"command":"ls -l","timeout":1000}`, ""},
		{"POST", "/v1/sandboxes/sbx_1/exec", `{"command":7}`, "command"},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		err := v.CheckRequest(req(c.method, c.target, c.body), body)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s %s %s: %v", c.method, c.target, c.body, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s %s %s: %v, want an error about %s", c.method, c.target, c.body, err, c.bad)
		}
	}
}

// componentNames lists the document's component schemas .
func componentNames(doc *openapi3.T) []string {
	var out []string
	for n := range doc.Components.Schemas {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
