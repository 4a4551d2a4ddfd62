package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// needEngine makes sure env's engine answers (a missing one fails under
// CI=true and skips elsewhere) and has the base template's image.
func needEngine(t testing.TB, env *servertest.Env) {
	t.Helper()
	rt := env.Sandboxes.Runtime()
	runtimetest.Require(t, rt)
	runtimetest.BaseImage(t, rt)
}

// forRuntimes runs fn against a server (on SQLite) with sandboxes on each
// container engine: the manager's guarantees hold on both.
func forRuntimes(t *testing.T, fn func(t *testing.T, env *servertest.Env)) {
	for _, r := range servertest.Runtimes {
		t.Run(r, func(t *testing.T) { fn(t, servertest.StartRuntime(t, "", r)) })
	}
}

// newSandbox creates a sandbox (synchronously) and destroys it when the test
// ends.
func newSandbox(t testing.TB, c *client.Client, req client.SandboxRequest) *client.Sandbox {
	t.Helper()
	if req.Template == "" {
		req.Template = "base"
	}
	if req.Resources == nil {
		req.Resources = &client.Resources{Memory: "64MiB"}
	}
	s, err := c.CreateSandbox(context.Background(), req, false)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() { _ = c.DestroySandbox(context.Background(), s.ID) })
	return s
}

// containers lists the engine's containers of env's instance.
func containers(t testing.TB, env *servertest.Env) []runtime.Container {
	t.Helper()
	cs, err := env.Sandboxes.Runtime().List(context.Background(), map[string]string{sandbox.LabelInstance: env.Sandboxes.Instance()})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return cs
}

// raw sends one request with key and returns the status, the envelope's
// data and, for an error, its code and message.
func raw(t testing.TB, env *servertest.Env, key, method, path string, body any) (int, json.RawMessage, string, string) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, env.URL+path, rd)
	req.Header.Set("X-API-Key", key)
	resp, err := env.HTTP().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer closeBody(resp)
	var e struct {
		Data  json.RawMessage `json:"data"`
		Error struct{ Code, Message string }
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s %s: %d, not an envelope: %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, e.Data, e.Error.Code, e.Error.Message
}

func status(t testing.TB, c *client.Client, id string) string {
	t.Helper()
	s, err := c.Sandbox(context.Background(), id)
	if err != nil {
		t.Fatalf("get sandbox %s: %v", id, err)
	}
	return s.Status
}

// engineState is the state the engine reports for a sandbox's container
// ("" when there is none).
func engineState(t testing.TB, env *servertest.Env, id string) runtime.State {
	t.Helper()
	cs, err := env.Sandboxes.Runtime().List(context.Background(), map[string]string{sandbox.LabelSandbox: id})
	if err != nil {
		t.Fatal(err)
	}
	switch len(cs) {
	case 0:
		return ""
	case 1:
		return cs[0].State
	}
	t.Fatalf("sandbox %s has %d containers", id, len(cs))
	return ""
}

func run(t testing.TB, c *client.Client, id string, req client.ExecRequest) *client.ExecResult {
	t.Helper()
	r, err := c.Exec(context.Background(), id, req)
	if err != nil {
		t.Fatalf("exec %v: %v", req.Command, err)
	}
	return r
}

// sh runs a shell command that must succeed and returns its stdout.
func sh(t testing.TB, c *client.Client, id, cmd string) string {
	t.Helper()
	r := run(t, c, id, client.ExecRequest{Command: cmd})
	if r.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d, stderr %q", cmd, r.ExitCode, r.Stderr)
	}
	return r.Stdout
}

func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		a := env.Admin
		key := env.AdminKey

		st, data, _, msg := raw(t, env, key, "POST", "/v1/sandboxes", map[string]any{
			"name": "life", "template": "base", "tags": []string{"t1", "t2"}, "env": map[string]string{"SECRET": "s3cret"},
			"resources": map[string]any{"memory": "64MiB"}, "metadata": map[string]string{"k": "v"},
		})
		if st != 201 {
			t.Fatalf("sync create: %d %s", st, msg)
		}
		var s client.Sandbox
		must(t, json.Unmarshal(data, &s))
		destroyOnCleanup(t, a, s.ID)
		if s.Status != "running" || !strings.HasPrefix(s.ID, "sbx_") || s.Name != "life" || s.IP == "" ||
			!slices.Equal(s.Tags, []string{"t1", "t2"}) || !slices.Equal(s.Env, []string{"SECRET"}) || s.Metadata["k"] != "v" {
			t.Errorf("created sandbox: %+v", s)
		}
		if strings.Contains(string(data), "s3cret") {
			t.Errorf("the sandbox object shows an env value: %s", data)
		}
		if got := engineState(t, env, s.ID); got != runtime.StateRunning {
			t.Errorf("engine state after create: %q", got)
		}
		if got, err := a.Sandbox(ctx, "life"); err != nil || got.ID != s.ID {
			t.Errorf("get by name: %v %+v", err, got)
		}
		if out := sh(t, a, s.ID, "echo $SECRET $BERTH_SANDBOX_ID"); out != "s3cret "+s.ID+"\n" {
			t.Errorf("sandbox env inside: %q", out)
		}

		// Async: 202 while creating, then running.
		st, data, _, msg = raw(t, env, key, "POST", "/v1/sandboxes?async=true", map[string]any{"template": "base", "resources": map[string]any{"memory": "64MiB"}})
		if st != 202 {
			t.Fatalf("async create: %d %s", st, msg)
		}
		var as client.Sandbox
		must(t, json.Unmarshal(data, &as))
		destroyOnCleanup(t, a, as.ID)
		if as.Status != "creating" {
			t.Errorf("async create answered status %q, want creating", as.Status)
		}
		testctx.Eventually(t, "the async sandbox to run", func() bool { return status(t, a, as.ID) != "creating" })
		if got := status(t, a, as.ID); got != "running" {
			t.Fatalf("async sandbox ended %q", got)
		}
		sh(t, a, as.ID, "true")

		// Every transition, every refused one (409 naming the current state),
		// and the engine agreeing each time.
		act := func(verb string, wantStatus int, want string) {
			t.Helper()
			st, data, code, msg := raw(t, env, key, "POST", "/v1/sandboxes/"+s.ID+"/"+verb, nil)
			if st != wantStatus {
				t.Fatalf("%s: %d %s %s, want %d", verb, st, code, msg, wantStatus)
			}
			if st == 409 {
				if code != "conflict" || !strings.Contains(msg, want) {
					t.Errorf("%s refused with %s %q; want conflict naming %q", verb, code, msg, want)
				}
				if got := status(t, a, s.ID); got != want {
					t.Errorf("after a refused %s the sandbox is %s, want %s", verb, got, want)
				}
				return
			}
			var got client.Sandbox
			must(t, json.Unmarshal(data, &got))
			if got.Status != want {
				t.Errorf("%s answered status %s, want %s", verb, got.Status, want)
			}
		}
		engine := func(want runtime.State) {
			t.Helper()
			if got := engineState(t, env, s.ID); got != want {
				t.Errorf("engine state %q, want %q", got, want)
			}
		}
		execRefused := func(want string) {
			t.Helper()
			st, _, code, msg := raw(t, env, key, "POST", "/v1/sandboxes/"+s.ID+"/exec", map[string]any{"command": "true"})
			if st != 409 || code != "conflict" || !strings.Contains(msg, want) {
				t.Errorf("exec in a %s sandbox: %d %s %q", want, st, code, msg)
			}
		}

		sh(t, a, s.ID, "echo kept > /tmp/local; sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/bg")
		act("resume", 409, "running")
		act("start", 409, "running")
		act("pause", 200, "paused")
		engine(runtime.StatePaused)
		act("pause", 409, "paused")
		act("start", 409, "paused")
		act("keepalive", 200, "paused")
		act("resume", 200, "running")
		engine(runtime.StateRunning)
		// Pause keeps processes: the background sleep is still there.
		sh(t, a, s.ID, "kill -0 $(cat /tmp/bg)")
		act("stop", 200, "stopped")
		engine(runtime.StateExited)
		if got, _ := a.Sandbox(ctx, s.ID); got.IP != "" {
			t.Errorf("a stopped sandbox shows ip %q", got.IP)
		}
		act("stop", 409, "stopped")
		act("pause", 409, "stopped")
		act("resume", 409, "stopped")
		act("keepalive", 409, "stopped")
		execRefused("stopped")
		act("start", 200, "running")
		engine(runtime.StateRunning)
		if got, _ := a.Sandbox(ctx, s.ID); got.IP == "" {
			t.Errorf("a started sandbox has no ip")
		}
		// Stop keeps the sandbox's own filesystem.
		if out := sh(t, a, s.ID, "cat /tmp/local"); out != "kept\n" {
			t.Errorf("sandbox file after stop/start: %q", out)
		}
		prev, err := a.Sandbox(ctx, s.ID)
		must(t, err)
		act("keepalive", 200, "running")
		got, err := a.Sandbox(ctx, s.ID)
		must(t, err)
		if got.LastActivityAt.Before(prev.LastActivityAt) || got.LastActivityAt.Equal(prev.LastActivityAt) {
			t.Errorf("keepalive did not move lastActivityAt: %v → %v", prev.LastActivityAt, got.LastActivityAt)
		}
		// A paused sandbox can be stopped.
		act("pause", 200, "paused")
		act("stop", 200, "stopped")
		act("start", 200, "running")

		// Lists and filters.
		list, _, err := a.Sandboxes(ctx, client.SandboxFilter{Tags: []string{"t1", "t2"}})
		must(t, err)
		if len(list) != 1 || list[0].ID != s.ID {
			t.Errorf("list by tags: %+v", list)
		}
		list, _, err = a.Sandboxes(ctx, client.SandboxFilter{Status: "running", Template: "base"})
		must(t, err)
		if len(list) != 2 {
			t.Errorf("list running base: %d sandboxes, want 2", len(list))
		}

		// Destroy: container gone, the sandbox destroyed, its name free.
		st, data, _, msg = raw(t, env, key, "DELETE", "/v1/sandboxes/"+s.ID, nil)
		if st != 200 || string(data) != `{"deleted":true,"id":"`+s.ID+`"}` {
			t.Errorf("destroy: %d %s %s", st, data, msg)
		}
		engine("")
		if got := status(t, a, s.ID); got != "destroyed" {
			t.Errorf("after destroy: %s", got)
		}
		for _, verb := range []string{"pause", "resume", "stop", "start", "keepalive"} {
			act(verb, 409, "destroyed")
		}
		execRefused("destroyed")
		if st, _, code, msg := raw(t, env, key, "DELETE", "/v1/sandboxes/"+s.ID, nil); st != 409 || code != "conflict" || !strings.Contains(msg, "destroyed") {
			t.Errorf("second destroy: %d %s %q", st, code, msg)
		}
		list, _, err = a.Sandboxes(ctx, client.SandboxFilter{})
		must(t, err)
		if slices.ContainsFunc(list, func(x client.Sandbox) bool { return x.ID == s.ID }) {
			t.Errorf("the default list shows a destroyed sandbox")
		}
		again := newSandbox(t, a, client.SandboxRequest{Name: "life"})
		if again.ID == s.ID {
			t.Errorf("a new sandbox reused the id")
		}
		if got, err := a.Sandbox(ctx, "life"); err != nil || got.ID != again.ID {
			t.Errorf("the name now names the new sandbox: %v %+v", err, got)
		}
		if _, err := a.CreateSandbox(ctx, client.SandboxRequest{Name: "life", Template: "base"}, false); client.ErrorCode(err) != "conflict" {
			t.Errorf("a taken name: %v, want conflict", err)
		}
	})
}

func TestSandboxExec(t *testing.T) {
	t.Parallel()
	forRuntimes(t, testSandboxExec)
}

func testSandboxExec(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{Env: map[string]string{"FROM_CREATE": "yes"}})
	str := func(s string) *string { return &s }

	cases := []struct {
		name string
		req  client.ExecRequest
		want client.ExecResult
	}{
		{"exit code", client.ExecRequest{Command: "exit 3"}, client.ExecResult{ExitCode: 3}},
		{"argv", client.ExecRequest{Command: []string{"printf", "%s|%s", "a b", "$HOME"}}, client.ExecResult{Stdout: "a b|$HOME"}},
		{"argv false", client.ExecRequest{Command: []string{"false"}}, client.ExecResult{ExitCode: 1}},
		{"no such command", client.ExecRequest{Command: "/no/such"}, client.ExecResult{ExitCode: 127, Stderr: "/bin/sh: /no/such: not found\n"}},
		{"stderr", client.ExecRequest{Command: "echo out; echo err >&2; exit 2"}, client.ExecResult{Stdout: "out\n", Stderr: "err\n", ExitCode: 2}},
		{"stdin", client.ExecRequest{Command: "cat; echo", Stdin: str("line 1\nline 2")}, client.ExecResult{Stdout: "line 1\nline 2\n"}},
		{"no stdin", client.ExecRequest{Command: "cat"}, client.ExecResult{}},
		{"env", client.ExecRequest{Command: "echo $FOO $FROM_CREATE", Env: map[string]string{"FOO": "bar baz"}}, client.ExecResult{Stdout: "bar baz yes\n"}},
		{"default cwd", client.ExecRequest{Command: "pwd"}, client.ExecResult{Stdout: "/workspace\n"}},
		{"cwd", client.ExecRequest{Command: "pwd", Cwd: "/tmp"}, client.ExecResult{Stdout: "/tmp\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(t, a, s.ID, c.req)
			if got.Stdout != c.want.Stdout || got.Stderr != c.want.Stderr || got.ExitCode != c.want.ExitCode || got.TimedOut || got.Truncated {
				t.Errorf("got %+v, want %+v", *got, c.want)
			}
		})
	}

	// Docker reports an argv it cannot start as 126 (its message on stdout).
	if r := run(t, a, s.ID, client.ExecRequest{Command: []string{"/no/such"}}); r.ExitCode != 126 && r.ExitCode != 127 {
		t.Errorf("argv that cannot start: %+v", *r)
	}

	t.Run("bad requests", func(t *testing.T) {
		for _, body := range []map[string]any{
			{}, {"command": ""}, {"command": []string{}}, {"command": 3}, {"command": "true", "timeout": -1},
			{"command": "true", "cwd": "relative"}, {"command": "true", "env": map[string]string{"1X": "y"}},
			{"command": "true", "unknown": 1},
		} {
			st, _, code, _ := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes/"+s.ID+"/exec", body)
			if st != 400 || code != "invalid_request" {
				t.Errorf("exec %v: %d %s, want 400 invalid_request", body, st, code)
			}
		}
		if st, _, _, _ := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes/sbx_nope/exec", map[string]any{"command": "true"}); st != 404 {
			t.Errorf("exec in a missing sandbox: %d", st)
		}
	})

	t.Run("timeout kills", func(t *testing.T) {
		r := run(t, a, s.ID, client.ExecRequest{Command: "echo started; echo $$ > /tmp/victim; sleep 1000 & wait", Timeout: 300})
		if !r.TimedOut || r.ExitCode != -1 || r.Stdout != "started\n" {
			t.Errorf("timed out exec: %+v", *r)
		}
		// The shell and its sleep are gone (checked from a second exec).
		out := sh(t, a, s.ID, "kill -0 $(cat /tmp/victim) 2>/dev/null && echo alive; ps -o args | grep '^sleep 1000' || true")
		if out != "" {
			t.Errorf("processes of the timed-out exec live on: %q", out)
		}
	})

	t.Run("large output", func(t *testing.T) {
		r := run(t, a, s.ID, client.ExecRequest{Command: "head -c 1500000 /dev/zero | tr '\\0' o; head -c 1100000 /dev/zero | tr '\\0' e >&2"})
		if !r.Truncated || len(r.Stdout) != 1<<20 || len(r.Stderr) != 1<<20 || r.ExitCode != 0 ||
			strings.Trim(r.Stdout, "o") != "" || strings.Trim(r.Stderr, "e") != "" {
			t.Errorf("large output: truncated=%v stdout %d stderr %d exit %d", r.Truncated, len(r.Stdout), len(r.Stderr), r.ExitCode)
		}
		r = run(t, a, s.ID, client.ExecRequest{Command: "head -c 1048576 /dev/zero"})
		if r.Truncated || len(r.Stdout) != 1<<20 {
			t.Errorf("exactly 1 MiB: truncated=%v len %d", r.Truncated, len(r.Stdout))
		}
	})

	t.Run("stream", func(t *testing.T) {
		var events []client.Event
		var out, errs strings.Builder
		err := a.ExecStream(ctx, s.ID, client.ExecRequest{Command: "echo one; echo two >&2; printf 'three\\n\\nfour'; exit 4"}, func(e client.Event) error {
			events = append(events, e)
			switch e.Name {
			case "stdout":
				out.WriteString(e.Data)
			case "stderr":
				errs.WriteString(e.Data)
			}
			return nil
		})
		must(t, err)
		if len(events) < 3 || events[len(events)-1].Name != "exit" {
			t.Fatalf("events: %+v", events)
		}
		for _, e := range events[:len(events)-1] {
			if e.Name != "stdout" && e.Name != "stderr" {
				t.Errorf("unexpected event %+v", e)
			}
		}
		var exit struct {
			ExitCode   *int   `json:"exitCode"`
			DurationMs *int64 `json:"durationMs"`
		}
		must(t, json.Unmarshal([]byte(events[len(events)-1].Data), &exit))
		if exit.ExitCode == nil || *exit.ExitCode != 4 || exit.DurationMs == nil {
			t.Errorf("exit event %s", events[len(events)-1].Data)
		}
		if out.String() != "one\nthree\n\nfour" || errs.String() != "two\n" {
			t.Errorf("streamed stdout %q stderr %q", out.String(), errs.String())
		}
		// A missing sandbox is a plain 404, not a stream.
		err = a.ExecStream(ctx, "sbx_nope", client.ExecRequest{Command: "true"}, func(client.Event) error { return nil })
		if client.ErrorCode(err) != "not_found" {
			t.Errorf("stream into a missing sandbox: %v", err)
		}
	})

	t.Run("paused sandbox resumes", func(t *testing.T) {
		_, err := a.SandboxAction(ctx, s.ID, "pause")
		must(t, err)
		if out := sh(t, a, s.ID, "echo awake"); out != "awake\n" {
			t.Errorf("exec in a paused sandbox: %q", out)
		}
		if got := status(t, a, s.ID); got != "running" {
			t.Errorf("after exec the sandbox is %s", got)
		}
		if got := engineState(t, env, s.ID); got != runtime.StateRunning {
			t.Errorf("after exec the engine says %s", got)
		}
	})
}

func TestSandboxWorkspaceMounts(t *testing.T) {
	t.Parallel()
	forRuntimes(t, testSandboxWorkspaceMounts)
}

func testSandboxWorkspaceMounts(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	newWS := func(name string) string {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: name})
		must(t, err)
		return w.ID
	}
	dir := func(ws string) string { return filepath.Join(env.Config.DataDir, "workspaces", ws) }

	t.Run("persists across sandboxes", func(t *testing.T) {
		w := newWS("persist")
		sa := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w, Path: "/workspace"}}})
		if !sa.HasWritableWorkspaceMount || len(sa.Mounts) != 1 || sa.Mounts[0].WorkspaceID != w {
			t.Errorf("sandbox mounts: %+v", sa)
		}
		sh(t, a, sa.ID, `mkdir -p /workspace/d && printf 'bytes\001\377 end' > /workspace/d/f && echo local > /tmp/local`)
		must(t, a.DestroySandbox(ctx, sa.ID))
		want := "bytes\x01\xff end"
		if b, err := os.ReadFile(filepath.Join(dir(w), "d", "f")); err != nil || string(b) != want {
			t.Errorf("on disk: %q %v", b, err)
		}
		sb := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w, Path: "/workspace"}}})
		if out := sh(t, a, sb.ID, "od -An -c /workspace/d/f | tr -s ' '"); out != " b y t e s 001 377 e n d\n" {
			t.Errorf("sandbox B reads %q", out)
		}
		if out := sh(t, a, sb.ID, "cat /tmp/local 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("a sandbox-local file outlived its sandbox: %q", out)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		w := newWS("ro")
		must(t, os.WriteFile(filepath.Join(dir(w), "seen"), []byte("x"), 0o644))
		s := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w, Path: "/workspace", ReadOnly: true}}})
		if s.HasWritableWorkspaceMount || !s.Mounts[0].ReadOnly {
			t.Errorf("read-only mount shown as %+v", s)
		}
		r := run(t, a, s.ID, client.ExecRequest{Command: "cat /workspace/seen && echo y > /workspace/new"})
		if r.ExitCode == 0 || r.Stdout != "x" || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("write into a read-only mount: %+v", *r)
		}
		if _, err := os.Stat(filepath.Join(dir(w), "new")); err == nil {
			t.Errorf("the write reached the workspace")
		}
	})

	t.Run("nested", func(t *testing.T) {
		outer, inner := newWS("outer"), newWS("inner")
		must(t, os.WriteFile(filepath.Join(dir(outer), "who"), []byte("outer"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir(inner), "who"), []byte("inner"), 0o644))
		// Listed child first: the manager must mount parents first.
		s := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{
			{WorkspaceID: inner, Path: "/workspace/data/in"}, {WorkspaceID: outer, Path: "/workspace"},
		}})
		if out := sh(t, a, s.ID, "cat /workspace/who; echo; cat /workspace/data/in/who; echo w > /workspace/data/in/written"); out != "outer\ninner" {
			t.Errorf("nested mounts read %q", out)
		}
		if _, err := os.Stat(filepath.Join(dir(inner), "written")); err != nil {
			t.Errorf("write under the inner mount missed the inner workspace: %v", err)
		}
	})

	t.Run("usage and delete", func(t *testing.T) {
		w := newWS("used")
		s := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w, Path: "/workspace/x", ReadOnly: true}}})
		u, err := a.WorkspaceUsage(ctx, w)
		must(t, err)
		if !u.InUse || u.Counts.MountedSandboxes != 1 || len(u.MountedSandboxes) != 1 {
			t.Fatalf("usage: %+v", u)
		}
		if m := u.MountedSandboxes[0]; m.SandboxID != s.ID || m.SandboxName != s.Name || m.SandboxStatus != "running" || m.MountPath != "/workspace/x" || !m.ReadOnly {
			t.Errorf("usage entry: %+v", m)
		}
		st, _, code, _ := raw(t, env, env.AdminKey, "DELETE", "/v1/workspaces/"+w, nil)
		if st != 409 || code != "WORKSPACE_IN_USE" {
			t.Errorf("delete of a mounted workspace: %d %s", st, code)
		}
		must(t, a.DestroySandbox(ctx, s.ID))
		u, err = a.WorkspaceUsage(ctx, w)
		must(t, err)
		if u.InUse || u.Counts.MountedSandboxes != 0 {
			t.Errorf("usage after destroy: %+v", u)
		}
		// Force deletes a workspace still mounted; the sandbox lives on.
		w2 := newWS("forced")
		s2 := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w2, Path: "/workspace"}}})
		if st, _, code, _ := raw(t, env, env.AdminKey, "DELETE", "/v1/workspaces/"+w2+"?force=true", nil); st != 200 {
			t.Errorf("forced delete: %d %s", st, code)
		}
		// (An exec with the deleted workspace as its cwd cannot start.)
		if r := run(t, a, s2.ID, client.ExecRequest{Command: "ls -A /workspace", Cwd: "/"}); r.ExitCode != 0 || r.Stdout != "" {
			t.Errorf("after a forced delete: %+v", *r)
		}
	})
}

func TestSandboxMountValidation(t *testing.T) {
	t.Parallel()
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		mine, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "org"})
		must(t, err)
		other, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "not granted"})
		must(t, err)
		m, mc := env.Member(t, "mounter", "member")
		_, err = env.Admin.SetWorkspaceAccess(ctx, mine.ID, []string{m.ID})
		must(t, err)
		personal, err := mc.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "mine only", Personal: true})
		must(t, err)
		own, err := mc.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "member's org ws"})
		must(t, err)

		ok := mine.ID
		cases := []struct {
			name   string
			mounts []client.Mount
			status int
		}{
			{"outside /workspace", []client.Mount{{WorkspaceID: ok, Path: "/etc"}}, 400},
			{"dot-dot", []client.Mount{{WorkspaceID: ok, Path: "/workspace/../etc"}}, 400},
			{"relative", []client.Mount{{WorkspaceID: ok, Path: "workspace"}}, 400},
			{"trailing slash", []client.Mount{{WorkspaceID: ok, Path: "/workspace/"}}, 400},
			{"dot segment", []client.Mount{{WorkspaceID: ok, Path: "/workspace/./x"}}, 400},
			{"empty segment", []client.Mount{{WorkspaceID: ok, Path: "/workspace//x"}}, 400},
			{"prefix only", []client.Mount{{WorkspaceID: ok, Path: "/workspacex"}}, 400},
			{"empty path", []client.Mount{{WorkspaceID: ok, Path: ""}}, 400},
			{"colon", []client.Mount{{WorkspaceID: ok, Path: "/workspace/a:b"}}, 400},
			{"duplicate", []client.Mount{{WorkspaceID: ok, Path: "/workspace"}, {WorkspaceID: own.ID, Path: "/workspace"}}, 400},
			{"no workspace id", []client.Mount{{Path: "/workspace"}}, 400},
			{"personal", []client.Mount{{WorkspaceID: personal.ID, Path: "/workspace"}}, 400},
			{"someone else's", []client.Mount{{WorkspaceID: other.ID, Path: "/workspace"}}, 404},
			{"missing", []client.Mount{{WorkspaceID: "00000000-0000-4000-8000-000000000000", Path: "/workspace"}}, 404},
			{"not a uuid", []client.Mount{{WorkspaceID: "nope", Path: "/workspace"}}, 404},
			{"one good one bad", []client.Mount{{WorkspaceID: ok, Path: "/workspace"}, {WorkspaceID: other.ID, Path: "/workspace/o"}}, 404},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				st, _, code, msg := raw(t, env, mc.Key, "POST", "/v1/sandboxes", map[string]any{"template": "base", "mounts": c.mounts})
				want := map[int]string{400: "invalid_request", 404: "not_found"}[c.status]
				if st != c.status || code != want {
					t.Errorf("%d %s %q, want %d %s", st, code, msg, c.status, want)
				}
			})
		}
		if cs := containers(t, env); len(cs) != 0 {
			t.Errorf("refused creates left %d containers", len(cs))
		}
		var n int
		must(t, env.DB.Get(&n, `SELECT COUNT(*) FROM sandboxes`))
		var nm int
		must(t, env.DB.Get(&nm, `SELECT COUNT(*) FROM sandbox_mounts`))
		if n != 0 || nm != 0 {
			t.Errorf("refused creates left %d sandbox rows and %d mount rows", n, nm)
		}
		// The member may mount what they own and what they were granted.
		s := newSandbox(t, mc, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: ok, Path: "/workspace"}, {WorkspaceID: own.ID, Path: "/workspace/own"}}})
		if len(s.Mounts) != 2 {
			t.Errorf("mounts: %+v", s.Mounts)
		}
	})
}

func TestSandboxHardening(t *testing.T) {
	t.Parallel()
	forRuntimes(t, testSandboxHardening)
}

func testSandboxHardening(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{})

	if out := sh(t, a, s.ID, "grep NoNewPrivs /proc/self/status"); !regexp.MustCompile(`^NoNewPrivs:\s+1\n$`).MatchString(out) {
		t.Errorf("no-new-privileges: %q", out)
	}
	// Exactly the safe set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
	// SETUID NET_BIND_SERVICE, in the effective and bounding sets.
	const safe = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<10
	out := sh(t, a, s.ID, "grep -E '^Cap(Eff|Bnd):' /proc/self/status")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil || v != safe {
			t.Errorf("%s %s, want %x", f[0], f[1], safe)
		}
	}
	if r := run(t, a, s.ID, client.ExecRequest{Command: "ls -l /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; grep -E 'docker[.]sock|containerd[.]sock' /proc/mounts"}); r.Stdout != "" {
		t.Errorf("an engine socket is visible inside: %q", r.Stdout)
	}
	// Limits from the template (pids) and the request (memory), cgroup v1 or v2.
	limits := sh(t, a, s.ID, "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || true")
	if f := strings.Fields(limits); !slices.Equal(f, []string{"512", "67108864"}) {
		t.Errorf("pids and memory limits inside: %q", limits)
	}
	// Root inside cannot mount or make devices.
	if r := run(t, a, s.ID, client.ExecRequest{Command: "mount -t tmpfs x /mnt || mknod /tmp/d c 1 3"}); r.ExitCode == 0 {
		t.Errorf("root could mount or mknod: %+v", *r)
	}
}

func TestSandboxNetwork(t *testing.T) {
	t.Parallel()
	forRuntimes(t, testSandboxNetwork)
}

func testSandboxNetwork(t *testing.T, env *servertest.Env) {
	needEngine(t, env)
	a := env.Admin
	// Something to reach on the host, through the bridge's gateway.
	l, err := net.Listen("tcp", "0.0.0.0:0")
	must(t, err)
	t.Cleanup(func() { must(t, l.Close()) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// Whether a sandbox's connection gets the greeting is what the
			// test reads on its side; errors here add nothing.
			_, _ = c.Write([]byte("hello\n"))
			_ = c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port

	gateway := func(sb *client.Sandbox) string {
		t.Helper()
		gw := strings.TrimSpace(sh(t, a, sb.ID, "ip route | awk '/^default/ {print $3}'"))
		if net.ParseIP(gw) == nil {
			t.Fatalf("no default gateway on network %s: %q", sb.Network, gw)
		}
		return gw
	}
	// The user asked for the shared network: the host's services are
	// reachable. The positive control: without it the checks below prove
	// nothing.
	shared := newSandbox(t, a, client.SandboxRequest{Network: "shared"})
	if shared.Network != "shared" || shared.IP == "" {
		t.Errorf("network shared sandbox: network %q ip %q", shared.Network, shared.IP)
	}
	gw := gateway(shared)
	reach := fmt.Sprintf("nc -w 3 %s %d </dev/null", gw, port)
	if r := run(t, a, shared.ID, client.ExecRequest{Command: reach}); r.Stdout != "hello\n" {
		t.Errorf("shared sandbox could not reach %s:%d: %+v", gw, port, *r)
	}

	// The default network is isolated from the host.
	bridge := newSandbox(t, a, client.SandboxRequest{})
	if bridge.Network != "bridge" || bridge.IP == "" {
		t.Errorf("default sandbox: network %q ip %q", bridge.Network, bridge.IP)
	}
	for _, host := range []string{gateway(bridge), gw} {
		isolated := fmt.Sprintf("nc -w 3 %s %d </dev/null", host, port)
		if r := run(t, a, bridge.ID, client.ExecRequest{Command: isolated}); r.ExitCode == 0 || r.Stdout != "" {
			t.Errorf("bridge sandbox reached the host at %s:%d: %+v", host, port, *r)
		}
	}

	none := newSandbox(t, a, client.SandboxRequest{Network: "none"})
	if none.Network != "none" || none.IP != "" {
		t.Errorf("network none sandbox: network %q ip %q", none.Network, none.IP)
	}
	if out := sh(t, a, none.ID, "ls /sys/class/net"); out != "lo\n" {
		t.Errorf("interfaces with network none: %q", out)
	}
	if r := run(t, a, none.ID, client.ExecRequest{Command: reach}); r.ExitCode == 0 || r.Stdout != "" {
		t.Errorf("network none reached the gateway: %+v", *r)
	}
	if st, _, code, _ := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes", map[string]any{"template": "base", "network": "host"}); st != 400 {
		t.Errorf("network host: %d %s", st, code)
	}
}

// startWith runs a server whose sandbox loops use opts.
func startWith(t *testing.T, opts sandbox.Options) *servertest.Env {
	return startOn(t, server.RuntimeDocker, opts)
}

// startOn is startWith with sandboxes on engine (a server.Runtime*).
func startOn(t *testing.T, engine string, opts sandbox.Options) *servertest.Env {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Sandbox = opts
	servertest.UseRuntime(t, &cfg, engine)
	return servertest.StartConfig(t, cfg)
}

func TestSandboxIdlePause(t *testing.T) {
	t.Parallel()
	t.Run("loop", func(t *testing.T) {
		for _, r := range servertest.Runtimes {
			t.Run(r, func(t *testing.T) { testIdlePauseLoop(t, r) })
		}
	})

	t.Run("activity", func(t *testing.T) {
		servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) { // loops far too slow to interfere
			needEngine(t, env)
			ctx := context.Background()
			a := env.Admin
			w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "touched"})
			must(t, err)
			s := newSandbox(t, a, client.SandboxRequest{IdleTimeout: 60, Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}})
			age := func() {
				_, err := env.DB.Exec(env.DB.Rebind(`UPDATE sandboxes SET last_activity_at = ? WHERE id = ?`), time.Now().UTC().Add(-time.Hour), s.ID)
				must(t, err)
			}
			pauseIdle := func(want string) {
				t.Helper()
				must(t, env.Sandboxes.PauseIdle(ctx))
				if got := status(t, a, s.ID); got != want {
					t.Fatalf("after PauseIdle: %s, want %s", got, want)
				}
			}
			age()
			_, err = a.SandboxAction(ctx, s.ID, "keepalive")
			must(t, err)
			pauseIdle("running")
			age()
			sh(t, a, s.ID, "true")
			pauseIdle("running")
			age()
			env.Sandboxes.TouchWorkspace(ctx, w.ID)
			pauseIdle("running")
			// Reading the mounted workspace through the file API is activity.
			age()
			_, _, err = a.ListFiles(ctx, w.ID, "/", client.ListFilesOptions{})
			must(t, err)
			pauseIdle("running")
			age()
			pauseIdle("paused")
			sh(t, a, s.ID, "true")
			if got := status(t, a, s.ID); got != "running" {
				t.Errorf("exec did not resume: %s", got)
			}
		})
	})
}

// testIdlePauseLoop is the idle loop pausing a sandbox on engine.
func testIdlePauseLoop(t *testing.T, engine string) {
	env := startOn(t, engine, sandbox.Options{IdleInterval: 200 * time.Millisecond, ReconcileInterval: time.Hour})
	needEngine(t, env)
	a := env.Admin
	s := newSandbox(t, a, client.SandboxRequest{IdleTimeout: 1})
	testctx.Eventually(t, "idle pause", func() bool { return status(t, a, s.ID) == "paused" })
	if got := engineState(t, env, s.ID); got != runtime.StatePaused {
		t.Errorf("engine state of an idle-paused sandbox: %s", got)
	}
	// Exec resumes it, and an exec longer than idleTimeout is not frozen
	// half way (it would hang, then time out).
	r := run(t, a, s.ID, client.ExecRequest{Command: "sleep 2.5; echo done", Timeout: 20000})
	if r.TimedOut || r.Stdout != "done\n" {
		t.Errorf("long exec in an idle-pausing sandbox: %+v", *r)
	}
	never := newSandbox(t, a, client.SandboxRequest{})
	testctx.Eventually(t, "idle pause", func() bool { return status(t, a, s.ID) == "paused" })
	if got := status(t, a, never.ID); got != "running" {
		t.Errorf("a sandbox without idleTimeout is %s", got)
	}
}

func TestSandboxEngineDown(t *testing.T) {
	t.Parallel()
	forRuntimes(t, testSandboxEngineDown)
}

func testSandboxEngineDown(t *testing.T, up *servertest.Env) {
	needEngine(t, up)
	s := newSandbox(t, up.Admin, client.SandboxRequest{})
	// The next server on the same database finds the engine unreachable
	// (the sandbox's container keeps running).
	up.Stop(t)
	cfg := up.Config
	cfg.Addr = "127.0.0.1:0"
	cfg.DockerHost = "unix:///nonexistent.sock"
	cfg.ContainerdAddress = "/nonexistent.sock"
	down := servertest.StartConfig(t, cfg)
	key := down.AdminKey

	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/sandboxes"},
		{"POST", "/v1/sandboxes/" + s.ID + "/exec"},
		{"POST", "/v1/sandboxes/" + s.ID + "/pause"},
		{"POST", "/v1/sandboxes/" + s.ID + "/stop"},
		{"DELETE", "/v1/sandboxes/" + s.ID},
		{"POST", "/v1/templates/base/build"},
	} {
		body := map[string]any{"template": "base", "command": "true"}
		if !strings.HasSuffix(c.path, "/exec") && c.path != "/v1/sandboxes" {
			body = nil
		} else if c.path == "/v1/sandboxes" {
			body = map[string]any{"template": "base"}
		} else {
			body = map[string]any{"command": "true"}
		}
		if st, _, code, _ := raw(t, down, key, c.method, c.path, body); st != 503 || code != "unavailable" {
			t.Errorf("%s %s with the engine down: %d %s, want 503 unavailable", c.method, c.path, st, code)
		}
	}
	// Nothing happened: the sandbox is still running, in the database and
	// on the engine.
	if got := status(t, down.Admin, s.ID); got != "running" {
		t.Errorf("after refused operations the sandbox is %s", got)
	}
	var live runtime.Runtime = dockertest.New(t)
	if cfg.Runtime == server.RuntimeContainerd {
		live = containerdtest.New(t)
	}
	cs, err := live.List(context.Background(), map[string]string{sandbox.LabelSandbox: s.ID})
	must(t, err)
	if len(cs) != 1 || cs[0].State != runtime.StateRunning {
		t.Errorf("after refused operations the engine has %+v", cs)
	}
	var n int
	must(t, down.DB.Get(&n, `SELECT COUNT(*) FROM sandboxes`))
	if n != 1 {
		t.Errorf("%d sandbox rows, want 1", n)
	}

	// Reads and workspaces work; readiness names the runtime.
	ctx := context.Background()
	if _, err := down.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "still works"}); err != nil {
		t.Errorf("create workspace with the engine down: %v", err)
	}
	if _, _, err := down.Admin.Sandboxes(ctx, client.SandboxFilter{}); err != nil {
		t.Errorf("list sandboxes with the engine down: %v", err)
	}
	if ts, err := down.Admin.Templates(ctx); err != nil || len(ts) == 0 || ts[0].Ready {
		t.Errorf("templates with the engine down: %v %+v", err, ts)
	}
	resp, err := down.HTTP().Get(down.URL + "/readyz")
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	closeBody(resp)
	must(t, err)
	var ready struct {
		Data struct {
			Checks map[string]map[string]string `json:"checks"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ready); err != nil {
		t.Fatalf("readyz: %v: %s", err, b)
	}
	if resp.StatusCode != 503 || ready.Data.Checks["runtime"]["status"] == "up" || ready.Data.Checks["database"]["status"] != "up" {
		t.Errorf("readyz with the engine down: %d %s", resp.StatusCode, b)
	}
}

func TestSandboxReconcile(t *testing.T) {
	t.Parallel()
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		a := env.Admin
		rt := env.Sandboxes.Runtime()
		reconcile := func() {
			t.Helper()
			if err := env.Sandboxes.Reconcile(ctx); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		containerOf := func(id string) runtime.Container {
			t.Helper()
			cs, err := rt.List(ctx, map[string]string{sandbox.LabelSandbox: id})
			must(t, err)
			if len(cs) != 1 {
				t.Fatalf("sandbox %s has %d containers", id, len(cs))
			}
			return cs[0]
		}

		// Removed behind berth's back → error with a reason.
		gone := newSandbox(t, a, client.SandboxRequest{})
		must(t, rt.Remove(ctx, containerOf(gone.ID).ID))
		reconcile()
		g, err := a.Sandbox(ctx, gone.ID)
		must(t, err)
		if g.Status != "error" || !strings.Contains(g.StatusReason, "removed") {
			t.Errorf("sandbox whose container was removed: %s %q", g.Status, g.StatusReason)
		}
		if st, _, code, _ := raw(t, env, env.AdminKey, "POST", "/v1/sandboxes/"+gone.ID+"/exec", map[string]any{"command": "true"}); st != 409 {
			t.Errorf("exec in an error sandbox: %d %s", st, code)
		}
		must(t, a.DestroySandbox(ctx, gone.ID))

		// Paused and stopped behind berth's back → the status follows.
		follow := newSandbox(t, a, client.SandboxRequest{})
		must(t, rt.Pause(ctx, containerOf(follow.ID).ID))
		reconcile()
		if got := status(t, a, follow.ID); got != "paused" {
			t.Errorf("after an engine-side pause: %s", got)
		}
		must(t, rt.Stop(ctx, containerOf(follow.ID).ID, time.Second))
		reconcile()
		if got := status(t, a, follow.ID); got != "stopped" {
			t.Errorf("after an engine-side stop: %s", got)
		}
		if sb, err := a.Sandbox(ctx, follow.ID); err != nil || sb.IP != "" {
			t.Errorf("a sandbox stopped behind berth's back keeps ip %q (%v)", sb.IP, err)
		}

		// Containers of this instance without a live sandbox are removed;
		// another instance's are not touched.
		img := runtimetest.BaseImage(t, rt)
		n := 0
		mk := func(labels map[string]string) string {
			n++
			id, err := rt.Create(ctx, runtime.Spec{Name: fmt.Sprintf("berth-test-%s-%d", strings.ReplaceAll(env.Sandboxes.Instance(), "_", "-"), n), Image: img, Labels: labels})
			must(t, err)
			runtimetest.RemoveOnCleanup(t, rt, id)
			return id
		}
		inst := env.Sandboxes.Instance()
		ghost := mk(map[string]string{sandbox.LabelInstance: inst, sandbox.LabelSandbox: "sbx_ghost1"})
		ghost2 := mk(map[string]string{sandbox.LabelInstance: inst, sandbox.LabelSandbox: "sbx_ghost2"})
		unlabelled := mk(map[string]string{sandbox.LabelInstance: inst})
		unlabelled2 := mk(map[string]string{sandbox.LabelInstance: inst})
		dup := mk(map[string]string{sandbox.LabelInstance: inst, sandbox.LabelSandbox: gone.ID}) // of a destroyed sandbox
		foreign := mk(map[string]string{sandbox.LabelInstance: "inst_other" + strings.ReplaceAll(inst, "_", ""), sandbox.LabelSandbox: "sbx_ghost3"})
		reconcile()
		for name, id := range map[string]string{"ghost": ghost, "ghost2": ghost2, "unlabelled": unlabelled, "unlabelled2": unlabelled2, "destroyed's": dup} {
			if _, err := rt.Inspect(ctx, id); !berth.IsKind(err, berth.NotFound) {
				t.Errorf("%s container survived reconcile: %v", name, err)
			}
		}
		if _, err := rt.Inspect(ctx, foreign); err != nil {
			t.Errorf("another instance's container: %v", err)
		}

		// A create interrupted by a crash (the row creating, nothing in
		// flight here): with no container, with one not yet recorded, and
		// with one recorded and running → error, container removed.
		for _, window := range []string{"before the container", "container not recorded", "container recorded"} {
			s := newSandbox(t, a, client.SandboxRequest{})
			q := `UPDATE sandboxes SET status = 'creating' WHERE id = ?`
			switch window {
			case "before the container":
				must(t, rt.Remove(ctx, containerOf(s.ID).ID))
				q = `UPDATE sandboxes SET status = 'creating', container_id = '' WHERE id = ?`
			case "container not recorded":
				q = `UPDATE sandboxes SET status = 'creating', container_id = '' WHERE id = ?`
			}
			_, err := env.DB.Exec(env.DB.Rebind(q), s.ID)
			must(t, err)
			reconcile()
			got, err := a.Sandbox(ctx, s.ID)
			must(t, err)
			if got.Status != "error" || got.StatusReason == "" {
				t.Errorf("%s: sandbox %s %q", window, got.Status, got.StatusReason)
			}
			if st := engineState(t, env, s.ID); st != "" {
				t.Errorf("%s: a container is left (%s)", window, st)
			}
		}

		// An error sandbox whose container (re)appeared (a create the engine
		// finished after the server died) loses it.
		late := newSandbox(t, a, client.SandboxRequest{})
		_, err = env.DB.Exec(env.DB.Rebind(`UPDATE sandboxes SET status = 'error', status_reason = 'interrupted' WHERE id = ?`), late.ID)
		must(t, err)
		// Reconcile skips a sandbox whose lock is held, and the server's own
		// reconcile loop may hold it right now (more often on a busy
		// machine): reconcile again until one pass has seen it.
		testctx.Eventually(t, "an error sandbox to lose its container", func() bool {
			reconcile()
			return engineState(t, env, late.ID) == ""
		})
		if got := status(t, a, late.ID); got != "error" {
			t.Errorf("status %s", got)
		}
	})
}

// Revoking a member's grant on a workspace cuts off the sandboxes of theirs
// that mount it: nothing more runs in them.
func TestSandboxRevokedGrantStopsExec(t *testing.T) {
	servertest.EnginesAndRuntimes(t, func(t *testing.T, env *servertest.Env) {
		needEngine(t, env)
		ctx := context.Background()
		m, mc := env.Member(t, "grantee", "member")
		w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "shared-then-not"})
		must(t, err)
		_, err = env.Admin.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
		must(t, err)
		s := newSandbox(t, mc, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}})
		if out := sh(t, mc, s.ID, "echo ok"); out != "ok\n" {
			t.Fatalf("exec with the grant: %q", out)
		}
		_, err = env.Admin.SetWorkspaceAccess(ctx, w.ID, []string{})
		must(t, err)
		if _, err := mc.Exec(ctx, s.ID, client.ExecRequest{Command: "cat /workspace/x"}); client.ErrorCode(err) != "forbidden" {
			t.Errorf("exec after the grant was revoked: %v, want forbidden", err)
		}
		// Giving access back lets it start again; the owner can always destroy.
		_, err = env.Admin.SetWorkspaceAccess(ctx, w.ID, []string{m.ID})
		must(t, err)
		_, err = mc.SandboxAction(ctx, s.ID, "start")
		must(t, err)
		if out := sh(t, mc, s.ID, "echo again"); out != "again\n" {
			t.Errorf("exec with the grant restored: %q", out)
		}
	})
}
