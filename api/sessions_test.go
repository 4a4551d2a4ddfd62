package api_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

func init() {
	addCases(map[string]authCase{
		// The session routes need the session cookie: an API key alone,
		// however strong, has no session to show or end.
		"GET /v1/session":    {fixed("/v1/session", nil), 401, 401, 401},
		"DELETE /v1/session": {fixed("/v1/session", nil), 401, 401, 401},
	})
}

// answer is one raw response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
	code   string // error code, "" on success
	msg    string
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// data decodes the envelope's data into v.
func (a answer) data(t *testing.T, v any) {
	t.Helper()
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(a.body, &env); err != nil {
		t.Fatalf("answer is not an envelope: %v: %s", err, a.body)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		t.Fatalf("decode data: %v: %s", err, env.Data)
	}
}

// rawSend makes a raw request to base with the given headers and cookie.
func rawSend(t *testing.T, hc *http.Client, base, method, path string, body any, hdr map[string]string, cookie *http.Cookie) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, base+path, rd)
	must(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("%s %s: %d without an error envelope: %s", method, path, resp.StatusCode, b)
		}
		a.code, a.msg = e.Error.Code, e.Error.Message
	}
	return a
}

// sessionData is the data of POST /v1/sessions and GET /v1/session.
type sessionData struct {
	CSRFToken string    `json:"csrfToken"`
	ExpiresAt time.Time `json:"expiresAt"`
	User      struct {
		ID, Name string
	} `json:"user"`
	Org struct {
		ID, Name string
	} `json:"org"`
	Role   string   `json:"role"`
	Scopes []string `json:"scopes"`
}

// browser is a dashboard signed in with a key: the session cookie and the
// CSRF token, as a page holds them.
type browser struct {
	t      *testing.T
	hc     *http.Client
	base   string
	cookie *http.Cookie
	csrf   string
	signIn answer
	sess   sessionData
}

func signIn(t *testing.T, hc *http.Client, base, key string) *browser {
	t.Helper()
	a := rawSend(t, hc, base, "POST", "/v1/sessions", map[string]string{"apiKey": key}, nil, nil)
	if a.status != 201 {
		t.Fatalf("sign in: %v", a)
	}
	b := &browser{t: t, hc: hc, base: base, signIn: a}
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "berth_session" {
			b.cookie = c
		}
	}
	if b.cookie == nil || b.cookie.Value == "" {
		t.Fatalf("sign in set no berth_session cookie: %v", a.header.Values("Set-Cookie"))
	}
	a.data(t, &b.sess)
	b.csrf = b.sess.CSRFToken
	return b
}

func (b *browser) do(method, path string, body any) answer {
	b.t.Helper()
	return b.doCSRF(method, path, body, b.csrf)
}

func (b *browser) doCSRF(method, path string, body any, csrf string) answer {
	b.t.Helper()
	hdr := map[string]string{}
	if csrf != "" {
		hdr["X-CSRF-Token"] = csrf
	}
	return rawSend(b.t, b.hc, b.base, method, path, body, hdr, b.cookie)
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// sessionRows returns every stored session row, each column as text.
func sessionRows(t *testing.T, env *servertest.Env) []map[string]string {
	t.Helper()
	rows, err := env.DB.Queryx(`SELECT * FROM sessions`)
	must(t, err)
	defer func() { _ = rows.Close() }()
	var out []map[string]string
	for rows.Next() {
		m := map[string]any{}
		must(t, rows.MapScan(m))
		row := map[string]string{}
		for k, v := range m {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			row[k] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	must(t, rows.Err())
	return out
}

// setPast moves a timestamp column of one row into the past, as time
// passing would.
func setPast(t *testing.T, env *servertest.Env, table, col, id string) {
	t.Helper()
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := env.DB.Exec(env.DB.Rebind(`UPDATE `+table+` SET `+col+` = ? WHERE id = ?`), past, id)
	must(t, err)
}

func TestSessionSignIn(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		m, err := env.Admin.AddMember(ctx, "dana", "", "member")
		must(t, err)
		k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "dash", Scopes: []string{"files:*", "org:read"}, UserID: m.ID})
		must(t, err)
		b := signIn(t, env.HTTP(), env.URL, k.Key)
		c := b.cookie
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
			t.Errorf("cookie attributes: %v (want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP)", c.Raw)
		}
		if c.MaxAge != int((12 * time.Hour).Seconds()) {
			t.Errorf("cookie Max-Age %d, want the default TTL 12h (43200)", c.MaxAge)
		}
		if n := len(c.Value); n != 43 {
			t.Errorf("session token %q: %d characters, want 43 (32 random bytes, base64url)", c.Value, n)
		}
		s := b.sess
		if s.CSRFToken == "" || s.User.ID != m.ID || s.User.Name != "dana" || s.Role != "member" || s.Org.Name != "default" ||
			!slices.Equal(s.Scopes, []string{"files:*", "org:read"}) || !s.ExpiresAt.After(time.Now()) {
			t.Errorf("sign-in data: %+v", s)
		}
		if cc := b.signIn.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("sign-in Cache-Control %q, want no-store", cc)
		}

		// Stored: a hash of the token and nothing from which to rebuild
		// the token or the key.
		rows := sessionRows(t, env)
		if len(rows) != 1 {
			t.Fatalf("%d session rows, want 1", len(rows))
		}
		row := rows[0]
		if row["token_hash"] != sha256hex(c.Value) || row["key_id"] != k.ID || row["user_id"] != m.ID || row["csrf_token"] != s.CSRFToken {
			t.Errorf("stored row %v", row)
		}
		for col, v := range row {
			if strings.Contains(v, c.Value) || strings.Contains(v, k.Key) {
				t.Errorf("column %s holds the session token or the key: %q", col, v)
			}
		}

		// The cookie authenticates reads, as the key's user.
		if a := b.do("GET", "/v1/me", nil); a.status != 200 || !strings.Contains(string(a.body), m.ID) {
			t.Errorf("GET /v1/me with the cookie: %v", a)
		}
		if a := b.doCSRF("GET", "/v1/workspaces", nil, ""); a.status != 200 {
			t.Errorf("GET /v1/workspaces with the cookie and no CSRF token: %v", a)
		}
		// A reloaded page gets its CSRF token back.
		a := b.doCSRF("GET", "/v1/session", nil, "")
		var again sessionData
		if a.status != 200 {
			t.Fatalf("GET /v1/session: %v", a)
		}
		a.data(t, &again)
		if again.CSRFToken != s.CSRFToken || again.User.ID != m.ID || !again.ExpiresAt.Equal(s.ExpiresAt) || !slices.Equal(again.Scopes, s.Scopes) {
			t.Errorf("GET /v1/session: %+v, sign-in said %+v", again, s)
		}

		// The key is in no answer and no cookie.
		for _, ans := range []answer{b.signIn, a} {
			if strings.Contains(string(ans.body), k.Key) {
				t.Errorf("an answer holds the key: %s", ans.body)
			}
			for name, vs := range ans.header {
				for _, v := range vs {
					if strings.Contains(v, k.Key) {
						t.Errorf("header %s holds the key: %q", name, v)
					}
				}
			}
		}

		// Wrong key, no key, bad body.
		for _, tc := range []struct {
			body       any
			ctype      string
			status     int
			code, want string
		}{
			{map[string]string{"apiKey": "berth_nope"}, "application/json", 401, "unauthorized", "unknown API key"},
			{map[string]string{"apiKey": ""}, "application/json", 400, "invalid_request", "apiKey"},
			{map[string]string{"key": k.Key}, "application/json", 400, "invalid_request", "unknown field"},
			{map[string]string{"apiKey": k.Key}, "text/plain", 400, "invalid_request", "application/json"},
		} {
			a := rawSend(t, env.HTTP(), env.URL, "POST", "/v1/sessions", tc.body, map[string]string{"Content-Type": tc.ctype}, nil)
			if a.status != tc.status || a.code != tc.code || !strings.Contains(a.msg, tc.want) {
				t.Errorf("sign in with %v (%s): %d %s %q, want %d %s containing %q", tc.body, tc.ctype, a.status, a.code, a.msg, tc.status, tc.code, tc.want)
			}
			if sc := a.header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("failed sign-in set a cookie: %v", sc)
			}
		}
		if n := len(sessionRows(t, env)); n != 1 {
			t.Errorf("%d session rows after failed sign-ins, want 1", n)
		}

		// A made-up cookie is no session, and the browser is told to drop it.
		fake := &browser{t: t, hc: env.HTTP(), base: env.URL, cookie: &http.Cookie{Name: "berth_session", Value: strings.Repeat("A", 43)}}
		a = fake.do("GET", "/v1/me", nil)
		if a.status != 401 || a.code != "unauthorized" {
			t.Errorf("made-up cookie: %v", a)
		}
		if sc := a.header.Get("Set-Cookie"); !strings.HasPrefix(sc, "berth_session=;") || !strings.Contains(sc, "Max-Age=0") {
			t.Errorf("made-up cookie: Set-Cookie %q, want the cookie cleared", sc)
		}
	})
}

func TestSessionCSRF(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		b := signIn(t, env.HTTP(), env.URL, env.AdminKey)
		count := func() int {
			l, err := env.Admin.Workspaces(context.Background(), true)
			must(t, err)
			return len(l.Workspaces)
		}
		before := count()
		target, err := env.Admin.CreateWorkspace(context.Background(), client.WorkspaceRequest{Name: "target"})
		must(t, err)
		before++
		me, err := env.Admin.Me(context.Background())
		must(t, err)
		wsPath := "/v1/workspaces/" + target.ID
		for _, tc := range []struct {
			name, csrf, want string
		}{
			{"no CSRF token", "", "missing"},
			{"wrong CSRF token", b.csrf + "x", "wrong"},
			{"another session's CSRF token", signIn(t, env.HTTP(), env.URL, env.AdminKey).csrf, "wrong"},
		} {
			a := b.doCSRF("POST", "/v1/workspaces", map[string]string{"name": "csrf " + tc.name}, tc.csrf)
			if a.status != 403 || a.code != "forbidden" || !strings.Contains(a.msg, "CSRF token is "+tc.want) {
				t.Errorf("POST with the cookie and %s: %v, want 403 forbidden saying the CSRF token is %s", tc.name, a, tc.want)
			}
			// Every state-changing method is checked, not only POST.
			for _, rq := range []struct {
				method, path string
				body         any
			}{
				{"PATCH", wsPath, map[string]string{"name": "renamed"}},
				{"PUT", wsPath + "/access", map[string][]string{"userIds": {me.User.ID}}},
				{"DELETE", wsPath, nil},
				{"DELETE", "/v1/session", nil},
			} {
				if a := b.doCSRF(rq.method, rq.path, rq.body, tc.csrf); a.status != 403 || !strings.Contains(a.msg, "CSRF") {
					t.Errorf("%s %s with the cookie and %s: %v, want 403", rq.method, rq.path, tc.name, a)
				}
			}
		}
		if n := count(); n != before {
			t.Errorf("%d workspaces after refused requests, want %d", n, before)
		}
		if w, err := env.Admin.Workspace(context.Background(), target.ID); err != nil || w.Name != "target" {
			t.Errorf("workspace after refused requests: %+v, %v", w, err)
		}
		if a := b.do("GET", "/v1/me", nil); a.status != 200 {
			t.Errorf("session after a refused logout: %v", a)
		}
		if a := b.do("POST", "/v1/workspaces", map[string]string{"name": "with csrf"}); a.status != 201 {
			t.Errorf("POST with the cookie and its CSRF token: %v", a)
		}
		// An API key needs no CSRF token: no browser sends it by itself.
		a := rawSend(t, env.HTTP(), env.URL, "POST", "/v1/workspaces", map[string]string{"name": "with key"}, map[string]string{"X-API-Key": env.AdminKey}, nil)
		if a.status != 201 {
			t.Errorf("POST with X-API-Key and no CSRF token: %v", a)
		}
		a = rawSend(t, env.HTTP(), env.URL, "POST", "/v1/workspaces", map[string]string{"name": "with bearer"}, map[string]string{"Authorization": "Bearer " + env.AdminKey}, b.cookie)
		if a.status != 201 {
			t.Errorf("POST with a bearer key (and the cookie) and no CSRF token: %v", a)
		}
		if n := count(); n != before+3 {
			t.Errorf("%d workspaces, want %d", n, before+3)
		}
	})
}

func TestSessionCarriesKeyScopesAndLiveRole(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		m, err := env.Admin.AddMember(ctx, "erin", "", "member")
		must(t, err)
		ro, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "ro", Scopes: []string{"files:read"}, UserID: m.ID})
		must(t, err)
		b := signIn(t, env.HTTP(), env.URL, ro.Key)
		if !slices.Equal(b.sess.Scopes, []string{"files:read"}) {
			t.Errorf("session scopes %v, want the key's [files:read]", b.sess.Scopes)
		}
		if a := b.do("GET", "/v1/workspaces", nil); a.status != 200 {
			t.Errorf("files:read session lists workspaces: %v", a)
		}
		if a := b.do("POST", "/v1/workspaces", map[string]string{"name": "nope"}); a.status != 403 || !strings.Contains(a.msg, "files:write") {
			t.Errorf("files:read session creates a workspace: %v, want 403 for lacking files:write", a)
		}
		if a := b.do("GET", "/v1/members", nil); a.status != 403 {
			t.Errorf("files:read session lists members: %v, want 403", a)
		}

		// The role is looked up per request: a promotion and a demotion
		// take effect on the session's next request.
		full, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "full", UserID: m.ID})
		must(t, err)
		fb := signIn(t, env.HTTP(), env.URL, full.Key)
		ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "role probe"})
		must(t, err)
		access := "/v1/workspaces/" + ws.ID + "/access"
		if a := fb.do("GET", access, nil); a.status != 403 {
			t.Errorf("member's session reads grants: %v, want 403", a)
		}
		_, err = env.Admin.SetMemberRole(ctx, m.ID, "admin")
		must(t, err)
		if a := fb.do("GET", access, nil); a.status != 200 {
			t.Errorf("promoted member's session reads grants: %v, want 200", a)
		}
		var s sessionData
		a := fb.do("GET", "/v1/session", nil)
		a.data(t, &s)
		if s.Role != "admin" {
			t.Errorf("GET /v1/session after promotion: role %q, want admin", s.Role)
		}
		_, err = env.Admin.SetMemberRole(ctx, m.ID, "member")
		must(t, err)
		if a := fb.do("GET", access, nil); a.status != 403 {
			t.Errorf("demoted member's session reads grants: %v, want 403", a)
		}
	})
}

func TestSessionEnds(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		rowsOf := func(id string) int {
			n := 0
			for _, r := range sessionRows(t, env) {
				if r["id"] == id {
					n++
				}
			}
			return n
		}
		idOf := func(b *browser) string {
			for _, r := range sessionRows(t, env) {
				if r["token_hash"] == sha256hex(b.cookie.Value) {
					return r["id"]
				}
			}
			t.Fatalf("no row for the session")
			return ""
		}
		dead := func(what string, b *browser, id string) {
			t.Helper()
			if a := b.do("GET", "/v1/me", nil); a.status != 401 || a.code != "unauthorized" {
				t.Errorf("%s: next request %v, want 401", what, a)
			}
			if rowsOf(id) != 0 {
				t.Errorf("%s: the session's row is still stored", what)
			}
		}
		m, err := env.Admin.AddMember(ctx, "frank", "", "member")
		must(t, err)
		newKey := func() *client.APIKey {
			k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "k", UserID: m.ID})
			must(t, err)
			return k
		}

		t.Run("logout", func(t *testing.T) {
			b := signIn(t, env.HTTP(), env.URL, newKey().Key)
			other := signIn(t, env.HTTP(), env.URL, env.AdminKey)
			id := idOf(b)
			a := b.do("DELETE", "/v1/session", nil)
			if a.status != 200 {
				t.Fatalf("logout: %v", a)
			}
			var cleared *http.Cookie
			for _, c := range (&http.Response{Header: a.header}).Cookies() {
				if c.Name == "berth_session" {
					cleared = c
				}
			}
			if cleared == nil || cleared.Value != "" || cleared.MaxAge >= 0 || !cleared.HttpOnly {
				t.Errorf("logout's Set-Cookie %v, want the cookie cleared", a.header.Values("Set-Cookie"))
			}
			dead("after logout", b, id)
			if a := b.do("DELETE", "/v1/session", nil); a.status != 401 {
				t.Errorf("second logout: %v, want 401", a)
			}
			if a := other.do("GET", "/v1/me", nil); a.status != 200 {
				t.Errorf("another session after a logout: %v", a)
			}
		})
		t.Run("revoked key", func(t *testing.T) {
			k := newKey()
			b := signIn(t, env.HTTP(), env.URL, k.Key)
			id := idOf(b)
			_, err := env.Admin.RevokeAPIKey(ctx, k.ID)
			must(t, err)
			dead("revoked key", b, id)
		})
		t.Run("expired key", func(t *testing.T) {
			k := newKey()
			b := signIn(t, env.HTTP(), env.URL, k.Key)
			id := idOf(b)
			setPast(t, env, "api_keys", "expires_at", k.ID)
			dead("expired key", b, id)
		})
		t.Run("expired session", func(t *testing.T) {
			b := signIn(t, env.HTTP(), env.URL, newKey().Key)
			id := idOf(b)
			setPast(t, env, "sessions", "expires_at", id)
			a := b.do("GET", "/v1/session", nil)
			if a.status != 401 || !strings.Contains(a.msg, "expired") {
				t.Errorf("expired session: %v, want 401 saying it expired", a)
			}
			if rowsOf(id) != 0 {
				t.Errorf("expired session: row still stored")
			}
		})
		t.Run("sweep", func(t *testing.T) {
			live := signIn(t, env.HTTP(), env.URL, newKey().Key)
			old := signIn(t, env.HTTP(), env.URL, newKey().Key)
			oldID := idOf(old)
			setPast(t, env, "sessions", "expires_at", oldID)
			n, err := env.API.Auth.SweepSessions(ctx)
			must(t, err)
			if n < 1 || rowsOf(oldID) != 0 {
				t.Errorf("sweep removed %d rows; expired row left: %v", n, rowsOf(oldID) != 0)
			}
			if a := live.do("GET", "/v1/me", nil); a.status != 200 {
				t.Errorf("a live session after the sweep: %v", a)
			}
			// Signing in sweeps too.
			old = signIn(t, env.HTTP(), env.URL, newKey().Key)
			oldID = idOf(old)
			setPast(t, env, "sessions", "expires_at", oldID)
			signIn(t, env.HTTP(), env.URL, newKey().Key)
			if rowsOf(oldID) != 0 {
				t.Errorf("a sign-in left an expired session stored")
			}
		})
		t.Run("removed member", func(t *testing.T) {
			gone, err := env.Admin.AddMember(ctx, "gone", "", "member")
			must(t, err)
			k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "k", UserID: gone.ID})
			must(t, err)
			b := signIn(t, env.HTTP(), env.URL, k.Key)
			id := idOf(b)
			must(t, env.Admin.RemoveMember(ctx, gone.ID))
			dead("removed member", b, id)
		})
	})
}

// A session opened with a key that expires soon ends with it.
func TestSessionNeverOutlivesItsKey(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	k, err := env.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: "short", ExpiresIn: "30d"})
	must(t, err)
	soon := time.Now().UTC().Add(time.Hour)
	_, err = env.DB.Exec(env.DB.Rebind(`UPDATE api_keys SET expires_at = ? WHERE id = ?`), soon, k.ID)
	must(t, err)
	b := signIn(t, env.HTTP(), env.URL, k.Key)
	if b.cookie.MaxAge > 3600 || b.sess.ExpiresAt.After(soon.Add(time.Second)) {
		t.Errorf("session of a key expiring in 1h: Max-Age %d, expiresAt %v", b.cookie.MaxAge, b.sess.ExpiresAt)
	}
}

func TestSessionTTLConfig(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.SessionTTL = 90 * time.Minute
	env := servertest.StartConfig(t, cfg)
	b := signIn(t, env.HTTP(), env.URL, env.AdminKey)
	if b.cookie.MaxAge != 5400 {
		t.Errorf("--session-ttl 90m: Max-Age %d, want 5400", b.cookie.MaxAge)
	}

	bad := server.Defaults()
	bad.DataDir = t.TempDir()
	bad.SessionTTL = 30 * time.Second
	if _, err := server.New(context.Background(), bad, env.Log); err == nil || !strings.Contains(err.Error(), "--session-ttl") {
		t.Errorf("server with a 30s session TTL: %v, want an error naming --session-ttl", err)
	}
}

// Over TLS the cookie is Secure: the browser never sends it in clear.
func TestSessionCookieSecureOverTLS(t *testing.T) {
	env := servertest.Start(t, "")
	ts := httptest.NewTLSServer(env.API.Handler())
	t.Cleanup(ts.Close)
	hc := ts.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	b := signIn(t, hc, ts.URL, env.AdminKey)
	if !b.cookie.Secure || !b.cookie.HttpOnly || b.cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over TLS: %q, want Secure, HttpOnly, SameSite=Strict", b.cookie.Raw)
	}
	a := b.do("DELETE", "/v1/session", nil)
	if sc := a.header.Get("Set-Cookie"); a.status != 200 || !strings.Contains(sc, "Secure") {
		t.Errorf("logout over TLS: %d, Set-Cookie %q, want Secure", a.status, sc)
	}
	// Behind a proxy that ends TLS, the proxy says so.
	a = rawSend(t, env.HTTP(), env.URL, "POST", "/v1/sessions", map[string]string{"apiKey": env.AdminKey}, map[string]string{"X-Forwarded-Proto": "https"}, nil)
	if sc := a.header.Get("Set-Cookie"); a.status != 201 || !strings.Contains(sc, "; Secure") {
		t.Errorf("sign-in with X-Forwarded-Proto: https: %d, Set-Cookie %q, want Secure", a.status, sc)
	}
}

// The dashboard's live views stream with the cookie alone.
func TestSessionWatchStream(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "watched"})
	must(t, err)
	b := signIn(t, env.HTTP(), env.URL, env.AdminKey)
	req, err := http.NewRequestWithContext(ctx, "GET", env.URL+"/v1/workspaces/"+ws.ID+"/watch", nil)
	must(t, err)
	req.AddCookie(&http.Cookie{Name: "berth_session", Value: b.cookie.Value})
	resp, err := env.HTTP().Do(req)
	must(t, err)
	defer closeBody(resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("watch with the cookie: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "ready") {
		t.Errorf("watch with the cookie: first line %q (%v), want the ready event", line, err)
	}
}

// Files that would run script on the dashboard's origin are served inert:
// attachment, nosniff and a CSP sandbox; passive types preview inline, still
// sandboxed.
func TestWorkspaceFilesServedInert(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		ctx := context.Background()
		ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "xss"})
		must(t, err)
		dir := wsDir(env, ws.ID)
		planted := map[string]string{
			"x.html":    `<html><body><script>fetch("/v1/api-keys",{method:"POST"})</script></body></html>`,
			"x.svg":     `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>`,
			"x.js":      `alert(document.cookie)`,
			"x.xhtml":   `<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`,
			"x.xml":     `<?xml version="1.0"?><x/>`,
			"x.weird9":  `<script>alert(1)</script>`,
			"noext":     `<script>alert(1)</script>`,
			"x.txt":     `<script>alert(1)</script> in a text file`,
			"x.png":     "\x89PNG\r\n\x1a\n<script>alert(1)</script>",
			"d/in.html": `<script>alert(1)</script>`,
		}
		for name, body := range planted {
			p := filepath.Join(dir, filepath.FromSlash(name))
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte(body), 0o644))
		}
		b := signIn(t, env.HTTP(), env.URL, env.AdminKey)
		get := func(query string, withCookie bool) answer {
			path := "/v1/workspaces/" + ws.ID + "/direct?" + query
			if withCookie {
				return b.do("GET", path, nil)
			}
			return rawSend(t, env.HTTP(), env.URL, "GET", path, nil, map[string]string{"X-API-Key": env.AdminKey}, nil)
		}
		inert := func(what string, a answer, disposition string) {
			t.Helper()
			if a.status != 200 {
				t.Errorf("%s: %v", what, a)
				return
			}
			if v := a.header.Get("X-Content-Type-Options"); v != "nosniff" {
				t.Errorf("%s: X-Content-Type-Options %q", what, v)
			}
			if v := a.header.Get("Content-Security-Policy"); v != "sandbox; default-src 'none'" {
				t.Errorf("%s: Content-Security-Policy %q", what, v)
			}
			if v := a.header.Get("Content-Disposition"); !strings.HasPrefix(v, disposition+";") {
				t.Errorf("%s: Content-Disposition %q, want %s", what, v, disposition)
			}
		}
		for _, withCookie := range []bool{false, true} {
			via := map[bool]string{false: "key", true: "cookie"}[withCookie]
			for _, name := range []string{"x.html", "x.svg", "x.js", "x.xhtml", "x.xml", "x.weird9", "noext", "d/in.html"} {
				a := get("id=/"+name, withCookie)
				inert(via+" "+name, a, "attachment")
				if string(a.body) != planted[name] {
					t.Errorf("%s %s: body %q", via, name, a.body)
				}
			}
			for _, name := range []string{"x.txt", "x.png"} {
				inert(via+" preview "+name, get("id=/"+name, withCookie), "inline")
				inert(via+" download "+name, get("id=/"+name+"&download=true", withCookie), "attachment")
			}
			inert(via+" zip", get("id=/d&format=zip", withCookie), "attachment")
			inert(via+" tar.gz", get("id=/d&format=tar.gz", withCookie), "attachment")
		}
		if ct := get("id=/x.png", false).header.Get("Content-Type"); ct != "image/png" {
			t.Errorf("x.png Content-Type %q", ct)
		}
		// Errors of the file route are sandboxed and unsniffed too.
		a := get("id=/missing.html", true)
		if a.status != 404 || a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Content-Security-Policy") == "" {
			t.Errorf("missing file: %d %v", a.status, a.header)
		}
	})
}

// Every API answer, success or error, public or not, says nosniff.
func TestNosniffEverywhere(t *testing.T) {
	env := servertest.Start(t, "")
	for _, tc := range []struct{ method, path, key string }{
		{"GET", "/healthz", ""},
		{"GET", "/v1/openapi.json", ""},
		{"GET", "/v1/me", env.AdminKey},
		{"GET", "/v1/me", ""},
		{"GET", "/v1/no-such-route", env.AdminKey},
		{"POST", "/v1/sessions", ""},
	} {
		hdr := map[string]string{}
		if tc.key != "" {
			hdr["X-API-Key"] = tc.key
		}
		req, err := http.NewRequest(tc.method, env.URL+tc.path, nil)
		must(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := env.HTTP().Do(req)
		must(t, err)
		closeBody(resp)
		if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q", tc.method, tc.path, resp.StatusCode, v)
		}
	}
}

// The Go client signs in and works through a session like the dashboard.
func TestClientSession(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	_, mc := env.Member(t, "gina", "member", "files:*")
	s, err := mc.SignIn(ctx)
	must(t, err)
	if s.Token == "" || s.CSRFToken == "" || s.User.Name != "gina" || !slices.Equal(s.Scopes, []string{"files:*"}) {
		t.Fatalf("SignIn: %+v", s)
	}
	sc := mc.WithSession(s)
	if _, err := sc.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "through a session"}); err != nil {
		t.Errorf("create a workspace through the session: %v", err)
	}
	if cur, err := sc.CurrentSession(ctx); err != nil || cur.CSRFToken != s.CSRFToken {
		t.Errorf("CurrentSession: %+v, %v", cur, err)
	}
	if _, err := mc.CurrentSession(ctx); client.ErrorCode(err) != "unauthorized" {
		t.Errorf("CurrentSession with a key: %v, want unauthorized", err)
	}
	must(t, sc.SignOut(ctx))
	if _, err := sc.Me(ctx); client.ErrorCode(err) != "unauthorized" {
		t.Errorf("Me after SignOut: %v, want unauthorized", err)
	}
	if _, err := mc.Me(ctx); err != nil {
		t.Errorf("the key after SignOut: %v", err)
	}
}
