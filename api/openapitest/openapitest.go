// Package openapitest checks HTTP answers against berth's OpenAPI document
// with kin-openapi's validator. servertest runs every answer the API tests
// receive through it, so that the document cannot drift from the server.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy/pathpattern"
)

// Validator checks answers against one document.
type Validator struct {
	doc  *openapi3.T
	root *pathpattern.Node
}

// New loads and validates the document (the JSON of /v1/openapi.json).
func New(data []byte) (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	// The routes are matched with kin-openapi's path trie (that of its
	// legacy router), built here rather than by the router because the file
	// routes' {path} takes the rest of the URL, slashes included, which an
	// OpenAPI path parameter cannot say: the trie's {path*} can.
	root := &pathpattern.Node{}
	for path, item := range doc.Paths.Map() {
		pattern := path
		if strings.HasSuffix(pattern, "/{path}") {
			pattern = strings.TrimSuffix(pattern, "}") + "*}"
		}
		for method, op := range item.Operations() {
			rt := &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
			if err := root.Add(method+" "+pattern, rt, nil); err != nil {
				return nil, fmt.Errorf("route %s %s: %w", method, path, err)
			}
		}
	}
	return &Validator{doc: doc, root: root}, nil
}

// Doc is the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Route returns the document's route for req, or nil.
func (v *Validator) Route(req *http.Request) (*routers.Route, map[string]string) {
	node, values := v.root.Match(req.Method + " " + req.URL.Path)
	if node == nil {
		return nil, nil
	}
	rt, _ := node.Value.(*routers.Route)
	if rt == nil {
		return nil, nil
	}
	params := map[string]string{}
	for i, name := range node.VariableNames {
		if i < len(values) {
			params[strings.TrimSuffix(name, "*")] = values[i]
		}
	}
	return rt, params
}

// Check validates an answer's status and content type, and says how to
// check its body: whole for JSON, event by event for a stream (its data
// against the schema of its event, x-berth-events). It returns a nil Plan
// for bodies that are not checked: binary bodies (files, archives,
// metrics, the document itself). Errors name the route and the status.
func (v *Validator) Check(req *http.Request, status int, h http.Header) (*Plan, error) {
	rt, params := v.Route(req)
	what := fmt.Sprintf("%s %s answered %d", req.Method, req.URL.Path, status)
	if rt == nil {
		// No such route: the server must say so in the error envelope.
		if status != http.StatusNotFound {
			return nil, fmt.Errorf("%s: no route of the document matches, and the status is not 404", what)
		}
		op := &openapi3.Operation{Responses: openapi3.NewResponses()}
		op.Responses.Set("404", &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("no route").
			WithContent(openapi3.NewContentWithJSONSchemaRef(v.doc.Components.Schemas["Error"]))})
		rt = &routers.Route{Spec: v.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
		params = map[string]string{}
	} else {
		what = fmt.Sprintf("%s %s (%s) answered %d", rt.Method, rt.Path, req.URL.Path, status)
	}
	if req.Method == http.MethodHead || status == http.StatusNotModified {
		return nil, nil
	}
	resp := rt.Operation.Responses.Status(status)
	if resp == nil {
		resp = rt.Operation.Responses.Default()
	}
	if resp == nil || resp.Value == nil {
		return nil, fmt.Errorf("%s: the document declares no such status", what)
	}
	ct := h.Get("Content-Type")
	if len(resp.Value.Content) == 0 {
		return nil, nil
	}
	mt := resp.Value.Content.Get(ct)
	if mt == nil {
		return nil, fmt.Errorf("%s: content type %q is not documented for this status (documented: %s)", what, ct, strings.Join(keys(resp.Value.Content), ", "))
	}
	base, _, _ := mime.ParseMediaType(ct)
	if base == "text/event-stream" {
		events, err := v.events(mt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return &Plan{Events: func(name, data string) error {
			if err := checkEvent(events, name, data); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		}}, nil
	}
	if mt.Schema != nil && mt.Schema.Value != nil && mt.Schema.Value.Format == "binary" {
		return nil, nil
	}
	return &Plan{JSON: func(body []byte) error {
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: rt},
			Status:                 status,
			Header:                 h,
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		in.Options.WithCustomSchemaErrorFunc(brief)
		in.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			var re *openapi3filter.ResponseError
			if errors.As(err, &re) {
				msg := re.Reason
				if re.Err != nil {
					msg += ": " + re.Err.Error()
				}
				return fmt.Errorf("%s: %s", what, msg)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}}, nil
}

// Plan says how to check an answer's body: JSON with the whole body, or
// Events with each event of a stream as the client reads it.
type Plan struct {
	JSON   func(body []byte) error
	Events func(name, data string) error
}

// events reads a stream's documented events (the x-berth-events extension:
// event name -> "text" or the $ref of its JSON data's schema).
func (v *Validator) events(mt *openapi3.MediaType) (map[string]*openapi3.Schema, error) {
	raw, ok := mt.Extensions["x-berth-events"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the event stream documents no events (x-berth-events)")
	}
	out := map[string]*openapi3.Schema{}
	for name, ref := range raw {
		r, _ := ref.(string)
		if r == "text" {
			out[name] = nil
			continue
		}
		c := v.doc.Components.Schemas[strings.TrimPrefix(r, "#/components/schemas/")]
		if c == nil || c.Value == nil {
			return nil, fmt.Errorf("event %s: unknown schema %q", name, r)
		}
		out[name] = c.Value
	}
	return out, nil
}

func checkEvent(events map[string]*openapi3.Schema, name, data string) error {
	schema, ok := events[name]
	if !ok {
		return fmt.Errorf("event %q is not documented", name)
	}
	if schema == nil {
		return nil // text
	}
	var value any
	if err := json.Unmarshal([]byte(data), &value); err != nil {
		return fmt.Errorf("event %q: data is not JSON: %v", name, err)
	}
	if err := schema.VisitJSON(value, openapi3.SetSchemaErrorMessageCustomizer(brief)); err != nil {
		return fmt.Errorf("event %q: %v", name, err)
	}
	return nil
}

// Events wraps an event stream's body so that each event is passed to check
// as the caller reads it; report gets each error.
func Events(body io.ReadCloser, check func(name, data string) error, report func(error)) io.ReadCloser {
	return &eventReader{ReadCloser: body, check: check, report: report}
}

type eventReader struct {
	io.ReadCloser
	check  func(name, data string) error
	report func(error)

	line  []byte   // the incomplete line read so far
	name  string   // the event field of the event at hand
	data  []string // its data lines
	valid bool     // whether it has a data field
}

func (e *eventReader) Read(p []byte) (int, error) {
	n, err := e.ReadCloser.Read(p)
	for _, c := range p[:n] {
		if c != '\n' {
			e.line = append(e.line, c)
			continue
		}
		e.field(strings.TrimSuffix(string(e.line), "\r"))
		e.line = e.line[:0]
	}
	return n, err
}

// field handles one line of the stream (as the SSE specification says).
func (e *eventReader) field(line string) {
	switch {
	case line == "":
		if e.valid {
			name := e.name
			if name == "" {
				name = "message"
			}
			if err := e.check(name, strings.Join(e.data, "\n")); err != nil {
				e.report(err)
			}
		}
		e.name, e.data, e.valid = "", nil, false
	case strings.HasPrefix(line, ":"):
		// a comment (keep-alive)
	default:
		k, val, _ := strings.Cut(line, ":")
		val = strings.TrimPrefix(val, " ")
		switch k {
		case "event":
			e.name = val
		case "data":
			e.data = append(e.data, val)
			e.valid = true
		}
	}
}

// brief says where a body breaks the schema, what the schema wants, and
// the value (cut), rather than kin-openapi's dump of the whole schema.
func brief(err *openapi3.SchemaError) string {
	v, _ := json.Marshal(err.Value)
	val := string(v)
	if len(val) > 300 {
		val = val[:300] + "…"
	}
	reason := err.Reason
	if reason == "" {
		reason = "does not match " + err.SchemaField
	}
	return fmt.Sprintf("at /%s: %s (value %s)", strings.Join(err.JSONPointer(), "/"), reason, val)
}

func keys(c openapi3.Content) []string {
	var out []string
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ReadBody reads a response's whole body and puts it back for the caller.
func ReadBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// errReader hands the caller the error reading the body met.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
