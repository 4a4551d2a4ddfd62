package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// screen collects a terminal's output.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the output after offset from contains want and
// returns the offset past it.
func (s *screen) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	at := -1
	testctx.Eventually(t, "terminal output "+want, func() bool {
		out := s.String()
		if i := strings.Index(out[from:], want); i >= 0 {
			at = from + i + len(want)
			return true
		}
		return false
	})
	return at
}

type waited struct {
	code int
	err  error
}

func openTerminal(t *testing.T, c *client.Client, id string, opt client.TerminalOptions) (*client.Terminal, *screen, <-chan waited) {
	t.Helper()
	term, err := c.Terminal(testctx.Context(t), id, opt)
	if err != nil {
		t.Fatalf("open terminal: %v", err)
	}
	t.Cleanup(func() { _ = term.Close() })
	scr := &screen{}
	done := make(chan waited, 1)
	go func() {
		code, err := term.Wait(scr)
		done <- waited{code, err}
	}()
	return term, scr, done
}

// A shell session driven through the WebSocket: the prompt, a typed
// command, the terminal's size and a resize, and the exit code.
func TestSandboxTerminal(t *testing.T) {
	t.Parallel()
	t.Run("supervisor", func(t *testing.T) {
		t.Parallel()
		testTerminal(t, servertest.Start(t, ""))
	})
	// A sandbox without a supervisor gets its terminal through the
	// engine's exec.
	t.Run("engine", func(t *testing.T) {
		t.Parallel()
		cfg := server.Defaults()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = t.TempDir()
		cfg.Supervisor = "off"
		testTerminal(t, servertest.StartConfig(t, cfg))
	})
}

func testTerminal(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{})
	destroyOnCleanup(t, a, s.ID)

	term, scr, done := openTerminal(t, a, s.ID, client.TerminalOptions{Rows: 30, Cols: 100})
	at := scr.waitFor(t, 0, "/workspace # ") // BusyBox sh's prompt for root, in the sandbox's directory
	write := func(s string) {
		if _, err := term.Write([]byte(s)); err != nil {
			t.Fatalf("type %q: %v", s, err)
		}
	}
	write("echo hello-$((6*7))\n")
	at = scr.waitFor(t, at, "hello-42\r\n")
	write("stty size; tty\n")
	at = scr.waitFor(t, at, "30 100\r\n/dev/pts/")
	if err := term.Resize(50, 132); err != nil {
		t.Fatal(err)
	}
	// Through the supervisor a resize is ordered with the input; through
	// the engine it is a call of its own, which may land after the next
	// command: ask until the size shows.
	testctx.Eventually(t, "the new size", func() bool {
		write("stty size\n")
		at = scr.waitFor(t, at, "stty size\r\n")
		end := scr.waitFor(t, at, "# ")
		resized := strings.Contains(scr.String()[at:end], "50 132\r\n")
		at = end
		return resized
	})
	write("exit 3\n")
	r := <-done
	if r.err != nil || r.code != 3 {
		t.Errorf("exit 3: code %d, err %v", r.code, r.err)
	}

	// ?cmd runs a command line instead of the shell.
	_, scr, done = openTerminal(t, a, s.ID, client.TerminalOptions{Cmd: "test -t 0 && echo on-a-tty; exit 5", Cwd: "/tmp"})
	if r := <-done; r.err != nil || r.code != 5 || !strings.Contains(scr.String(), "on-a-tty") {
		t.Errorf("?cmd: code %d, err %v, output %q", r.code, r.err, scr.String())
	}

	// Closing the WebSocket kills the shell and what it started.
	term, scr, _ = openTerminal(t, a, s.ID, client.TerminalOptions{Cmd: "setsid sleep 4731 & echo started; sleep 4732"})
	scr.waitFor(t, 0, "started")
	if err := term.Close(); err != nil {
		t.Fatal(err)
	}
	testctx.Eventually(t, "the terminal's processes to be gone", func() bool {
		r := run(t, a, s.ID, client.ExecRequest{Command: `for d in /proc/[0-9]*; do tr '\0' ' ' < $d/cmdline 2>/dev/null; echo; done | grep -c '^sleep 473' || true`})
		return strings.TrimSpace(r.Stdout) == "0"
	})
}

// The terminal needs sandbox:write, and a member cannot open one in
// another's sandbox (which they cannot see: 404, as for exec).
func TestSandboxTerminalAccess(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{})
	destroyOnCleanup(t, a, s.ID)
	ctx := testctx.Context(t)

	ro := env.Client(keyWith(t, a, "sandbox:read"))
	_, err := ro.Terminal(ctx, s.ID, client.TerminalOptions{})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != "forbidden" {
		t.Errorf("without sandbox:write: %v, want 403 forbidden", err)
	}
	_, other := env.Member(t, "terminal-other", "member")
	_, err = other.Terminal(ctx, s.ID, client.TerminalOptions{})
	_, execErr := other.Exec(ctx, s.ID, client.ExecRequest{Command: "true"})
	if !errors.As(err, &ce) || ce.Status != http.StatusNotFound || client.ErrorCode(execErr) != ce.Code {
		t.Errorf("another member's sandbox: %v (exec: %v), want 404 as exec", err, execErr)
	}
	// A plain GET is refused before anything runs.
	if st, _, code, _ := raw(t, env, env.AdminKey, "GET", "/v1/sandboxes/"+s.ID+"/pty", nil); st != http.StatusBadRequest {
		t.Errorf("GET without an upgrade: %d %s, want 400", st, code)
	}
	if st, _, code, _ := raw(t, env, env.AdminKey, "GET", "/v1/sandboxes/"+s.ID+"/pty?rows=0", nil); st != http.StatusBadRequest {
		t.Errorf("rows=0: %d %s, want 400", st, code)
	}
}

// keyWith makes an admin key with only scopes.
func keyWith(t *testing.T, a *client.Client, scopes ...string) string {
	t.Helper()
	k, err := a.CreateAPIKey(context.Background(), client.KeyRequest{Name: "pty-" + strings.Join(scopes, "-"), Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return k.Key
}

// A terminal signed in with the session cookie (the dashboard's) must come
// from the server's own origin: a browser cannot send the CSRF header on a
// WebSocket, but always sends Origin.
func TestSandboxTerminalSessionOrigin(t *testing.T) {
	t.Parallel()
	env := servertest.Start(t, "")
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{})
	destroyOnCleanup(t, a, s.ID)
	ctx := testctx.Context(t)
	sess, err := a.SignIn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := a.WithSession(sess)
	u := strings.TrimPrefix(env.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"", false}, {"http://evil.example", false}, {"http://" + u + ".evil.example", false}, {"null", false}, {"http://" + u, true}} {
		opt := client.TerminalOptions{Cmd: "exit 7"}
		if tc.origin != "" {
			opt.Header = http.Header{"Origin": {tc.origin}}
		}
		term, err := c.Terminal(ctx, s.ID, opt)
		if !tc.ok {
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusForbidden {
				t.Errorf("Origin %q: %v, want 403", tc.origin, err)
			}
			if term != nil {
				_ = term.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("Origin %q: %v", tc.origin, err)
		}
		if code, err := term.Wait(io.Discard); code != 7 || err != nil {
			t.Errorf("same origin: exit %d %v, want 7", code, err)
		}
	}
}
