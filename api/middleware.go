package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
)

func newRequestID() string {
	var b [10]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// statusRecorder remembers the status for logs and metrics, and passes
// Flush through so that SSE keeps working behind the middleware.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_http_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe wraps every request: request id, logger, recover, status
// recording, access log and metrics. Panics become 500 internal.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		// No answer of the API is to be read as anything but its declared
		// type (a JSON error rendered as HTML, a file as script).
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// The id travels in the context (berth.WithRequestID), and the
		// logger's handler adds it to every line logged with that context,
		// here and in the services the handlers call.
		ctx := berth.WithRequestID(r.Context(), id)
		ctx = context.WithValue(ctx, loggerKey, s.log)
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				writeError(rec, r, fmt.Errorf("panic: %v", p))
			}
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			code := strconv.Itoa(status)
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(route, r.Method, code).Inc()
			s.metrics.latency.WithLabelValues(route, r.Method, code).Observe(d.Seconds())
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("requestId", id), slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Int64("bytes", rec.bytes), slog.Duration("duration", d))
		}()
		next.ServeHTTP(rec, r)
	})
}

// keyFrom reads the API key from X-API-Key or Authorization: Bearer.
func keyFrom(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k)
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate resolves the key, or without one the session cookie, to a
// caller on every request (so that a revocation, a removal or a change of
// role takes effect on the next one).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := keyFrom(r)
		if key == "" {
			if ck, err := r.Cookie(SessionCookie); err == nil {
				s.authenticateSession(w, r, ck.Value, next)
				return
			}
		}
		c, err := s.Auth.Authenticate(r.Context(), key)
		if err != nil {
			writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(berth.WithCaller(r.Context(), c)))
	})
}

// authenticateSession serves a request signed in with the session cookie.
// A browser sends cookies with requests that other sites make it send, so
// every method that may change state must also carry the session's CSRF
// token, which only the dashboard's own pages can read.
func (s *Server) authenticateSession(w http.ResponseWriter, r *http.Request, token string, next http.Handler) {
	sess, err := s.Auth.AuthenticateSession(r.Context(), token)
	if err != nil {
		if berth.IsKind(err, berth.Unauthorized) {
			// The session is over: the browser may forget the cookie.
			http.SetCookie(w, sessionCookie(r, "", time.Time{}, time.Time{}))
		}
		writeError(w, r, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		// A browser cannot set headers on a WebSocket, so an upgrade (a
		// terminal runs commands) carries no CSRF token: it must come from
		// this server's own origin instead, which a browser always says.
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && !sameOrigin(r) {
			writeError(w, r, berth.Errorf(berth.Forbidden, "a WebSocket signed in with the session cookie must be opened by this server's own pages (its Origin header is missing or another site's)"))
			return
		}
	default:
		got := r.Header.Get(CSRFHeader)
		if got == "" {
			writeError(w, r, berth.Errorf(berth.Forbidden, "the CSRF token is missing: a request signed in with the session cookie must send its session's csrfToken in the %s header", CSRFHeader))
			return
		}
		if !sess.CheckCSRF(got) {
			writeError(w, r, berth.Errorf(berth.Forbidden, "the CSRF token is wrong: send the csrfToken of this session (GET /v1/session) in the %s header", CSRFHeader))
			return
		}
	}
	ctx := context.WithValue(r.Context(), sessionKey{}, sess)
	next.ServeHTTP(w, r.WithContext(berth.WithCaller(ctx, sess.Caller)))
}

// requireScope is the per-route scope check; services check again per
// resource, since some answers depend on the resource (visibility, role).
func requireScope(scope string, h http.HandlerFunc) http.HandlerFunc {
	if scope == "" {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Require(r.Context(), scope); err != nil {
			writeError(w, r, err)
			return
		}
		h(w, r)
	}
}

// sameOrigin reports whether r's Origin header names the host r was sent
// to (as the browser addressed it).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
