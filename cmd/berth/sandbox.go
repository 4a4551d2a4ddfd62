package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// maxStdin is how much piped standard input exec sends: the API takes it
// inside the JSON body, which is limited to 1 MiB, escapes included.
const maxStdin = 512 << 10

// exitTimedOut is exec's exit code when the command ran out of time, as
// timeout(1) answers.
const exitTimedOut = 124

// exitInterrupted is the exit code of a command the user interrupted, as
// a shell reports SIGINT.
const exitInterrupted = 130

// parseMount reads "<workspace>:<path>[:ro]", the workspace by id, slug or
// name, and resolves it to its id.
func (a *app) parseMount(ctx context.Context, c *client.Client, s string) (client.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return client.Mount{}, fmt.Errorf("--mount %q: want <workspace>:<path>[:ro] (workspace by id or slug)", s)
	}
	m := client.Mount{Path: parts[1]}
	if len(parts) == 3 {
		if parts[2] != "ro" {
			return client.Mount{}, fmt.Errorf("--mount %q: the only option is :ro", s)
		}
		m.ReadOnly = true
	}
	w, err := a.workspace(ctx, c, parts[0])
	if err != nil {
		return client.Mount{}, err
	}
	m.WorkspaceID = w.ID
	return m, nil
}

// parseKV reads KEY=VALUE flags into a map (nil when there are none).
func parseKV(flag string, kvs []string) (map[string]string, error) {
	var out map[string]string
	for _, e := range kvs {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, e)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

// millis is a flag's duration in the API's milliseconds (0: the default).
func millis(flag string, d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("--%s %v: must not be negative", flag, d)
	}
	if d > 0 && d < time.Millisecond {
		return 0, fmt.Errorf("--%s %v: the API counts milliseconds", flag, d)
	}
	return d.Milliseconds(), nil
}

func mountsCell(ms []client.Mount) string {
	var out []string
	for _, m := range ms {
		v := m.WorkspaceID + ":" + m.Path
		if m.ReadOnly {
			v += ":ro"
		}
		out = append(out, v)
	}
	return orDash(strings.Join(out, ","))
}

var sandboxTable = table[client.Sandbox]{
	ID: func(s client.Sandbox) string { return s.ID },
	Columns: []column[client.Sandbox]{
		{"NAME", func(s client.Sandbox) string { return s.Name }, false},
		{"ID", func(s client.Sandbox) string { return s.ID }, false},
		{"STATUS", func(s client.Sandbox) string { return s.Status }, false},
		{"TEMPLATE", func(s client.Sandbox) string { return s.Template }, false},
		{"MOUNTS", func(s client.Sandbox) string { return fmt.Sprint(len(s.Mounts)) }, false},
		{"CREATED", func(s client.Sandbox) string { return ago(s.CreatedAt) }, false},
		{"NETWORK", func(s client.Sandbox) string { return orDash(s.Network) }, true},
		{"IP", func(s client.Sandbox) string { return orDash(s.IP) }, true},
		{"IDLE TIMEOUT", func(s client.Sandbox) string {
			if s.IdleTimeout <= 0 {
				return "-"
			}
			return (time.Duration(s.IdleTimeout) * time.Second).String()
		}, true},
		{"TAGS", func(s client.Sandbox) string { return orDash(strings.Join(s.Tags, ",")) }, true},
		{"WORKSPACES", func(s client.Sandbox) string { return mountsCell(s.Mounts) }, true},
		{"REASON", func(s client.Sandbox) string { return orDash(s.StatusReason) }, true},
	},
}

// listSandboxes is every sandbox the caller sees (all: the org's), every page.
func listSandboxes(ctx context.Context, c *client.Client, f client.SandboxFilter) ([]client.Sandbox, error) {
	var out []client.Sandbox
	f.Limit = 500
	for {
		page, next, err := c.Sandboxes(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// completeSandboxes completes the names of the caller's live sandboxes.
func (a *app) completeSandboxes(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	// exec and get take one sandbox; the others any number.
	if len(args) > 0 && (cmd.Name() == "exec" || cmd.Name() == "get") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Sandbox, error) {
		all, err := listSandboxes(ctx, c, client.SandboxFilter{})
		var live []client.Sandbox
		for _, s := range all {
			if s.Status != "destroyed" {
				live = append(live, s)
			}
		}
		return live, err
	}, func(s client.Sandbox) string { return s.Name }, func(s client.Sandbox) string { return s.Status + " " + s.Template })(cmd, args, toComplete)
}

// completeTemplates completes template names.
func (a *app) completeTemplates(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Template, error) {
		return c.Templates(ctx)
	}, func(t client.Template) string { return t.Name }, func(t client.Template) string { return t.Description })(cmd, args, toComplete)
}

// completeMounts completes the workspace part of --mount with slugs.
func (a *app) completeMounts(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, ":") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out, d := a.completeWorkspaces(cmd, nil, toComplete)
	for i, v := range out {
		slug, desc, _ := strings.Cut(v, "\t")
		out[i] = slug + ":/workspace\t" + desc
	}
	return out, d | cobra.ShellCompDirectiveNoSpace
}

func (a *app) addSandboxCommands(root *cobra.Command) {
	sb := &cobra.Command{Use: "sandbox", Aliases: []string{"sandboxes", "sbx"}, Short: "Manage sandboxes (named by id or name)"}
	sb.AddCommand(a.sandboxCreate(), a.sandboxList(), a.sandboxGet(), a.sandboxDestroy(), a.sandboxExec(), a.sandboxShell(), a.sandboxMount(), a.sandboxUnmount(), a.sandboxForward())
	for _, act := range []struct{ verb, done, short string }{
		{"pause", "paused", "Freeze a sandbox's processes (memory kept)"},
		{"resume", "resumed", "Thaw a paused sandbox"},
		{"stop", "stopped", "Stop a sandbox's processes (its filesystem is kept)"},
		{"start", "started", "Start a stopped sandbox"},
		{"keepalive", "kept alive", "Reset a sandbox's idle timer"},
	} {
		sb.AddCommand(&cobra.Command{Use: act.verb + " SANDBOX...", Short: act.short, Args: cobra.MinimumNArgs(1),
			ValidArgsFunction: a.completeSandboxes,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				var errs []error
				for _, ref := range args {
					s, err := c.SandboxAction(cmd.Context(), ref, act.verb)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					if err := a.mutated(s, s.ID, "sandbox %s %s (%s, %s)", s.Name, act.done, s.ID, s.Status); err != nil {
						return err
					}
				}
				return joinErrors(a, errs)
			}})
	}
	root.AddCommand(sb)
}

func (a *app) sandboxMount() *cobra.Command {
	return &cobra.Command{Use: "mount SANDBOX WORKSPACE:/PATH[:ro]", Short: "Attach a workspace to a running (or stopped) sandbox",
		Example: "  berth sandbox mount repo-env docs-project:/workspace/docs:ro", Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return a.completeSandboxes(cmd, args, toComplete)
			}
			return a.completeMounts(cmd, nil, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			m, err := a.parseMount(ctx, c, args[1])
			if err != nil {
				return err
			}
			s, err := c.AttachMount(ctx, args[0], m)
			if err != nil {
				return err
			}
			return a.mutated(s, s.ID, "sandbox %s: %s mounted at %s", s.Name, args[1], m.Path)
		}}
}

func (a *app) sandboxUnmount() *cobra.Command {
	return &cobra.Command{Use: "unmount SANDBOX /PATH", Short: "Detach a workspace attached to a sandbox with mount",
		Example: "  berth sandbox unmount repo-env /workspace/docs", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.DetachMount(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return a.mutated(s, s.ID, "sandbox %s: %s unmounted", s.Name, args[1])
		}}
}

func (a *app) sandboxCreate() *cobra.Command {
	var (
		req                 client.SandboxRequest
		res                 client.Resources
		mounts, envs, metas []string
		idle                time.Duration
		async               bool
	)
	create := &cobra.Command{Use: "create", Short: "Create a sandbox from a template", Args: cobra.NoArgs,
		Example: "  berth sandbox create --name repo-env --template base --mount docs-project:/workspace\n" +
			"  berth sandbox create --name reader --mount docs-project:/workspace:ro --network none --idle-timeout 10m",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			for _, s := range mounts {
				m, err := a.parseMount(ctx, c, s)
				if err != nil {
					return err
				}
				req.Mounts = append(req.Mounts, m)
			}
			if req.Env, err = parseKV("env", envs); err != nil {
				return err
			}
			if req.Metadata, err = parseKV("metadata", metas); err != nil {
				return err
			}
			if res != (client.Resources{}) {
				req.Resources = &res
			}
			if idle < 0 || (idle > 0 && idle < time.Second) {
				return fmt.Errorf("--idle-timeout %v: want at least 1s (or 0: never)", idle)
			}
			req.IdleTimeout = int64(math.Ceil(idle.Seconds()))
			s, err := c.CreateSandbox(ctx, req, async)
			if err != nil {
				return err
			}
			return a.mutated(s, s.ID, "sandbox %s created (%s, %s)", s.Name, s.ID, s.Status)
		}}
	f := create.Flags()
	f.StringVar(&req.Name, "name", "", "sandbox name, [a-z0-9-] (default: derived from its id)")
	f.StringVar(&req.Template, "template", "base", "template (see `berth template list`)")
	f.StringArrayVar(&mounts, "mount", nil, "mount a workspace: <workspace id or slug>:<path>[:ro] (repeatable; path /workspace or under it)")
	f.StringArrayVar(&envs, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&req.Tags, "tag", nil, "tag (repeatable)")
	f.StringArrayVar(&metas, "metadata", nil, "metadata KEY=VALUE (repeatable)")
	f.StringVar(&req.Network, "network", "", "bridge (default: internet only, isolated from other sandboxes and the host), none, or shared")
	f.Var(durationValue{&idle, time.Second}, "idle-timeout", "pause after this long without activity, e.g. 10m (a bare number: seconds; 0: never)")
	f.Float64Var(&res.VCPUs, "cpus", 0, "vCPUs (default: the template's)")
	f.StringVar(&res.Memory, "memory", "", "memory limit, e.g. 2GB (default: the template's)")
	f.StringVar(&res.Disk, "disk", "", "disk limit, e.g. 10GB (default: the template's)")
	f.Int64Var(&res.Pids, "pids", 0, "process limit (default: the template's)")
	f.BoolVar(&async, "async", false, "return while the sandbox is still being created")
	_ = create.RegisterFlagCompletionFunc("template", a.completeTemplates) // the flag exists
	_ = create.RegisterFlagCompletionFunc("mount", a.completeMounts)
	_ = create.RegisterFlagCompletionFunc("network", cobra.FixedCompletions([]string{"bridge", "none", "shared"}, cobra.ShellCompDirectiveNoFileComp))
	return create
}

func (a *app) sandboxList() *cobra.Command {
	var f client.SandboxFilter
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List sandboxes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := listSandboxes(cmd.Context(), c, f)
			if err != nil {
				return err
			}
			return printList(a, out, sandboxTable)
		}}
	list.Flags().BoolVar(&f.All, "all", false, "every sandbox of the organization (admins)")
	list.Flags().StringVar(&f.Status, "status", "", "only sandboxes in this status (running, paused, stopped, destroyed, ...)")
	list.Flags().StringVar(&f.Template, "template", "", "only sandboxes of this template")
	list.Flags().StringArrayVar(&f.Tags, "tag", nil, "only sandboxes with this tag (repeatable: all of them)")
	_ = list.RegisterFlagCompletionFunc("template", a.completeTemplates) // the flag exists
	return list
}

func (a *app) sandboxGet() *cobra.Command {
	return &cobra.Command{Use: "get SANDBOX", Short: "Show a sandbox", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.Sandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printOne(a, *s, sandboxTable)
		}}
}

func (a *app) sandboxDestroy() *cobra.Command {
	return &cobra.Command{Use: "destroy SANDBOX...", Aliases: []string{"rm", "delete"}, Short: "Destroy sandboxes (their workspaces are kept)",
		Args: cobra.MinimumNArgs(1), ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				var out struct {
					ID      string `json:"id"`
					Deleted bool   `json:"deleted"`
				}
				if _, err := c.Do(cmd.Context(), "DELETE", "/v1/sandboxes/"+url.PathEscape(ref), nil, &out); err != nil {
					errs = append(errs, err)
					continue
				}
				what := ref
				if out.ID != "" && out.ID != ref {
					what = fmt.Sprintf("%s (%s)", ref, out.ID)
				}
				if err := a.mutated(out, out.ID, "sandbox %s destroyed", what); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
}

func (a *app) sandboxExec() *cobra.Command {
	var (
		timeout time.Duration
		cwd     string
		envs    []string
		noStdin bool
	)
	exec := &cobra.Command{Use: "exec SANDBOX -- COMMAND [ARGS...]", Short: "Run a command in a sandbox, streaming its output",
		Long: "Run a command in a sandbox. Its output streams as it comes; piped standard input\n" +
			"(not a terminal) is passed to the command; berth exits with the command's exit code\n" +
			"(124 when it timed out).",
		Example: "  berth sandbox exec repo-env -- ls -la /workspace\n  echo hi | berth sandbox exec repo-env -- cat",
		Args:    cobra.MinimumNArgs(2), ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if d := cmd.ArgsLenAtDash(); d >= 0 && d != 1 {
				return fmt.Errorf("want: berth sandbox exec SANDBOX -- COMMAND [ARGS...]")
			}
			req := client.ExecRequest{Command: args[1:], Cwd: cwd}
			var err error
			if req.Timeout, err = millis("timeout", timeout); err != nil {
				return err
			}
			if req.Env, err = parseKV("env", envs); err != nil {
				return err
			}
			if !noStdin && !a.stdinTTY && a.stdin != nil {
				in, err := readStdin(a.stdin)
				if err != nil {
					return err
				}
				req.Stdin = &in
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.exec(cmd.Context(), c, args[0], req)
		}}
	exec.Flags().Var(durationValue{&timeout, time.Millisecond}, "timeout", "kill the command after this long, e.g. 5m (a bare number: milliseconds; default 30s)")
	exec.Flags().StringVar(&cwd, "cwd", "", "working directory (default: the image's)")
	exec.Flags().StringArrayVarP(&envs, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	exec.Flags().BoolVarP(&noStdin, "no-stdin", "n", false, "do not pass standard input (it is read when it is not a terminal)")
	return exec
}

// readStdin reads piped input for exec, up to what the API takes.
func readStdin(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdin+1))
	if err != nil {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > maxStdin {
		return "", fmt.Errorf("standard input is over %d KiB, more than exec takes: put the data in a workspace (berth files put) and read it from there", maxStdin>>10)
	}
	return string(b), nil
}

// exec streams a command's output and returns its exit code as an
// exitError (nothing printed by run: the command said what it had to).
func (a *app) exec(ctx context.Context, c *client.Client, sandbox string, req client.ExecRequest) error {
	code := -1
	err := c.ExecStream(ctx, sandbox, req, func(e client.Event) error {
		switch e.Name {
		case "stdout":
			// A stdout that fails (a closed pipe) ends the stream: the
			// rest of the output has nowhere to go.
			if _, err := io.WriteString(a.stdout, e.Data); err != nil {
				return err
			}
		case "stderr":
			if _, err := io.WriteString(a.stderr, e.Data); err != nil {
				return err
			}
		case "exit":
			var res client.ExecResult
			if err := json.Unmarshal([]byte(e.Data), &res); err != nil {
				return fmt.Errorf("bad exit event %q: %w", e.Data, err)
			}
			code = res.ExitCode
			if res.TimedOut {
				a.warnf("berth: the command timed out after %v\n", time.Duration(res.DurationMs)*time.Millisecond)
				code = exitTimedOut
			}
		case "error":
			var ae client.Error
			if err := json.Unmarshal([]byte(e.Data), &ae); err != nil || ae.Message == "" {
				return fmt.Errorf("exec failed: %s", e.Data)
			}
			return fmt.Errorf("exec failed: %s", ae.Message)
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted (Ctrl-C): the request's end stops the command;
			// exit as a shell does for SIGINT.
			return exitError{exitInterrupted}
		}
		return err
	}
	switch {
	case code < 0:
		return errors.New("exec: the stream ended without the command's exit status")
	case code > 255:
		code = 255
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

// durationValue is a flag of a duration ("10m", "1.5s"); a bare number is
// read in unit, the flag's unit before it took durations (idle timeouts
// were seconds, exec timeouts milliseconds), so that old scripts keep
// their meaning.
type durationValue struct {
	d    *time.Duration
	unit time.Duration
}

func (v durationValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0"
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*v.d = time.Duration(n) * v.unit
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 10m")
	}
	*v.d = d
	return nil
}

func (v durationValue) Type() string { return "duration" }
