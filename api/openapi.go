package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// param is a query (or header) parameter of a route.
type param struct {
	Name     string
	Desc     string
	Schema   *openapi3.Schema // its type; nil is a string
	Required bool
	Header   bool // a request header rather than a query parameter
}

func qBool(name, desc string) param {
	return param{Name: name, Desc: desc, Schema: openapi3.NewBoolSchema()}
}
func qString(name, desc string, enum ...any) param {
	return param{Name: name, Desc: desc, Schema: openapi3.NewStringSchema().WithEnum(enum...)}
}

// qAll is ?all=true of the lists that admins may widen to the whole org.
var qAll = qBool("all", "admins: every item of the organization, not only the caller's")

// stream describes an alternative text/event-stream answer of a route.
type stream struct {
	When   string // how the client asks for it
	Events []sseEvent
}

// sseEvent is one event name of a stream; Data is a zero value of its
// JSON data's Go type, or nil when the data is text.
type sseEvent struct {
	Name string
	Data any
	Desc string
}

// rawBody is a success answer that is not the JSON envelope: a file, an
// archive, metrics.
type rawBody struct {
	Status  int      // 0: 200
	Types   []string // media types; "*/*" for a file's own type
	Desc    string
	Headers []string // response headers worth knowing (strings)
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// openAPIPath turns a chi pattern into an OpenAPI path: a trailing "/*"
// (the file routes' wildcard) becomes "/{path}".
func openAPIPath(pattern string) (string, []string) {
	p := pattern
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "/*") + "/{path}"
	}
	var params []string
	for _, m := range pathParam.FindAllStringSubmatch(p, -1) {
		params = append(params, m[1])
	}
	return p, params
}

// OpenAPI builds the OpenAPI 3 document from the route table, so it covers
// exactly the routes that exist, with schemas derived from the Go types
// the handlers decode and encode (In, Out and the stream events of each
// route; see openapi_reflect.go). It fails when a route or type cannot be described.
func (s *Server) OpenAPI() (*openapi3.T, error) {
	g := newSchemas()
	doc := &openapi3.T{
		OpenAPI: "3.0.3",
		Info: &openapi3.Info{Title: "berth", Version: "1", Description: "Sandboxes and durable workspaces for AI agents.\n\n" +
			"Every JSON answer is an envelope: `{\"data\": ..., \"meta\": {\"requestId\"}}` on success (lists that paginate " +
			"add `meta.hasMore` and `meta.nextCursor`), `{\"error\": {\"code\", \"message\", \"requestId\"}}` on failure. " +
			"Answers 429 and 503 may carry Retry-After."},
		Servers:  openapi3.Servers{{URL: "/"}},
		Paths:    openapi3.NewPaths(),
		Security: openapi3.SecurityRequirements{{"apiKey": {}}, {"bearer": {}}},
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{
				"apiKey": {Value: openapi3.NewSecurityScheme().WithType("apiKey").WithIn("header").WithName("X-API-Key")},
				"bearer": {Value: openapi3.NewSecurityScheme().WithType("http").WithScheme("bearer")},
			},
			Schemas: g.comps,
		},
	}
	g.comps["Meta"] = openapi3.NewSchemaRef("", metaSchema(false))
	g.comps["PageMeta"] = openapi3.NewSchemaRef("", metaSchema(true))
	g.comps["Error"] = openapi3.NewSchemaRef("", openapi3.NewObjectSchema().WithoutAdditionalProperties().
		WithPropertyRef("error", g.of(errorBody{}, false)).WithRequired([]string{"error"}))
	g.comps["Error"].Value.Description = "The error envelope of every failed request."
	var errs []string
	for _, rt := range s.routes() {
		p, _ := openAPIPath(rt.Pattern)
		op, err := s.operation(g, rt)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s %s: %v", rt.Method, rt.Pattern, err))
			continue
		}
		item := doc.Paths.Value(p)
		if item == nil {
			item = &openapi3.PathItem{}
			doc.Paths.Set(p, item)
		}
		item.SetOperation(rt.Method, op)
	}
	errs = append(errs, g.errs...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("OpenAPI: %s", strings.Join(errs, "; "))
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("OpenAPI: %w", err)
	}
	return doc, nil
}

func metaSchema(paged bool) *openapi3.Schema {
	m := openapi3.NewObjectSchema().WithoutAdditionalProperties().WithProperty("requestId", openapi3.NewStringSchema())
	req := []string{"requestId"}
	if paged {
		m.WithProperty("hasMore", openapi3.NewBoolSchema())
		m.WithProperty("nextCursor", nextCursor(nil))
		req = append(req, "hasMore", "nextCursor")
	}
	return m.WithRequired(req)
}

func (s *Server) operation(g *schemas, rt route) (*openapi3.Operation, error) {
	p, params := openAPIPath(rt.Pattern)
	op := &openapi3.Operation{Summary: rt.Summary, OperationID: operationID(rt.Method, p), Tags: []string{tagOf(rt.Pattern)},
		Responses: openapi3.NewResponses()}
	op.Responses.Delete("default")
	var desc []string
	if rt.Public {
		op.Security = &openapi3.SecurityRequirements{}
	} else if rt.Scope != "" {
		desc = append(desc, "Requires scope `"+rt.Scope+"`.")
	}
	if rt.Desc != "" {
		desc = append(desc, rt.Desc)
	}
	for _, name := range params {
		pp := openapi3.NewPathParameter(name).WithSchema(openapi3.NewStringSchema())
		if name == "path" {
			pp.Description = "a path inside the workspace; it may contain slashes"
		}
		op.AddParameter(pp)
	}
	query := rt.Query
	if rt.Paged {
		limit := openapi3.NewIntegerSchema().WithMin(1).WithMax(500).WithDefault(50)
		query = append(query, param{Name: "limit", Desc: "page size (default 50)", Schema: limit},
			param{Name: "cursor", Desc: "meta.nextCursor of the previous page"})
	}
	for _, q := range query {
		qp := openapi3.NewQueryParameter(q.Name).WithDescription(q.Desc).WithRequired(q.Required)
		if q.Header {
			qp.In = openapi3.ParameterInHeader
		}
		if q.Schema == nil {
			q.Schema = openapi3.NewStringSchema()
		}
		qp.Schema = openapi3.NewSchemaRef("", q.Schema)
		op.AddParameter(qp)
	}
	switch {
	case rt.Upload:
		form := openapi3.NewObjectSchema().
			WithProperty("name", &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, Description: "target name of the single file part (before it)"}).
			WithProperty("file", &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, Format: "binary", Description: "a file; its filename may be a relative path (folder uploads)"}).
			WithRequired([]string{"file"})
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
			WithContent(openapi3.Content{"multipart/form-data": openapi3.NewMediaType().WithSchema(form)})}
	case rt.RawIn:
		bin := &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, Format: "binary", Description: "the file's contents, as is"}
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
			WithContent(openapi3.Content{"application/octet-stream": openapi3.NewMediaType().WithSchema(bin)})}
	case rt.In != nil:
		op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
			WithContent(openapi3.NewContentWithJSONSchemaRef(g.of(rt.In, true)))}
	}
	success := rt.Success
	if success == nil {
		success = []int{http.StatusOK}
	}
	if rt.Out == nil && rt.Raw == nil && rt.Stream == nil {
		return nil, fmt.Errorf("no Out (data type), raw answer or stream")
	}
	if rt.Out != nil {
		env := openapi3.NewObjectSchema().WithoutAdditionalProperties().
			WithPropertyRef("data", g.of(rt.Out, false)).
			WithPropertyRef("meta", openapi3.NewSchemaRef("#/components/schemas/Meta", g.comps["Meta"].Value)).
			WithRequired([]string{"data", "meta"})
		if rt.Paged {
			env.Properties["meta"] = openapi3.NewSchemaRef("#/components/schemas/PageMeta", g.comps["PageMeta"].Value)
		}
		for _, st := range success {
			op.AddResponse(st, openapi3.NewResponse().WithDescription(http.StatusText(st)).
				WithContent(openapi3.Content{"application/json": openapi3.NewMediaType().WithSchema(env)}))
		}
	}
	for _, raw := range rt.Raw {
		st := raw.Status
		if st == 0 {
			st = http.StatusOK
		}
		resp := op.Responses.Status(st)
		if resp == nil {
			op.AddResponse(st, openapi3.NewResponse().WithDescription(raw.Desc))
			resp = op.Responses.Status(st)
		} else {
			*resp.Value.Description += "; " + raw.Desc
		}
		if resp.Value.Content == nil {
			resp.Value.Content = openapi3.Content{}
		}
		for _, t := range raw.Types {
			resp.Value.Content[t] = openapi3.NewMediaType().WithSchema(openapi3.NewStringSchema().WithFormat("binary"))
		}
		for _, h := range raw.Headers {
			if resp.Value.Headers == nil {
				resp.Value.Headers = openapi3.Headers{}
			}
			resp.Value.Headers[h] = &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
				Schema: openapi3.NewSchemaRef("", openapi3.NewStringSchema())}}}
		}
	}
	if rt.Stream != nil {
		d, err := streamDoc(g, rt.Stream)
		if err != nil {
			return nil, err
		}
		desc = append(desc, d)
		resp := op.Responses.Status(http.StatusOK)
		if resp == nil {
			op.AddResponse(http.StatusOK, openapi3.NewResponse().WithDescription("event stream"))
			resp = op.Responses.Status(http.StatusOK)
		}
		if resp.Value.Content == nil {
			resp.Value.Content = openapi3.Content{}
		}
		mt := openapi3.NewMediaType().WithSchema(&openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString},
			Description: "Server-Sent Events; see the operation's description"})
		events := map[string]any{}
		for _, e := range rt.Stream.Events {
			if e.Data == nil {
				events[e.Name] = "text"
			} else {
				events[e.Name] = g.of(e.Data, false).Ref
			}
		}
		mt.Extensions = map[string]any{"x-berth-events": events}
		resp.Value.Content["text/event-stream"] = mt
	}
	op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().WithDescription("error").
		WithContent(openapi3.NewContentWithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/Error", g.comps["Error"].Value)))})
	if len(desc) > 0 {
		op.Description = strings.Join(desc, "\n\n")
	}
	return op, nil
}

// streamDoc describes an event stream's events for the operation's
// description, naming the component schema of each event's JSON data.
func streamDoc(g *schemas, st *stream) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, the answer is a stream of Server-Sent Events (`text/event-stream`):\n", st.When)
	for _, e := range st.Events {
		data := "text (one `data:` line per line)"
		if e.Data != nil {
			ref := g.of(e.Data, false).Ref
			if ref == "" {
				return "", fmt.Errorf("event %s: data type %T is not a component", e.Name, e.Data)
			}
			data = "JSON `" + strings.TrimPrefix(ref, "#/components/schemas/") + "`"
		}
		fmt.Fprintf(&b, "\n- `%s`: %s", e.Name, data)
		if e.Desc != "" {
			b.WriteString(" — " + e.Desc)
		}
	}
	return b.String(), nil
}

// tagOf groups a route by resource for generated clients and docs.
func tagOf(pattern string) string {
	seg := strings.Split(strings.TrimPrefix(pattern, "/v1/"), "/")
	switch {
	case !strings.HasPrefix(pattern, "/v1/") || seg[0] == "openapi.json":
		return "ops"
	case seg[0] == "workspaces" && len(seg) > 2 && seg[2] != "usage" && seg[2] != "access":
		return "files"
	case seg[0] == "run" || seg[0] == "runs" || seg[0] == "threads":
		return "agents"
	case seg[0] == "me" || seg[0] == "members" || seg[0] == "api-keys":
		return "org"
	}
	return seg[0]
}

func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(path, "/") {
		seg = strings.Trim(seg, "{}")
		seg = strings.ReplaceAll(seg, "-", "")
		seg = strings.ReplaceAll(seg, ".", "")
		if seg == "" || seg == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
	}
	return b.String()
}

// openAPIDoc is the served document, built once.
type openAPIDoc struct {
	once sync.Once
	body []byte
	err  error
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	s.doc.once.Do(func() {
		doc, err := s.OpenAPI()
		if err != nil {
			s.doc.err = err
			return
		}
		s.doc.body, s.doc.err = json.MarshalIndent(doc, "", "  ")
	})
	if s.doc.err != nil {
		writeError(w, r, s.doc.err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(s.doc.body)+1))
	_, _ = w.Write(append(s.doc.body, '\n'))
}

// Query parameters several routes share.
var (
	qStream    = qBool("stream", "answer Server-Sent Events (see the description)")
	qOverwrite = qBool("overwrite", "replace an existing target")
	qHidden    = qBool("showHidden", "include names that start with a dot")
	qSnapshot  = qString("snapshot", "read this snapshot's tree (its id) instead of the live one; btrfs storage only (501 on dir)")
	qSort      = qString("sort", "the listing's order (default name; directories are not grouped first)", "name", "size", "mtime")
	qOrder     = qString("order", "ascending or descending (default asc)", "asc", "desc")
	qIfMatch   = param{Name: "If-Match", Header: true, Desc: "write only: the ETag of the version the change is based on; 412 precondition_failed when the file changed since"}
)
