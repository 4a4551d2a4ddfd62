package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

// needEngine skips (fails in CI) without Docker and makes the base
// template's image present.
func needEngine(t *testing.T) {
	t.Helper()
	runtimetest.BaseImage(t, dockertest.New(t))
}

// syncBuffer is a buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a CLI command running in the background.
type running struct {
	Stdout, Stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// Start runs `berth args...` in the background; Wait (or Stop, which
// interrupts it first, as Ctrl-C would) returns its exit code.
func (c *cli) Start(args ...string) *running {
	c.t.Helper()
	ctx, cancel := context.WithCancel(testctx.Context(c.t))
	r := &running{Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	env := map[string]string{}
	for k, v := range c.env {
		env[k] = v
	}
	a := &app{stdin: strings.NewReader(""), stdout: r.Stdout, stderr: r.Stderr,
		getenv: func(k string) string { return env[k] }}
	go func() { r.done <- a.run(ctx, args) }()
	c.t.Cleanup(func() { r.Stop(c.t) })
	return r
}

// Wait waits for the command's end and returns its exit code.
func (r *running) Wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // for a later Wait or Stop
		return code
	case <-testctx.Context(t).Done():
		t.Fatal("the command did not end before the test's deadline")
		return -1
	}
}

// Stop interrupts the command and returns its exit code. It also runs at
// cleanup, when the test's context has ended: it waits on its own deadline.
func (r *running) Stop(t testing.TB) int {
	r.cancel()
	ctx, cancel := testctx.Cleanup()
	defer cancel()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-ctx.Done():
		t.Error("the command did not end once interrupted")
		return -1
	}
}

func TestSandboxCommands(t *testing.T) {
	needEngine(t)
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	ctx := testctx.Context(t)

	var ws client.Workspace
	c.JSON(&ws, "workspace", "create", "Docs Project", "--slug", "docs-project")
	if _, err := srv.Admin.WriteFile(ctx, ws.ID, "/hello.txt", "hello\n"); err != nil {
		t.Fatal(err)
	}

	// create: mounts by slug (and by id), names, tags, env, idle timeout.
	out := c.OK("sandbox", "create", "--name", "repo-env", "--template", "base", "--mount", "docs-project:/workspace",
		"--network", "none", "--tag", "cli", "--env", "FOO=bar", "--idle-timeout", "10m")
	if !strings.HasPrefix(out, "sandbox repo-env created (sbx_") || !strings.HasSuffix(out, ", running)\n") {
		t.Errorf("create said %q", out)
	}
	var ro client.Sandbox
	c.JSON(&ro, "sandbox", "create", "--name", "reader", "--mount", ws.ID+":/workspace:ro", "--network", "none", "--idle-timeout", "90")
	if ro.Name != "reader" || ro.IdleTimeout != 90 || len(ro.Mounts) != 1 || ro.Mounts[0] != (client.Mount{WorkspaceID: ws.ID, Path: "/workspace", ReadOnly: true}) {
		t.Errorf("create -o json: %+v", ro)
	}
	if r := c.Fail("sandbox", "create", "--mount", "no-such:/workspace"); !strings.Contains(r.Stderr, `workspace "no-such" not found (request `) {
		t.Errorf("unknown workspace: %q", r.Stderr)
	}
	if r := c.Fail("sandbox", "create", "--mount", "docs-project"); !strings.Contains(r.Stderr, "want <workspace>:<path>[:ro]") {
		t.Errorf("bad mount: %q", r.Stderr)
	}

	// list: table, wide, JSON, -q.
	rows := c.Table("sandbox", "list")
	if len(rows) != 2 {
		t.Fatalf("list: %v", rows)
	}
	repo := row(t, rows, "NAME", "repo-env")
	if repo["STATUS"] != "running" || repo["TEMPLATE"] != "base" || repo["MOUNTS"] != "1" || !strings.HasPrefix(repo["ID"], "sbx_") {
		t.Errorf("repo-env row: %v", repo)
	}
	wide := row(t, c.Table("sandbox", "list", "-o", "wide"), "NAME", "reader")
	if wide["WORKSPACES"] != ws.ID+":/workspace:ro" || wide["NETWORK"] != "none" {
		t.Errorf("wide row: %v", wide)
	}
	var listed []client.Sandbox
	c.JSON(&listed, "sandbox", "list", "--tag", "cli")
	if len(listed) != 1 || listed[0].Name != "repo-env" || listed[0].IdleTimeout != 600 || listed[0].Env[0] != "FOO" {
		t.Errorf("list --tag -o json: %+v", listed)
	}
	if ids := strings.Fields(c.OK("sandbox", "list", "-q")); len(ids) != 2 {
		t.Errorf("list -q: %v", ids)
	}

	// get by name and by id.
	var got client.Sandbox
	c.JSON(&got, "sandbox", "get", "repo-env")
	if got.ID != repo["ID"] {
		t.Errorf("get by name: %+v", got)
	}
	if r := c.Table("sandbox", "get", repo["ID"]); len(r) != 1 || r[0]["NAME"] != "repo-env" {
		t.Errorf("get by id: %v", r)
	}
	if r := c.Fail("sandbox", "get", "no-such"); r.Code != 1 || !strings.Contains(r.Stderr, "(request req_") {
		t.Errorf("get unknown: %d %q", r.Code, r.Stderr)
	}

	// exec: output, stdin, exit code, env, cwd, timeout.
	if out := c.OK("sandbox", "exec", "repo-env", "--", "cat", "/workspace/hello.txt"); out != "hello\n" {
		t.Errorf("exec cat: %q", out)
	}
	c.Stdin = strings.NewReader("hi\nthere\n")
	if out := c.OK("sandbox", "exec", "repo-env", "--", "cat"); out != "hi\nthere\n" {
		t.Errorf("stdin through exec: %q", out)
	}
	// shell: a terminal session on piped input, with its exit code.
	c.Stdin = strings.NewReader("echo shell-$((2+3)); exit 6\n")
	if r := c.Run("sandbox", "shell", "repo-env"); r.Code != 6 || !strings.Contains(r.Stdout, "shell-5\r\n") {
		t.Errorf("shell: exit %d, output %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	c.Stdin = strings.NewReader("")
	if r := c.Run("sandbox", "shell", "repo-env", "--command", "pwd; exit 2", "--cwd", "/tmp"); r.Code != 2 || r.Stdout != "/tmp\r\n" {
		t.Errorf("shell --command: exit %d, output %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	c.Stdin = strings.NewReader("ignored")
	if out := c.OK("sandbox", "exec", "-n", "repo-env", "--", "cat"); out != "" {
		t.Errorf("exec -n read stdin: %q", out)
	}
	r := c.Run("sandbox", "exec", "repo-env", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	if r.Code != 7 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exit code through: %+v", r)
	}
	out = c.OK("sandbox", "exec", "repo-env", "--env", "X=1", "--cwd", "/workspace", "--", "sh", "-c", `echo "$X $FOO $(pwd)"`)
	if out != "1 bar /workspace\n" {
		t.Errorf("exec env/cwd: %q", out)
	}
	if r := c.Fail("sandbox", "exec", "repo-env", "--timeout", "soon", "--", "true"); !strings.Contains(r.Stderr, "want a duration such as 30s") {
		t.Errorf("bad --timeout: %q", r.Stderr)
	}
	r = c.Run("sandbox", "exec", "repo-env", "--timeout", "1000", "--", "sleep", "600") // a bare number: ms
	if r.Code != exitTimedOut || !strings.Contains(r.Stderr, "timed out") {
		t.Errorf("timeout in ms: %+v", r)
	}
	r = c.Run("sandbox", "exec", "repo-env", "--timeout", "1s", "--", "sleep", "600")
	if r.Code != exitTimedOut || !strings.Contains(r.Stderr, "timed out") {
		t.Errorf("timeout: %+v", r)
	}
	if r := c.Fail("sandbox", "exec", "no-such", "--", "true"); r.Code != 1 || !strings.Contains(r.Stderr, "not found (request req_") {
		t.Errorf("exec in unknown sandbox: %+v", r)
	}

	// Interrupted, exec exits 130.
	ex := c.Start("sandbox", "exec", "repo-env", "--", "sh", "-c", "echo started; sleep 600")
	testctx.Eventually(t, "the command to start", func() bool { return ex.Stdout.String() == "started\n" })
	if code := ex.Stop(t); code != exitInterrupted {
		t.Errorf("interrupted exec: exit %d, %q", code, ex.Stderr.String())
	}

	// :ro is honoured: reading works, writing fails inside; the writable
	// mount writes through to the workspace.
	if out := c.OK("sandbox", "exec", "reader", "--", "cat", "/workspace/hello.txt"); out != "hello\n" {
		t.Errorf("read through :ro: %q", out)
	}
	r = c.Run("sandbox", "exec", "reader", "--", "sh", "-c", "echo x > /workspace/new.txt")
	if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "read-only") {
		t.Errorf("write through :ro: %+v", r)
	}
	c.OK("sandbox", "exec", "repo-env", "--", "sh", "-c", "echo w > /workspace/w.txt")
	if _, err := srv.Admin.FileInfo(ctx, ws.ID, "/w.txt"); err != nil {
		t.Errorf("written through the mount: %v", err)
	}
	if _, err := srv.Admin.FileInfo(ctx, ws.ID, "/new.txt"); client.ErrorCode(err) != "not_found" {
		t.Errorf("written through :ro: %v", err)
	}

	// Lifecycle by name; each says what it did.
	for _, step := range []struct{ verb, said, status string }{
		{"pause", "paused", "paused"},
		{"resume", "resumed", "running"},
		{"keepalive", "kept alive", "running"},
		{"stop", "stopped", "stopped"},
		{"start", "started", "running"},
	} {
		out := c.OK("sandbox", step.verb, "repo-env")
		if want := "sandbox repo-env " + step.said + " (" + repo["ID"] + ", " + step.status + ")\n"; out != want {
			t.Errorf("%s said %q, want %q", step.verb, out, want)
		}
		var s client.Sandbox
		c.JSON(&s, "sandbox", "get", "repo-env")
		if s.Status != step.status {
			t.Errorf("after %s: %s", step.verb, s.Status)
		}
	}
	var paused client.Sandbox
	c.JSON(&paused, "sandbox", "pause", "reader")
	if paused.Status != "paused" || paused.ID != ro.ID {
		t.Errorf("pause -o json: %+v", paused)
	}
	if out := c.OK("sandbox", "exec", "repo-env", "--", "cat", "/workspace/w.txt"); out != "w\n" {
		t.Errorf("exec after start: %q", out)
	}

	// Attach and detach on a running sandbox.
	c.OK("sandbox", "create", "--name", "mounter", "--template", "base")
	if out := c.OK("sandbox", "mount", "mounter", "docs-project:/workspace/docs:ro"); !strings.Contains(out, "mounted at /workspace/docs") {
		t.Errorf("sandbox mount said %q", out)
	}
	if out := c.OK("sandbox", "exec", "mounter", "--", "cat", "/workspace/docs/w.txt"); out != "w\n" {
		t.Errorf("exec in the attached mount: %q", out)
	}
	if r := c.Fail("sandbox", "mount", "repo-env", "docs-project:/workspace/x"); !strings.Contains(r.Stderr, "nest") {
		t.Errorf("a nested attach: %q", r.Stderr)
	}
	if out := c.OK("sandbox", "unmount", "mounter", "/workspace/docs"); !strings.Contains(out, "/workspace/docs unmounted") {
		t.Errorf("sandbox unmount said %q", out)
	}
	if r := c.Fail("sandbox", "unmount", "repo-env", "/workspace"); !strings.Contains(r.Stderr, "only a mount attached later") {
		t.Errorf("unmount of a create mount: %q", r.Stderr)
	}

	// Completion of sandbox and workspace names.
	if out := c.OK("__complete", "sandbox", "exec", ""); !strings.Contains(out, "repo-env\t") || !strings.Contains(out, "reader\t") {
		t.Errorf("sandbox completion: %q", out)
	}
	if out := c.OK("__complete", "sandbox", "create", "--mount", ""); !strings.Contains(out, "docs-project:/workspace\t") {
		t.Errorf("mount completion: %q", out)
	}

	// destroy by name, by id.
	if out := c.OK("sandbox", "destroy", "reader"); out != "sandbox reader ("+ro.ID+") destroyed\n" {
		t.Errorf("destroy said %q", out)
	}
	var destroyed map[string]any
	c.JSON(&destroyed, "sandbox", "destroy", repo["ID"])
	if destroyed["id"] != repo["ID"] || destroyed["deleted"] != true {
		t.Errorf("destroy -o json: %v", destroyed)
	}
	var after client.Sandbox
	c.JSON(&after, "sandbox", "get", ro.ID)
	if after.Status != "destroyed" {
		t.Errorf("after destroy: %s", after.Status)
	}
}

func TestTemplateCommands(t *testing.T) {
	needEngine(t)
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)

	base := row(t, c.Table("template", "list"), "NAME", "base")
	if base["READY"] != "true" || base["DESCRIPTION"] == "" {
		t.Errorf("base row: %v", base)
	}
	var ts []client.Template
	c.JSON(&ts, "template", "list")
	if len(ts) < 2 {
		t.Errorf("list -o json: %+v", ts)
	}
	var tmpl client.Template
	c.JSON(&tmpl, "template", "get", "base")
	if tmpl.Name != "base" || tmpl.Image == "" {
		t.Errorf("get: %+v", tmpl)
	}

	// Off a terminal, a build is silent: no progress on stderr.
	r := c.Run("template", "build", "base")
	if r.Code != 0 || r.Stdout != "template base built ("+tmpl.Image+")\n" || r.Stderr != "" {
		t.Errorf("build off a terminal: %+v", r)
	}
	var built client.Template
	c.JSON(&built, "template", "build", "base")
	if built.Name != "base" || !built.Ready {
		t.Errorf("build -o json: %+v", built)
	}
	// On a terminal it shows its progress on stderr.
	c.TTY = true
	r = c.Run("template", "build", "base")
	c.TTY = false
	if r.Code != 0 || !strings.Contains(r.Stderr, "build base") {
		t.Errorf("build on a terminal: %+v", r)
	}
	// --log prints the build's steps, from the rootfs to the engine's load.
	r = c.Run("template", "build", "base", "--log")
	if r.Code != 0 || !strings.Contains(r.Stderr, "assembling the image") || !strings.Contains(r.Stderr, "into the engine") {
		t.Errorf("build --log: %+v", r)
	}
	if r := c.Fail("template", "build", "no-such"); !strings.Contains(r.Stderr, "(request req_") {
		t.Errorf("build unknown: %q", r.Stderr)
	}
	// Builds are for admins: a member's error says so with its request id.
	_, mc := srv.Member(t, "mem", "member")
	m := newCLI(t, srv)
	m.Setenv("BERTH_API_KEY", mc.Key)
	if r := m.Fail("template", "build", "base"); !strings.Contains(r.Stderr, "(request req_") {
		t.Errorf("member build: %q", r.Stderr)
	}
}
