// Package api is berth's HTTP surface: the chi router, middleware (request
// ids, auth, metrics, logging, recovery, body limits), one file per resource,
// the envelopes with the one error→status table, and the OpenAPI document.
// Handlers parse, call one service method, and encode.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/dashboard"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/workspace"
)

// Check reports whether a dependency is up; /readyz runs each.
type Check func(ctx context.Context) error

// Server carries the services the handlers call.
type Server struct {
	Auth       *auth.Service
	Workspaces *workspace.Service
	Sandboxes  *sandbox.Manager
	Agents     *agent.Service
	// Files keeps the open directories of active workspaces (file routes).
	Files *workspace.Files
	// Checks are the readiness checks by name ("database", "runtime", ...).
	Checks map[string]Check
	// Instance is this server process's instance id (random at start);
	// Leader says whether it runs the singleton loops now (nil: always).
	Instance string
	Leader   func() bool
	// SessionTTL is how long a browser session lasts (0: auth.DefaultSessionTTL).
	SessionTTL time.Duration

	doc      openAPIDoc // the served OpenAPI document, built on first request
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
}

// New returns a Server; call Handler for its routes.
func New(log *slog.Logger, a *auth.Service, ws *workspace.Service) *Server {
	// Every line logged with a request's context names the request.
	log = slog.New(berth.RequestIDHandler(log.Handler()))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{Auth: a, Workspaces: ws, Checks: map[string]Check{}, log: log, registry: reg, metrics: newMetrics(reg)}
}

// route is one entry of the route table, which drives the router, the
// OpenAPI document and the authorization tests alike.
type route struct {
	Method  string
	Pattern string
	Summary string
	Desc    string // more for the operation's description (a WebSocket's messages)
	Scope   string // scope checked before the handler; "" for public routes
	Public  bool   // no API key needed
	// Success lists the success statuses when not just 200 (creates: 201;
	// async: 202); OpenAPI documents them.
	Success []int
	// Paged marks a list that takes limit and cursor and answers
	// meta.hasMore and meta.nextCursor.
	Paged bool

	// What the OpenAPI document says of the route (openapi.go), derived
	// from Go types so that it cannot differ from what the handler does;
	// the API tests validate every answer against it (api/openapitest).
	// A new route (the session routes, say) is typed by filling these:
	//   In: a zero value of the JSON body's type (nil: no body),
	//   Out: a zero value of the success envelope's data type,
	//   Query: its query parameters (limit and cursor come with Paged),
	//   Upload: the body is multipart/form-data instead,
	//   RawIn: the body is a file's bytes (application/octet-stream),
	//   Raw: success answers that are not the envelope (files, archives),
	//   Stream: its text/event-stream answer with each event's data type.
	// A struct type becomes a component schema named after it; enums,
	// descriptions and renames go in openapi_docs.go. Handlers encode named
	// structs, never maps, so that their answers can be described. E.g.
	//   {Method: "POST", Pattern: "/v1/sessions", Success: []int{201},
	//    In: sessionInput{}, Out: session{}, ...}
	// A route without Out (or Raw, Stream) fails the build of the document
	// and TestOpenAPITypesEveryRoute; after a change, regenerate
	// api/openapi.json: BERTH_UPDATE_OPENAPI=1 go test ./api -run TestOpenAPIFileIsCurrent
	In, Out any
	Query   []param
	Upload  bool
	RawIn   bool
	Raw     []rawBody
	Stream  *stream

	handler http.HandlerFunc
}

func (s *Server) routes() []route {
	var rs []route
	for _, group := range [][]route{s.opsRoutes(), s.sessionRoutes(), s.orgRoutes(), s.workspaceRoutes(), s.fileRoutes(), s.templateRoutes(), s.sandboxRoutes(), s.portRoutes(), s.agentRoutes()} {
		rs = append(rs, group...)
	}
	return rs
}

func (s *Server) opsRoutes() []route {
	return []route{
		{Method: "GET", Pattern: "/healthz", Summary: "process is up", Public: true, Out: health{}, handler: s.healthz},
		{Method: "GET", Pattern: "/readyz", Summary: "database and runtime reachable (503 when not, with the same body)", Public: true,
			Success: []int{200, 503}, Out: readiness{}, handler: s.readyz},
		{Method: "GET", Pattern: "/metrics", Summary: "Prometheus metrics", Public: true,
			Raw: []rawBody{{Types: []string{"text/plain"}, Desc: "Prometheus text exposition format"}}, handler: promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP},
		{Method: "GET", Pattern: "/v1/openapi.json", Summary: "this API as OpenAPI 3", Public: true,
			Raw: []rawBody{{Types: []string{"application/json"}, Desc: "this document (not an envelope)"}}, handler: s.openAPI},
	}
}

// Handler builds the router.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe)
	app := dashboard.Handler()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		// Every path outside the API is the dashboard's.
		if !isAPIPath(r.URL.Path) {
			app.ServeHTTP(w, r)
			return
		}
		writeError(w, r, berth.Errorf(berth.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, berth.Errorf(berth.NotFound, "method %s is not supported on %s", r.Method, r.URL.Path))
	})
	authed := r.With(s.authenticate)
	for _, rt := range s.routes() {
		if rt.Public {
			r.Method(rt.Method, rt.Pattern, rt.handler)
			continue
		}
		authed.Method(rt.Method, rt.Pattern, requireScope(rt.Scope, rt.handler))
	}
	return r
}

// health is the answer of /healthz.
type health struct {
	Status  string `json:"status"`  // always "ok"
	Version string `json:"version"` // the server's build (berth.Version)
	// Instance is this server process's id, new at every start: behind a
	// load balancer over replicas it says which one answered.
	Instance string `json:"instance"`
	// Leader says whether this process runs the singleton loops
	// (reconcile, idle pause, recovery of a dead server's runs); always
	// true for a server without --replicas.
	Leader bool `json:"leader"`
}

// readiness is the answer of /readyz (200 when ready, else 503).
type readiness struct {
	Checks map[string]checkResult `json:"checks"`
	Ready  bool                   `json:"ready"`
}

// checkResult is one readiness check's outcome.
type checkResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// isAPIPath reports whether p belongs to the API (its unknown paths answer a
// JSON 404) rather than to the dashboard.
func isAPIPath(p string) bool {
	switch p {
	case "/v1", "/healthz", "/readyz", "/metrics":
		return true
	}
	return strings.HasPrefix(p, "/v1/")
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeData(w, r, http.StatusOK, health{Status: "ok", Version: berth.Version(), Instance: s.Instance,
		Leader: s.Leader == nil || s.Leader()})
}

// readyz runs every check with a short deadline and says what is down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	out := map[string]checkResult{}
	ready := true
	for name, check := range s.Checks {
		if err := check(ctx); err != nil {
			// The endpoint needs no key: say what is down, keep the driver's
			// details (addresses, paths) for the log.
			ready = false
			out[name] = checkResult{Status: "down", Error: berth.Message(err)}
			s.log.Warn("readiness check failed", "check", name, "err", err)
		} else {
			out[name] = checkResult{Status: "up"}
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeData(w, r, status, readiness{Ready: ready, Checks: out})
}

// RouteInfo describes one route of the table.
type RouteInfo struct {
	Method, Pattern, Scope string
	Public                 bool
}

// Routes lists every route the server answers; the authorization tests walk
// it so that a new route cannot go untested.
func (s *Server) Routes() []RouteInfo {
	var out []RouteInfo
	for _, r := range s.routes() {
		out = append(out, RouteInfo{Method: r.Method, Pattern: r.Pattern, Scope: r.Scope, Public: r.Public})
	}
	return out
}
