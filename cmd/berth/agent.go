package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/client"
)

var agentTable = table[client.Agent]{
	ID: func(ag client.Agent) string { return ag.Slug },
	Columns: []column[client.Agent]{
		{"SLUG", func(ag client.Agent) string { return ag.Slug }, false},
		{"NAME", func(ag client.Agent) string { return orDash(ag.Name) }, false},
		{"MODE", func(ag client.Agent) string { return ag.ExecutionMode }, false},
		{"SANDBOX", func(ag client.Agent) string { return orDash(ag.SandboxID) }, false},
		{"VERSION", func(ag client.Agent) string { return fmt.Sprint(ag.Version) }, false},
		{"UPDATED", func(ag client.Agent) string { return ago(ag.UpdatedAt) }, false},
		{"ID", func(ag client.Agent) string { return ag.ID }, true},
		{"TEMPLATE", func(ag client.Agent) string { return orDash(ag.Template) }, true},
		{"WORKSPACES", func(ag client.Agent) string { return mountsCell(ag.Mounts) }, true},
		{"TIMEOUT", func(ag client.Agent) string { return msCell(ag.Timeout) }, true},
		{"COMMAND", func(ag client.Agent) string { return strings.Join(ag.Command, " ") }, true},
	},
}

var runTable = table[client.Run]{
	ID: func(r client.Run) string { return r.RunID },
	Columns: []column[client.Run]{
		{"RUN", func(r client.Run) string { return r.RunID }, false},
		{"THREAD", func(r client.Run) string { return r.ThreadID }, false},
		{"STATUS", func(r client.Run) string { return r.Status }, false},
		{"EXIT", func(r client.Run) string {
			if r.ExitCode == nil {
				return "-"
			}
			return fmt.Sprint(*r.ExitCode)
		}, false},
		{"DURATION", func(r client.Run) string { return msCell(r.DurationMs) }, false},
		{"CREATED", func(r client.Run) string { return ago(r.CreatedAt) }, false},
		{"AGENT", func(r client.Run) string { return r.AgentSlug }, true},
		{"VERSION", func(r client.Run) string { return fmt.Sprint(r.AgentVersion) }, true},
		{"SANDBOX", func(r client.Run) string { return orDash(r.SandboxID) }, true},
		{"REASON", func(r client.Run) string { return orDash(r.StatusReason) }, true},
	},
}

// msCell is a duration in milliseconds as "1.5s"; "-" for none.
func msCell(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

// runFailed reports whether a finished run did not complete.
func runFailed(r *client.Run) bool { return r.Status != "completed" }

// runExit is the CLI's exit code for a run that did not complete: the
// agent's own exit code when it has one that fits, else 1. It is returned
// after the reason was printed.
func (a *app) runExit(r *client.Run) error {
	why := r.Status
	if r.StatusReason != "" {
		why += ": " + r.StatusReason
	}
	code := 1
	if r.ExitCode != nil {
		why += fmt.Sprintf(" (exit code %d)", *r.ExitCode)
		if *r.ExitCode > 0 && *r.ExitCode < 256 {
			code = *r.ExitCode
		}
	}
	a.warnf("berth: run %s %s\n", r.RunID, why)
	return exitError{code}
}

// completeAgents completes agent slugs (the first argument only).
func (a *app) completeAgents(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "delete" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Agent, error) {
		return c.Agents(ctx, false)
	}, func(ag client.Agent) string { return ag.Slug }, func(ag client.Agent) string { return ag.Name })(cmd, args, toComplete)
}

func (a *app) addAgentCommands(root *cobra.Command) {
	ag := &cobra.Command{Use: "agent", Aliases: []string{"agents"}, Short: "Manage and run agents (named by slug)"}
	ag.AddCommand(a.agentCreate(), a.agentApply(), a.agentList(), a.agentGet(), a.agentDelete(),
		a.agentRun(), a.agentRuns(), a.agentCancel())
	root.AddCommand(ag)
}

func (a *app) agentCreate() *cobra.Command {
	var (
		req          client.AgentRequest
		mounts, envs []string
		timeout      time.Duration
	)
	create := &cobra.Command{Use: "create SLUG [flags] -- COMMAND [ARGS...]", Short: "Create an agent (see `agent apply` to create or update from a file)",
		Long: "Create an agent. Each run executes COMMAND with the prompt on its standard input and in\n" +
			"BERTH_PROMPT. With --sandbox it runs in that sandbox (in_sandbox); without, each run gets\n" +
			"a fresh sandbox of --template with --mount (managed).",
		Example: "  berth agent create code-assistant --sandbox repo-env -- /bin/sh -c 'cat; ls /workspace'\n" +
			"  berth agent create summarizer --template base --mount docs-project:/workspace -- /workspace/bin/run",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d := cmd.ArgsLenAtDash(); d != 1 {
				return errors.New("want: berth agent create SLUG [flags] -- COMMAND [ARGS...]")
			}
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			req.Slug, req.Command = args[0], args[1:]
			if req.ExecutionMode == "" {
				req.ExecutionMode = "managed"
				if req.Sandbox != "" {
					req.ExecutionMode = "in_sandbox"
				}
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
			if req.Timeout, err = millis("timeout", timeout); err != nil {
				return err
			}
			// Upsert would update an agent that exists: create says so
			// instead, apply is the command that updates.
			if old, err := c.Agent(ctx, req.Slug); err == nil {
				return fmt.Errorf("agent %s exists (version %d): change it with `berth agent apply -f FILE`, or delete it first", old.Slug, old.Version)
			} else if client.ErrorCode(err) != "not_found" {
				return err
			}
			up, err := c.UpsertAgent(ctx, req)
			if err != nil {
				return err
			}
			return a.mutated(up, up.Slug, "agent %s %s (%s, version %d)", up.Slug, up.Action, up.ID, up.Version)
		}}
	f := create.Flags()
	f.StringVar(&req.Name, "name", "", "display name")
	f.StringVar(&req.Description, "description", "", "description")
	f.StringVar(&req.ExecutionMode, "mode", "", "in_sandbox or managed (default: in_sandbox with --sandbox, else managed)")
	f.StringVar(&req.Sandbox, "sandbox", "", "the sandbox to run in (id or name; in_sandbox)")
	f.StringVar(&req.Template, "template", "", "template of each run's sandbox (managed)")
	f.StringArrayVar(&mounts, "mount", nil, "workspace mount of each run's sandbox, <workspace>:<path>[:ro] (managed; repeatable)")
	f.StringArrayVar(&envs, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.Var(durationValue{&timeout, time.Millisecond}, "timeout", "a run's time limit, e.g. 10m (a bare number: milliseconds; default: the server's)")
	_ = create.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes) // the flags exist
	_ = create.RegisterFlagCompletionFunc("template", a.completeTemplates)
	_ = create.RegisterFlagCompletionFunc("mount", a.completeMounts)
	_ = create.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"in_sandbox", "managed"}, cobra.ShellCompDirectiveNoFileComp))
	return create
}

// agentSpec is an agent as written in a file for `agent apply`: the API's
// agent body, with friendlier forms accepted for mounts ("docs:/workspace:ro"
// or {workspace: docs, path: /workspace, readOnly: true}), command (a string
// runs under /bin/sh -c) and timeout (milliseconds or a duration, "10m").
type agentSpec struct {
	Slug          string            `json:"slug"`
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	ExecutionMode string            `json:"executionMode"`
	Sandbox       string            `json:"sandbox"`
	Template      string            `json:"template"`
	Mounts        []json.RawMessage `json:"mounts"`
	Command       json.RawMessage   `json:"command"`
	Env           map[string]string `json:"env"`
	Timeout       json.RawMessage   `json:"timeout"`
}

// readAgentSpecs reads the agents of a YAML or JSON file: one object, a
// list of them, or several YAML documents.
func readAgentSpecs(name string, r io.Reader) ([]agentSpec, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var docs []any
	// JSON is YAML: one decoder reads both, and says where a file is wrong.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		switch v := v.(type) {
		case nil:
		case []any:
			docs = append(docs, v...)
		default:
			docs = append(docs, v)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no agent in the file", name)
	}
	specs := make([]agentSpec, len(docs))
	for i, d := range docs {
		j, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("%s: agent %d: %w", name, i+1, err)
		}
		jd := json.NewDecoder(bytes.NewReader(j))
		jd.DisallowUnknownFields()
		if err := jd.Decode(&specs[i]); err != nil {
			return nil, fmt.Errorf("%s: agent %d: %w", name, i+1, err)
		}
		if specs[i].Slug == "" {
			return nil, fmt.Errorf("%s: agent %d has no slug", name, i+1)
		}
	}
	return specs, nil
}

// request turns a spec into the API's body, resolving workspace slugs.
func (a *app) agentRequest(ctx context.Context, c *client.Client, s agentSpec) (client.AgentRequest, error) {
	req := client.AgentRequest{Slug: s.Slug, Name: s.Name, Description: s.Description, ExecutionMode: s.ExecutionMode,
		Sandbox: s.Sandbox, Template: s.Template, Env: s.Env}
	if req.ExecutionMode == "" {
		req.ExecutionMode = "managed"
		if req.Sandbox != "" {
			req.ExecutionMode = "in_sandbox"
		}
	}
	bad := func(field string, err error) error { return fmt.Errorf("agent %s: %s: %w", s.Slug, field, err) }
	var str string
	switch {
	case len(s.Command) == 0:
	case json.Unmarshal(s.Command, &str) == nil:
		req.Command = []string{"/bin/sh", "-c", str}
	default:
		if err := json.Unmarshal(s.Command, &req.Command); err != nil {
			return req, bad("command", errors.New("want a list of strings or one shell command line"))
		}
	}
	if len(s.Timeout) > 0 {
		var ms int64
		switch {
		case json.Unmarshal(s.Timeout, &ms) == nil:
			req.Timeout = ms
		case json.Unmarshal(s.Timeout, &str) == nil:
			d, err := time.ParseDuration(str)
			if err != nil {
				return req, bad("timeout", err)
			}
			if req.Timeout, err = millis("timeout", d); err != nil {
				return req, bad("timeout", err)
			}
		default:
			return req, bad("timeout", errors.New("want milliseconds or a duration such as 10m"))
		}
	}
	for _, raw := range s.Mounts {
		var m client.Mount
		if json.Unmarshal(raw, &str) == nil {
			pm, err := a.parseMount(ctx, c, str)
			if err != nil {
				return req, bad("mounts", err)
			}
			req.Mounts = append(req.Mounts, pm)
			continue
		}
		var obj struct {
			Workspace   string `json:"workspace"`
			WorkspaceID string `json:"workspaceId"`
			Path        string `json:"path"`
			ReadOnly    bool   `json:"readOnly"`
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&obj); err != nil {
			return req, bad("mounts", fmt.Errorf("want \"<workspace>:<path>[:ro]\" or {workspace, path, readOnly}: %w", err))
		}
		ref := firstOf(obj.WorkspaceID, obj.Workspace)
		if ref == "" {
			return req, bad("mounts", errors.New("a mount needs its workspace (id or slug)"))
		}
		w, err := a.workspace(ctx, c, ref)
		if err != nil {
			return req, err
		}
		m = client.Mount{WorkspaceID: w.ID, Path: obj.Path, ReadOnly: obj.ReadOnly}
		req.Mounts = append(req.Mounts, m)
	}
	return req, nil
}

func (a *app) agentApply() *cobra.Command {
	var files []string
	apply := &cobra.Command{Use: "apply -f FILE", Short: "Create or update agents from a YAML or JSON file",
		Long: "Create or update the agents of a YAML or JSON file (one agent, a list, or several YAML\n" +
			"documents; -f - reads standard input). The fields are the API's agent body:\n\n" +
			"  slug: code-assistant\n  name: Code assistant\n  sandbox: repo-env            # in_sandbox; or template + mounts (managed)\n" +
			"  mounts: [\"docs-project:/workspace:ro\"]\n  command: [\"/bin/sh\", \"-c\", \"cat\"]   # or one shell line\n" +
			"  env: {MODEL: small}\n  timeout: 10m",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("-f FILE is required (- for standard input)")
			}
			ctx := cmd.Context()
			var specs []agentSpec
			for _, name := range files {
				var r io.Reader = a.stdin
				if name != "-" {
					f, err := os.Open(name)
					if err != nil {
						return err
					}
					defer closeQuietly(f)
					r = f
				}
				s, err := readAgentSpecs(name, r)
				if err != nil {
					return err
				}
				specs = append(specs, s...)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var done []client.AgentUpserted
			for _, s := range specs {
				req, err := a.agentRequest(ctx, c, s)
				if err != nil {
					return err
				}
				up, err := c.ApplyAgent(ctx, req)
				if err != nil {
					return fmt.Errorf("agent %s: %w", s.Slug, err)
				}
				done = append(done, *up)
				if a.flags.output == "" || a.flags.output == "table" || a.flags.output == "wide" {
					if err := a.mutated(up, up.Slug, "agent %s %s (%s, version %d)", up.Slug, up.Action, up.ID, up.Version); err != nil {
						return err
					}
				}
			}
			switch {
			case a.flags.output != "json" && a.flags.output != "yaml":
				return nil
			case len(done) == 1:
				return a.mutated(done[0], "", "")
			}
			return a.mutated(done, "", "")
		}}
	apply.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML or JSON file of agents (- for standard input; repeatable)")
	return apply
}

func (a *app) agentList() *cobra.Command {
	var all bool
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List agents", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ags, err := c.Agents(cmd.Context(), all)
			if err != nil {
				return err
			}
			return printList(a, ags, agentTable)
		}}
	list.Flags().BoolVar(&all, "all", false, "every agent of the organization (admins)")
	return list
}

func (a *app) agentGet() *cobra.Command {
	return &cobra.Command{Use: "get SLUG", Short: "Show an agent", Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ag, err := c.Agent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printOne(a, *ag, agentTable)
		}}
}

func (a *app) agentDelete() *cobra.Command {
	return &cobra.Command{Use: "delete SLUG...", Aliases: []string{"rm"}, Short: "Delete agents (their runs and threads stay)",
		Args: cobra.MinimumNArgs(1), ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, slug := range args {
				if err := c.DeleteAgent(cmd.Context(), slug); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := a.mutated(map[string]any{"slug": slug, "deleted": true}, slug, "agent %s deleted", slug); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
}

func (a *app) agentRun() *cobra.Command {
	var (
		opts     client.RunOptions
		noStream bool
		timeout  time.Duration
	)
	run := &cobra.Command{Use: "run SLUG PROMPT", Short: "Run an agent, streaming its output",
		Long: "Run an agent on PROMPT (- reads it from standard input). Its output streams as it comes\n" +
			"(stdout to stdout, stderr to stderr); --no-stream prints it when the run ends; -o json|yaml\n" +
			"prints the run object. berth exits non-zero when the run does not complete: with the\n" +
			"agent's exit code, else 1.",
		Example: "  berth agent run code-assistant \"Open /workspace/README.md and summarise it\"\n" +
			"  berth agent run code-assistant --thread thr_... \"and now the tests\"",
		Args: cobra.ExactArgs(2), ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			prompt := args[1]
			if prompt == "-" {
				b, err := io.ReadAll(a.stdin)
				if err != nil {
					return fmt.Errorf("read the prompt: %w", err)
				}
				prompt = string(b)
			}
			var err error
			if opts.Timeout, err = millis("timeout", timeout); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			structured := a.flags.output == "json" || a.flags.output == "yaml"
			if noStream || structured || a.flags.quiet {
				r, err := c.Run(ctx, args[0], prompt, opts)
				if err != nil {
					return err
				}
				switch {
				case structured:
					if err := printOne(a, *r, runTable); err != nil {
						return err
					}
				case a.flags.quiet:
					if err := a.printf("%s\n", r.RunID); err != nil {
						return err
					}
				default:
					if _, err := io.WriteString(a.stdout, r.Output); err != nil {
						return err
					}
					a.warnf("%s", r.Stderr)
					a.runSummary(r)
				}
				if runFailed(r) {
					return a.runExit(r)
				}
				return nil
			}
			var runID string
			r, err := c.RunStream(ctx, args[0], prompt, opts, func(e client.Event) error {
				switch e.Name {
				case "stdout":
					_, err := io.WriteString(a.stdout, e.Data)
					return err
				case "stderr":
					a.warnf("%s", e.Data)
				case "status":
					var st struct {
						Status string `json:"status"`
						RunID  string `json:"runId"`
					}
					if json.Unmarshal([]byte(e.Data), &st) == nil && st.RunID != "" {
						runID = st.RunID
					}
				}
				return nil
			})
			if err != nil {
				if ctx.Err() != nil {
					if runID != "" {
						a.warnf("berth: run %s goes on in the server: `berth agent cancel %s` stops it\n", runID, runID)
					}
					return exitError{exitInterrupted}
				}
				return err
			}
			a.runSummary(r)
			if runFailed(r) {
				return a.runExit(r)
			}
			return nil
		}}
	run.Flags().StringVar(&opts.ThreadID, "thread", "", "continue this thread (default: a new one)")
	run.Flags().BoolVar(&noStream, "no-stream", false, "wait for the run's end, then print its output")
	run.Flags().Var(durationValue{&timeout, time.Millisecond}, "timeout", "this run's time limit, e.g. 10m (a bare number: milliseconds; default: the agent's)")
	_ = run.RegisterFlagCompletionFunc("thread", a.completeThreads) // the flag exists
	return run
}

// runSummary says on a terminal's stderr how a completed run went and how
// to continue its thread.
func (a *app) runSummary(r *client.Run) {
	if a.stderrTTY && !runFailed(r) {
		a.warnf("berth: run %s %s in %s (continue with --thread %s)\n", r.RunID, r.Status, msCell(r.DurationMs), r.ThreadID)
	}
}

func (a *app) agentRuns() *cobra.Command {
	return &cobra.Command{Use: "runs SLUG", Short: "List an agent's runs, oldest first", Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			// An agent that is gone still has its runs: only an unknown
			// slug with no threads is an error.
			runs, err := c.AgentRuns(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(runs) == 0 {
				if _, err := c.Agent(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			return printList(a, runs, runTable)
		}}
}

func (a *app) agentCancel() *cobra.Command {
	return &cobra.Command{Use: "cancel RUN_ID...", Short: "Cancel runs (their process is killed)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range args {
				r, err := c.CancelRun(cmd.Context(), id)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if err := a.mutated(r, r.RunID, "run %s cancelled (%s)", r.RunID, r.Status); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
}
