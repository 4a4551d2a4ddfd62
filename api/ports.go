package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/sandbox"
)

// portsDoc is the description of the port proxy's operations.
const portsDoc = "A reverse proxy to the server listening on `port` (TCP, on the sandbox's loopback or any of its " +
	"addresses) inside the sandbox: the request, with the path after `/ports/{port}` and the query, goes to it as is " +
	"and its answer comes back as is (any status and type, streamed), including WebSocket upgrades. berth's own " +
	"credentials (Authorization, X-API-Key, X-CSRF-Token and the session cookie) are removed before forwarding; " +
	"X-Forwarded-For, -Host, -Proto and -Prefix are set. It works with `network: none` too (the port is reached " +
	"through the sandbox's supervisor). Errors of berth itself (no such sandbox, nothing listening: 503) are " +
	"ordinary JSON error answers with the header `X-Berth-Error: true`, which an answer of the server never carries."

// portMethods are the methods the proxy routes answer.
// (HEAD is not among them: chi would need a route of its own, and its
// answer cannot carry the error envelope the routes promise.)
var portMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

func (s *Server) portRoutes() []route {
	var rs []route
	for _, m := range portMethods {
		rs = append(rs, route{Method: m, Pattern: "/v1/sandboxes/{id}/ports/{port}/*", Summary: "proxy to a server listening in the sandbox",
			Scope: "sandbox:write", Desc: portsDoc, RawIn: m != http.MethodGet && m != http.MethodOptions,
			Raw:     []rawBody{{Types: []string{"*/*"}, Desc: "the server's answer, whatever its status and type"}},
			handler: s.sandboxPort})
		if m == http.MethodGet {
			rs[len(rs)-1].Raw = append(rs[len(rs)-1].Raw, rawBody{Status: http.StatusSwitchingProtocols, Desc: "a WebSocket upgrade the server accepted"})
		}
	}
	return rs
}

// sandboxPort proxies a request to a port inside the sandbox.
func (s *Server) sandboxPort(w http.ResponseWriter, r *http.Request) {
	port, err := strconv.Atoi(chi.URLParam(r, "port"))
	if err != nil || port < 1 || port > 65535 {
		// Visibility first: a sandbox the caller cannot see is 404 whatever.
		if _, rerr := s.Sandboxes.Resolve(r.Context(), chi.URLParam(r, "id"), "sandbox:write"); rerr != nil {
			portError(w, r, rerr)
			return
		}
		portError(w, r, berth.Errorf(berth.Invalid, "port must be a number from 1 to 65535, not %q", chi.URLParam(r, "port")))
		return
	}
	prefix := strings.TrimSuffix(r.URL.Path, "/"+chi.URLParam(r, "*"))
	path := "/" + chi.URLParam(r, "*")
	err = s.Sandboxes.Port(r.Context(), chi.URLParam(r, "id"), port, func(ctx context.Context, dial sandbox.Dialer) error {
		proxyPort(w, r.WithContext(ctx), dial, port, prefix, path)
		return nil
	})
	if err != nil {
		portError(w, r, err)
	}
}

// BerthErrorHeader marks every error answer of berth's own (writeError):
// through the port proxy it tells berth's errors from the server's answers,
// which never carry it.
const BerthErrorHeader = "X-Berth-Error"

func portError(w http.ResponseWriter, r *http.Request, err error) { writeError(w, r, err) }

// portProxy is the proxy's shared part: a Transport that dials through the
// Dialer of each request's context, and keeps no idle connection (one
// request's connection must not serve another sandbox's request, and a
// sandbox's connection must not outlive the request that keeps it busy).
var portTransport = &http.Transport{
	DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		dial, ok := ctx.Value(dialerKey{}).(sandbox.Dialer)
		if !ok {
			return nil, errors.New("no sandbox to dial")
		}
		return dial(ctx)
	},
	DisableKeepAlives:     true,
	DisableCompression:    true,
	ResponseHeaderTimeout: 0, // a server may think for as long as it likes
	ExpectContinueTimeout: time.Second,
	ForceAttemptHTTP2:     false,
}

type dialerKey struct{}

// proxyBuffers are the proxy's copy buffers: larger than the default 32 KiB,
// fewer writes for a large answer.
var proxyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 256<<10)
}

func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// berthCredentials are the request headers that carry berth's own
// credentials: the server in the sandbox must never see them.
var berthCredentials = []string{"Authorization", "X-Api-Key", CSRFHeader, "Proxy-Authorization"}

func proxyPort(w http.ResponseWriter, r *http.Request, dial sandbox.Dialer, port int, prefix, path string) {
	// A proxied answer may stream or be a WebSocket for hours: the write
	// stall guard's deadlines must not cut it off.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rp := &httputil.ReverseProxy{
		Transport: portTransport,
		// 0: an answer of unknown length (chunked, an event stream) is
		// flushed at every write, as the server writes it; one of known
		// length goes in large writes.
		FlushInterval: 0,
		BufferPool:    proxyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), dialerKey{}, dial))
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = hostPort
			pr.Out.URL.Path = path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "localhost:" + strconv.Itoa(port)
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Prefix", prefix)
			stripCredentials(pr.Out)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away, or the sandbox was cut off
			}
			var be *berth.Error
			if !errors.As(err, &be) {
				err = berth.Wrap(berth.Unavailable, err, "the server in the sandbox did not answer")
			}
			portError(w, r, err)
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Del(BerthErrorHeader)
			return nil
		},
	}
	rp.ServeHTTP(w, r)
}

// stripCredentials removes berth's credentials from a proxied request.
func stripCredentials(r *http.Request) {
	for _, h := range berthCredentials {
		r.Header.Del(h)
	}
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != SessionCookie {
			r.AddCookie(c)
		}
	}
}
