package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/server/servertest"
)

func TestLoginAndContexts(t *testing.T) {
	srv := servertest.Start(t, "")
	other := servertest.Start(t, "")
	c := newCLI(t, nil) // no BERTH_URL / BERTH_API_KEY: everything from the config

	// Before any login there is nothing to talk to with.
	r := c.Fail("workspace", "list")
	if !strings.Contains(r.Stderr, "berth login") {
		t.Errorf("no key, no config: %q, want a hint to run berth login", r.Stderr)
	}
	if out := c.OK("context", "list"); out != "" {
		t.Errorf("context list with no config printed %q, want nothing", out)
	}

	// A wrong key is refused before anything is saved.
	c.Stdin = strings.NewReader("not-a-key\n")
	r = c.Fail("login", srv.URL)
	if !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("login with a bad key: %q, want the server's error with its request id", r.Stderr)
	}
	cfgPath := filepath.Join(c.env["XDG_CONFIG_HOME"], "berth", "config.yaml")
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Fatalf("config written after a failed login: %v", err)
	}

	// The key piped on stdin.
	c.Stdin = strings.NewReader(srv.AdminKey + "\n")
	out := c.OK("login", srv.URL)
	if !strings.Contains(out, srv.URL) || !strings.Contains(out, `context "default"`) {
		t.Errorf("login said %q", out)
	}
	st, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(filepath.Dir(cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v, want 0700", dst.Mode().Perm())
	}
	var cfg config
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.CurrentContext != "default" || cfg.Contexts["default"].Server != srv.URL || cfg.Contexts["default"].Key != srv.AdminKey {
		t.Errorf("config after login: %+v", cfg)
	}
	c.OK("workspace", "create", "on-first")

	// A second context, its key from a terminal prompt, becomes current.
	c.TTY, c.Secret = true, other.AdminKey
	r = c.Run("login", "--context", "prod", other.URL+"/")
	c.TTY = false
	if r.Code != 0 || !strings.Contains(r.Stderr, "API key: ") {
		t.Fatalf("login with a prompt: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stderr, other.AdminKey) || strings.Contains(r.Stdout, other.AdminKey) {
		t.Error("the key was echoed")
	}
	c.OK("workspace", "create", "on-second")

	rows := c.Table("context", "list")
	if len(rows) != 2 || row(t, rows, "NAME", "prod")["CURRENT"] != "*" || row(t, rows, "NAME", "default")["CURRENT"] != "" ||
		row(t, rows, "NAME", "prod")["SERVER"] != other.URL {
		t.Errorf("context list: %v", rows)
	}
	var listed []struct {
		Current bool   `json:"current"`
		Name    string `json:"name"`
		Server  string `json:"server"`
	}
	c.JSON(&listed, "context", "list")
	if len(listed) != 2 || !listed[1].Current || listed[1].Name != "prod" {
		t.Errorf("context list -o json: %+v", listed)
	}
	if raw := c.OK("context", "list", "-o", "json"); strings.Contains(raw, other.AdminKey) {
		t.Error("context list -o json shows the key")
	}

	slugs := func(args ...string) []string {
		var ws []struct{ Slug string }
		c.JSON(&ws, append([]string{"workspace", "list"}, args...)...)
		var s []string
		for _, w := range ws {
			s = append(s, w.Slug)
		}
		return s
	}
	if got := slugs(); len(got) != 1 || got[0] != "on-second" {
		t.Errorf("current context prod: workspaces %v", got)
	}
	if got := slugs("--context", "default"); len(got) != 1 || got[0] != "on-first" {
		t.Errorf("--context default: workspaces %v", got)
	}
	c.Setenv("BERTH_CONTEXT", "default")
	if got := slugs(); len(got) != 1 || got[0] != "on-first" {
		t.Errorf("BERTH_CONTEXT=default: workspaces %v", got)
	}
	if got := slugs("--context", "prod"); len(got) != 1 || got[0] != "on-second" {
		t.Errorf("--context beats BERTH_CONTEXT: workspaces %v", got)
	}
	c.Setenv("BERTH_CONTEXT", "")
	// Flags and env override the context's server and key one by one.
	if got := slugs("--server", srv.URL, "--key", srv.AdminKey); len(got) != 1 || got[0] != "on-first" {
		t.Errorf("--server/--key over the context: workspaces %v", got)
	}
	c.Setenv("BERTH_URL", srv.URL)
	c.Setenv("BERTH_API_KEY", srv.AdminKey)
	if got := slugs(); len(got) != 1 || got[0] != "on-first" {
		t.Errorf("BERTH_URL/BERTH_API_KEY over the context: workspaces %v", got)
	}
	c.Setenv("BERTH_API_KEY", "wrong")
	if r := c.Fail("workspace", "list"); !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("BERTH_API_KEY=wrong: %q, want the server's refusal", r.Stderr)
	}
	c.Setenv("BERTH_URL", "")
	c.Setenv("BERTH_API_KEY", "")

	if r := c.Fail("workspace", "list", "--context", "nope"); !strings.Contains(r.Stderr, `no context "nope"`) {
		t.Errorf("unknown context: %q", r.Stderr)
	}
	// --key on the command line; a dead server named by login gets the hint.
	c.OK("login", "--context", "ci", "--key", srv.AdminKey, srv.URL)
	if got := strings.TrimSpace(c.OK("context", "current")); got != "ci" {
		t.Errorf("after login --context ci: current %q", got)
	}
	c.OK("context", "delete", "ci")
	if r := c.Fail("context", "current"); !strings.Contains(r.Stderr, "no current context") {
		t.Errorf("current after deleting it: %q", r.Stderr)
	}
	if r := c.Fail("login", "--context", "x", "--key", "k", "http://127.0.0.1:1"); !strings.Contains(r.Stderr, "cannot reach the server at http://127.0.0.1:1") {
		t.Errorf("login to nothing: %q", r.Stderr)
	}
	c.OK("context", "use", "default")
	if got := strings.TrimSpace(c.OK("context", "current")); got != "default" {
		t.Errorf("context current: %q", got)
	}
	if got := slugs(); len(got) != 1 || got[0] != "on-first" {
		t.Errorf("after context use default: workspaces %v", got)
	}
	c.Fail("context", "use", "nope")
	c.OK("context", "delete", "prod")
	if rows := c.Table("context", "list"); len(rows) != 1 || rows[0]["NAME"] != "default" {
		t.Errorf("after delete: %v", rows)
	}
	if st, err := os.Stat(cfgPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("config after rewrites: %v %v", st, err)
	}
	// Completion of context names.
	if out := c.OK("__complete", "context", "use", ""); !strings.Contains(out, "default") {
		t.Errorf("context completion: %q", out)
	}
}

func TestConnectionRefusedHint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, nil)
	c.Setenv("BERTH_URL", u)
	c.Setenv("BERTH_API_KEY", "k")
	r := c.Fail("workspace", "list")
	want := "berth: cannot reach the server at " + u + ": is it running? start it with `berth serve` (or `make run`)\n"
	if r.Stderr != want || r.Code != 1 {
		t.Errorf("refused: exit %d, stderr %q, want %q", r.Code, r.Stderr, want)
	}
	// version still answers for the client.
	out := c.OK("version")
	if !strings.Contains(out, "client: ") || !strings.Contains(out, "cannot reach the server") {
		t.Errorf("version with no server: %q", out)
	}
}

func TestVersion(t *testing.T) {
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)
	var v struct{ Client, Server, ServerURL, ServerError string }
	c.JSON(&v, "version")
	if v.Client == "" || v.Server == "" || v.Server == "unknown" || v.ServerURL != srv.URL || v.ServerError != "" {
		t.Errorf("version: %+v", v)
	}
	if out := c.OK("version"); !strings.Contains(out, "server: "+v.Server+" at "+srv.URL) {
		t.Errorf("version table: %q", out)
	}
}

func TestErrorsAndOutput(t *testing.T) {
	srv := servertest.Start(t, "")
	c := newCLI(t, srv)

	// An empty list: nothing in a table, [] in JSON, never null.
	if out := c.OK("workspace", "list"); out != "" {
		t.Errorf("empty table: %q", out)
	}
	for _, f := range []string{"json", "yaml"} {
		out := c.OK("sandbox", "list", "-o", f)
		if strings.Contains(out, "null") || strings.TrimSpace(out) != "[]" {
			t.Errorf("empty sandbox list -o %s: %q", f, out)
		}
	}
	if out := c.OK("workspace", "list", "-q"); out != "" {
		t.Errorf("empty -q: %q", out)
	}

	// A server error: its message and request id, exit 1.
	r := c.Fail("workspace", "get", "no-such")
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, `berth: workspace "no-such" not found (request `) {
		t.Errorf("not found: exit %d %q", r.Code, r.Stderr)
	}
	r = c.Fail("workspace", "get", "00000000-0000-4000-8000-000000000000")
	if !strings.Contains(r.Stderr, "not found (request ") {
		t.Errorf("not found by id: %q", r.Stderr)
	}
	r = c.Fail("workspace", "create", "x", "--slug", "Bad Slug")
	if !strings.Contains(r.Stderr, "slug must be") || !strings.Contains(r.Stderr, "(request ") {
		t.Errorf("bad slug: %q", r.Stderr)
	}
	// Usage errors exit 1 too.
	if r := c.Fail("workspace", "get"); r.Code != 1 {
		t.Errorf("missing argument: exit %d", r.Code)
	}
	if r := c.Fail("workspace", "list", "-o", "xml"); !strings.Contains(r.Stderr, "--output") {
		t.Errorf("bad -o: %q", r.Stderr)
	}

	// YAML uses the API's field names.
	c.OK("workspace", "create", "Y", "--slug", "y")
	var ys []map[string]any
	if err := yaml.Unmarshal([]byte(c.OK("workspace", "list", "-o", "yaml")), &ys); err != nil || len(ys) != 1 || ys[0]["slug"] != "y" {
		t.Errorf("yaml: %v %v", ys, err)
	}
	var js []map[string]any
	if err := json.Unmarshal([]byte(c.OK("workspace", "list", "-o", "json")), &js); err != nil || js[0]["slug"] != "y" {
		t.Errorf("json: %v %v", js, err)
	}

	// Shell completion scripts and resource names.
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := c.OK("completion", sh); !strings.Contains(out, "berth") {
			t.Errorf("completion %s: %.100q", sh, out)
		}
	}
	if out := c.OK("__complete", "workspace", "get", ""); !strings.Contains(out, "y\tY") {
		t.Errorf("workspace completion: %q", out)
	}
}
