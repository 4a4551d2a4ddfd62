package api

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
)

// SessionCookie names the dashboard's session cookie.
const SessionCookie = "berth_session"

// CSRFHeader carries a session's CSRF token on the state-changing requests
// of a browser signed in with the session cookie.
const CSRFHeader = "X-CSRF-Token"

func (s *Server) sessionRoutes() []route {
	return []route{
		{Method: "POST", Pattern: "/v1/sessions", Summary: "sign in with an API key: sets the session cookie (dashboard)", Public: true, Success: []int{201}, handler: s.createSession},
		{Method: "GET", Pattern: "/v1/session", Summary: "the session of the session cookie, with its CSRF token", handler: s.getSession},
		{Method: "DELETE", Pattern: "/v1/session", Summary: "sign out: ends the session and clears its cookie", handler: s.deleteSession},
	}
}

// SessionRequest is the body of POST /v1/sessions.
type SessionRequest struct {
	APIKey string `json:"apiKey"`
}

// SessionInfo describes the signed-in session: GET /v1/me's data plus the
// CSRF token that state-changing requests must send back, and the end.
type SessionInfo struct {
	CSRFToken string      `json:"csrfToken"`
	ExpiresAt time.Time   `json:"expiresAt"`
	User      auth.Member `json:"user"`
	Org       auth.Org    `json:"org"`
	Role      berth.Role  `json:"role"`
	Scopes    []string    `json:"scopes"`
}

// SessionEnded is the answer of DELETE /v1/session.
type SessionEnded struct {
	Ended bool `json:"ended"`
}

type sessionKey struct{}

// sessionFrom returns the session that authenticated the request, or nil
// when it came with an API key.
func sessionFrom(ctx context.Context) *auth.Session {
	sess, _ := ctx.Value(sessionKey{}).(*auth.Session)
	return sess
}

func (s *Server) sessionTTL() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return auth.DefaultSessionTTL
}

// sessionCookie is the cookie holding token from created until expires
// (the cookie's Max-Age is the session's life, so that the browser's clock
// does not matter); an empty token clears it. Secure when the request came
// over TLS, here or to a proxy in front (X-Forwarded-Proto), so that the
// browser never sends it back in clear. A forged X-Forwarded-Proto can
// only make the cookie stricter.
func sessionCookie(r *http.Request, token string, created, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: SessionCookie, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")}
	if token == "" {
		c.MaxAge = -1 // Max-Age=0: delete now
		return c
	}
	c.MaxAge = max(1, int(expires.Sub(created).Seconds()))
	return c
}

func (s *Server) sessionInfo(ctx context.Context, sess *auth.Session) (*SessionInfo, error) {
	me, err := s.Auth.Me(berth.WithCaller(ctx, sess.Caller))
	if err != nil {
		return nil, err
	}
	return &SessionInfo{CSRFToken: sess.CSRFToken, ExpiresAt: sess.ExpiresAt, User: me.User, Org: me.Org, Role: me.Role, Scopes: me.Scopes}, nil
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	// Only a JSON body: a cross-site HTML form cannot send one, so another
	// site cannot sign a browser in with a key of its choosing.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, r, berth.Errorf(berth.Invalid, "Content-Type must be application/json"))
		return
	}
	var in SessionRequest
	if err := decode(w, r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	token, sess, err := s.Auth.OpenSession(r.Context(), in.APIKey, s.sessionTTL())
	if err != nil {
		writeError(w, r, err)
		return
	}
	info, err := s.sessionInfo(r.Context(), sess)
	if err != nil {
		writeError(w, r, err)
		return
	}
	http.SetCookie(w, sessionCookie(r, token, sess.CreatedAt, sess.ExpiresAt))
	w.Header().Set("Cache-Control", "no-store")
	writeData(w, r, http.StatusCreated, info)
}

// needSession is the session of a request to the session routes, which an
// API key alone does not reach.
func needSession(r *http.Request) (*auth.Session, error) {
	if sess := sessionFrom(r.Context()); sess != nil {
		return sess, nil
	}
	return nil, berth.Errorf(berth.Unauthorized, "not signed in: %s %s needs the session cookie (sign in with POST /v1/sessions), not an API key", r.Method, r.URL.Path)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, err := needSession(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	info, err := s.sessionInfo(r.Context(), sess)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeData(w, r, http.StatusOK, info)
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) {
	sess, err := needSession(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.Auth.EndSession(r.Context(), sess.ID); err != nil {
		writeError(w, r, err)
		return
	}
	http.SetCookie(w, sessionCookie(r, "", time.Time{}, time.Time{}))
	writeData(w, r, http.StatusOK, SessionEnded{Ended: true})
}
