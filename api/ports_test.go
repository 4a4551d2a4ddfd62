package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// portEcho builds internal/portecho, static, once per test binary.
var portEcho struct {
	once sync.Once
	path string
	err  error
}

func buildPortEcho(t testing.TB) string {
	t.Helper()
	portEcho.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-portecho-")
		if err != nil {
			portEcho.err = err
			return
		}
		portEcho.path = filepath.Join(dir, "portecho")
		cmd := exec.Command("go", "build", "-o", portEcho.path, "github.com/berth-dev/berth/internal/portecho")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			portEcho.err = errors.New(string(out))
		}
	})
	if portEcho.err != nil {
		t.Fatalf("build portecho: %v", portEcho.err)
	}
	return portEcho.path
}

// startPortEcho puts portecho into the sandbox (through a mounted
// workspace) and runs it on addr:8081, then waits until it answers
// through the proxy.
func startPortEcho(t testing.TB, c, plain *client.Client, req client.SandboxRequest, addr string) *client.Sandbox {
	t.Helper()
	bin := buildPortEcho(t)
	ctx := testctx.Context(t)
	ws, err := c.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "portecho"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFile(ctx, ws.ID, "/portecho", f, st.Size()); err != nil {
		t.Fatal(err)
	}
	req.Mounts = []client.Mount{{WorkspaceID: ws.ID, Path: "/workspace/bin", ReadOnly: true}}
	s := newSandbox(t, c, req)
	destroyOnCleanup(t, c, s.ID)
	r := run(t, c, s.ID, client.ExecRequest{Command: "cp /workspace/bin/portecho /tmp/pe && chmod +x /tmp/pe && " +
		"(setsid /tmp/pe " + addr + ":8081 >/tmp/pe.log 2>&1 &)"})
	if r.ExitCode != 0 {
		t.Fatalf("start portecho: %+v", r)
	}
	testctx.Eventually(t, "portecho to answer", func() bool {
		resp, err := plain.PortRequest(ctx, "GET", s.ID, 8081, "/headers", nil, nil)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// startHTTPD runs busybox httpd in the sandbox on 127.0.0.1:8080 serving
// /tmp/www, whose index.html holds body.
func startHTTPD(t testing.TB, c *client.Client, id, body string) {
	t.Helper()
	r := run(t, c, id, client.ExecRequest{Command: "mkdir -p /tmp/www && printf %s \"$BODY\" > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www",
		Env: map[string]string{"BODY": body}})
	if r.ExitCode != 0 {
		t.Fatalf("start httpd: %+v", r)
	}
}

func getPort(t testing.TB, c *client.Client, id string, port int, p string) (int, string) {
	t.Helper()
	resp, err := c.PortRequest(testctx.Context(t), "GET", id, port, p, nil, nil)
	if err != nil {
		t.Fatalf("GET port %d %s: %v", port, p, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// plainClient is a client with key whose answers are not checked against
// the OpenAPI document: a proxied answer is the server's own, of any status
// and type (berth's own errors are checked by the authorization matrix).
func plainClient(env *servertest.Env, key string) *client.Client { return client.New(env.URL, key) }

// The port proxy on both engines: busybox httpd reached through it, with
// network none too (through the supervisor).
func TestSandboxPorts(t *testing.T) {
	t.Parallel()
	for _, rt := range []string{server.RuntimeDocker, server.RuntimeContainerd} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			env := servertest.StartRuntime(t, "", rt)
			needEngine(t, env)
			a, p := env.Admin, plainClient(env, env.AdminKey)
			for _, network := range []string{"bridge", "none"} {
				s := newSandbox(t, a, client.SandboxRequest{Network: network})
				destroyOnCleanup(t, a, s.ID)
				startHTTPD(t, a, s.ID, "hello from "+network)
				var st int
				var body string
				testctx.Eventually(t, "httpd through the proxy", func() bool {
					st, body = getPort(t, p, s.ID, 8080, "/index.html")
					return st == 200
				})
				if body != "hello from "+network {
					t.Errorf("%s: %q", network, body)
				}
				if st, _ := getPort(t, p, s.ID, 8080, "/missing.html"); st != 404 {
					t.Errorf("%s: a missing page: %d, want the server's 404", network, st)
				}
				// Nothing listening: berth's own 503.
				_, err := p.PortRequest(testctx.Context(t), "GET", s.Name, 9, "/", nil, nil)
				if client.ErrorCode(err) != "unavailable" {
					t.Errorf("%s: nothing on port 9: %v, want unavailable", network, err)
				}
			}
		})
	}
}

// Headers, streaming and WebSockets, through the proxy to a Go server in
// the sandbox.
func TestSandboxPortsProxy(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	a := plainClient(env, env.AdminKey)
	s := startPortEcho(t, env.Admin, a, client.SandboxRequest{Network: "none"}, "127.0.0.1")
	ctx := testctx.Context(t)

	// berth's credentials stay with berth; X-Forwarded-* say where the
	// request came from.
	h := http.Header{}
	h.Set("Authorization", "Bearer secret")
	h.Set("X-CSRF-Token", "csrf")
	h.Add("Cookie", client.SessionCookie+"=sess; app=kept")
	resp, err := a.PortRequest(ctx, "POST", s.ID, 8081, "/headers?x=1", strings.NewReader("body"), h)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Header        http.Header
		Host, Path    string
		Query, Method string
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for _, k := range []string{"Authorization", "X-Api-Key", "X-Csrf-Token"} {
		if v := got.Header.Get(k); v != "" {
			t.Errorf("%s reached the server: %q", k, v)
		}
	}
	if c := got.Header.Get("Cookie"); c != "app=kept" {
		t.Errorf("Cookie: %q, want only the app's cookie", c)
	}
	if got.Path != "/headers" || got.Query != "x=1" || got.Method != "POST" {
		t.Errorf("request line: %+v", got)
	}
	if got.Header.Get("X-Forwarded-For") == "" || got.Header.Get("X-Forwarded-Proto") != "http" ||
		got.Header.Get("X-Forwarded-Prefix") != "/v1/sandboxes/"+s.ID+"/ports/8081" {
		t.Errorf("X-Forwarded-*: %v", got.Header)
	}

	// A streamed answer comes as the server writes it: the second line
	// is held until the first one has arrived.
	resp, err = a.PortRequest(ctx, "GET", s.ID, 8081, "/stream", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("first line: %q %v", line, err)
	}
	if st, body := getPort(t, a, s.ID, 8081, "/release"); st != 200 {
		t.Fatalf("release: %d %s", st, body)
	}
	if rest, err := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest: %q %v", rest, err)
	}
	_ = resp.Body.Close()

	// A WebSocket upgrade goes through.
	wsURL := "ws" + strings.TrimPrefix(env.URL, "http") + client.PortPath(s.ID, 8081, "/ws")
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-API-Key": {env.AdminKey}}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer func() { _ = c.CloseNow() }()
	for _, msg := range []string{"one", "two"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.Read(ctx)
		if err != nil || string(p) != "echo:"+msg {
			t.Errorf("echo of %s: %q %v", msg, p, err)
		}
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// The proxy needs sandbox:write, as exec does, and a member cannot reach
// another's sandbox (404, as exec).
func TestSandboxPortsAccess(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{})
	destroyOnCleanup(t, a, s.ID)
	startHTTPD(t, a, s.ID, "private")
	ctx := testctx.Context(t)
	p := plainClient(env, env.AdminKey)
	testctx.Eventually(t, "httpd through the proxy", func() bool {
		st, _ := getPort(t, p, s.ID, 8080, "/index.html")
		return st == 200
	})

	ro := plainClient(env, keyWith(t, a, "sandbox:read"))
	_, err := ro.PortRequest(ctx, "GET", s.ID, 8080, "/", nil, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden {
		t.Errorf("without sandbox:write: %v, want 403", err)
	}
	_, other := env.Member(t, "ports-other", "member")
	_, err = plainClient(env, other.Key).PortRequest(ctx, "GET", s.ID, 8080, "/", nil, nil)
	_, execErr := other.Exec(ctx, s.ID, client.ExecRequest{Command: "true"})
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound || client.ErrorCode(execErr) != ce.Code {
		t.Errorf("another member's sandbox: %v (exec: %v), want 404 as exec", err, execErr)
	}
	if _, err := client.New(env.URL, "").PortRequest(ctx, "GET", s.ID, 8080, "/", nil, nil); client.ErrorCode(err) != "unauthorized" {
		t.Errorf("no key: %v, want unauthorized", err)
	}
	for _, bad := range []string{"0", "65536", "http"} {
		if st, _, code, _ := raw(t, env, env.AdminKey, "GET", "/v1/sandboxes/"+s.ID+"/ports/"+bad+"/x", nil); st != http.StatusBadRequest {
			t.Errorf("port %s: %d %s, want 400", bad, st, code)
		}
	}
}
