package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// cli runs the CLI in-process, as a user would from a shell: with its own
// environment (nothing of the test process's leaks in), its own config
// directory, and captured output. Tests using it may run in parallel.
type cli struct {
	t   *testing.T
	env map[string]string
	// Stdin is the next run's standard input (nil: empty).
	Stdin io.Reader
	// TTY makes stderr (and stdin) a terminal, for progress bars and prompts.
	TTY bool
	// Secret is what the no-echo prompt reads when TTY is set.
	Secret string
}

// result is one run's output and exit code.
type result struct {
	Stdout, Stderr string
	Code           int
}

// newCLI is a CLI with an empty config directory talking to srv (nil: no
// server) as its admin through BERTH_URL and BERTH_API_KEY.
func newCLI(t *testing.T, srv *servertest.Env) *cli {
	c := &cli{t: t, env: map[string]string{
		"XDG_CONFIG_HOME": t.TempDir(),
		"HOME":            t.TempDir(),
		// No ./berth-data/admin.key fallback from the package directory.
		"BERTH_DATA_DIR": t.TempDir(),
	}}
	if srv != nil {
		c.env["BERTH_URL"] = srv.URL
		c.env["BERTH_API_KEY"] = srv.AdminKey
	}
	return c
}

// Setenv sets (value "" unsets) a variable of the CLI's environment.
func (c *cli) Setenv(k, v string) {
	if v == "" {
		delete(c.env, k)
		return
	}
	c.env[k] = v
}

// Run runs `berth args...`.
func (c *cli) Run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	in := c.Stdin
	if in == nil {
		in = strings.NewReader("")
	}
	c.Stdin = nil
	a := &app{
		stdin: in, stdout: &out, stderr: &errb,
		getenv:    func(k string) string { return c.env[k] },
		stderrTTY: c.TTY, stdinTTY: c.TTY,
		readSecret: func() (string, error) { return c.Secret, nil },
	}
	code := a.run(testctx.Context(c.t), args)
	return result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// OK runs args and fails the test unless they exit 0; it returns stdout.
func (c *cli) OK(args ...string) string {
	c.t.Helper()
	r := c.Run(args...)
	if r.Code != 0 {
		c.t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// Fail runs args and fails the test if they exit 0.
func (c *cli) Fail(args ...string) result {
	c.t.Helper()
	r := c.Run(args...)
	if r.Code == 0 {
		c.t.Fatalf("berth %s: exit 0, want a failure\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Stdout, r.Stderr)
	}
	return r
}

// JSON runs args with -o json and decodes stdout into v.
func (c *cli) JSON(v any, args ...string) {
	c.t.Helper()
	out := c.OK(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("berth %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Table runs args and parses the aligned table it prints: one map per row,
// by header. Cells are cut at the headers' positions, so empty cells and
// cells with spaces parse.
func (c *cli) Table(args ...string) []map[string]string {
	c.t.Helper()
	return parseTable(c.t, c.OK(args...))
}

func parseTable(t *testing.T, out string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil
	}
	head := lines[0]
	type col struct {
		name  string
		start int
	}
	var cols []col
	for i := 0; i < len(head); {
		if head[i] == ' ' {
			i++
			continue
		}
		j := i
		// Headers may hold one space ("LAST ACCESS"); columns are at least
		// three apart.
		for j < len(head) && !strings.HasPrefix(head[j:], "   ") {
			j++
		}
		cols = append(cols, col{strings.TrimSpace(head[i:j]), i})
		i = j
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		r := map[string]string{}
		for k, c := range cols {
			end := len(l)
			if k+1 < len(cols) {
				end = min(cols[k+1].start, len(l))
			}
			if c.start < len(l) {
				r[c.name] = strings.TrimSpace(l[c.start:end])
			} else {
				r[c.name] = ""
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// row returns the row whose column col is val, failing the test when none is.
func row(t *testing.T, rows []map[string]string, col, val string) map[string]string {
	t.Helper()
	for _, r := range rows {
		if r[col] == val {
			return r
		}
	}
	t.Fatalf("no row with %s=%q in %v", col, val, rows)
	return nil
}
