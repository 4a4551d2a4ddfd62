package api

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

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
// exactly the routes that exist.
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range s.routes() {
		p, params := openAPIPath(rt.Pattern)
		responses := map[string]any{
			"default": map[string]any{"description": "error", "content": jsonContent("#/components/schemas/Error")},
		}
		success := rt.Success
		if success == nil {
			success = []int{http.StatusOK}
		}
		for _, st := range success {
			responses[strconv.Itoa(st)] = map[string]any{"description": http.StatusText(st), "content": jsonContent("#/components/schemas/Envelope")}
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt.Method, p),
			"responses":   responses,
		}
		if rt.Public {
			op["security"] = []any{}
		} else if rt.Scope != "" {
			op["description"] = "Requires scope `" + rt.Scope + "`."
		}
		var ps []any
		for _, name := range params {
			ps = append(ps, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if rt.Paged {
			ps = append(ps,
				map[string]any{"name": "limit", "in": "query", "description": "page size (default 50)",
					"schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
				map[string]any{"name": "cursor", "in": "query", "description": "meta.nextCursor of the previous page",
					"schema": map[string]any{"type": "string"}})
		}
		if ps != nil {
			op["parameters"] = ps
		}
		if rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "PATCH" {
			op["requestBody"] = map[string]any{"required": false, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object"}},
			}}
		}
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "berth", "version": "1", "description": "Sandboxes and durable workspaces for AI agents."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"security": []any{
			map[string]any{"apiKey": []any{}}, map[string]any{"bearer": []any{}},
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			},
			"schemas": map[string]any{
				"Envelope": map[string]any{"type": "object", "required": []any{"data", "meta"}, "properties": map[string]any{
					"data": map[string]any{},
					"meta": map[string]any{"type": "object", "properties": map[string]any{
						"requestId":  map[string]any{"type": "string"},
						"hasMore":    map[string]any{"type": "boolean"},
						"nextCursor": map[string]any{"type": "string", "nullable": true},
					}},
				}},
				"Error": map[string]any{"type": "object", "required": []any{"error"}, "properties": map[string]any{
					"error": map[string]any{"type": "object", "required": []any{"code", "message", "requestId"}, "properties": map[string]any{
						"code":      map[string]any{"type": "string"},
						"message":   map[string]any{"type": "string"},
						"requestId": map[string]any{"type": "string"},
					}},
				}},
			},
		},
	}
}

func jsonContent(ref string) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": ref}}}
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

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSONRaw(w, r, s.OpenAPI())
}
