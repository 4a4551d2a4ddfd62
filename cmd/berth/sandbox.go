package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// parseMount reads "<workspace-id>:<path>[:ro]".
func parseMount(s string) (client.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return client.Mount{}, fmt.Errorf("--mount %q: want <workspace-id>:<path>[:ro]", s)
	}
	m := client.Mount{WorkspaceID: parts[0], Path: parts[1]}
	if len(parts) == 3 {
		if parts[2] != "ro" {
			return client.Mount{}, fmt.Errorf("--mount %q: the only option is :ro", s)
		}
		m.ReadOnly = true
	}
	return m, nil
}

var sandboxTable = table[client.Sandbox]{
	ID: func(s client.Sandbox) string { return s.ID },
	Columns: []column[client.Sandbox]{
		{"ID", func(s client.Sandbox) string { return s.ID }, false},
		{"NAME", func(s client.Sandbox) string { return s.Name }, false},
		{"STATUS", func(s client.Sandbox) string { return s.Status }, false},
		{"TEMPLATE", func(s client.Sandbox) string { return s.Template }, false},
		{"CREATED", func(s client.Sandbox) string { return ago(s.CreatedAt) }, false},
		{"NETWORK", func(s client.Sandbox) string { return orDash(s.Network) }, true},
		{"IP", func(s client.Sandbox) string { return orDash(s.IP) }, true},
		{"MOUNTS", func(s client.Sandbox) string {
			var ms []string
			for _, m := range s.Mounts {
				v := m.WorkspaceID + ":" + m.Path
				if m.ReadOnly {
					v += ":ro"
				}
				ms = append(ms, v)
			}
			return orDash(strings.Join(ms, ","))
		}, true},
		{"REASON", func(s client.Sandbox) string { return orDash(s.StatusReason) }, true},
	},
}

var templateTable = table[client.Template]{
	ID: func(t client.Template) string { return t.Name },
	Columns: []column[client.Template]{
		{"NAME", func(t client.Template) string { return t.Name }, false},
		{"READY", func(t client.Template) string { return fmt.Sprint(t.Ready) }, false},
		{"DESCRIPTION", func(t client.Template) string { return t.Description }, false},
		{"IMAGE", func(t client.Template) string { return t.Image }, true},
	},
}

func (a *app) addSandboxCommands(root *cobra.Command) {
	cf := a
	sb := &cobra.Command{Use: "sandbox", Aliases: []string{"sandboxes", "sbx"}, Short: "Manage sandboxes"}

	var (
		req    client.SandboxRequest
		mounts []string
		envs   []string
		async  bool
	)
	create := &cobra.Command{Use: "create", Short: "Create a sandbox from a template", Args: cobra.NoArgs,
		Example: "  berth sandbox create --name repo-env --template base --mount <workspace-id>:/workspace",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			for _, s := range mounts {
				m, err := parseMount(s)
				if err != nil {
					return err
				}
				req.Mounts = append(req.Mounts, m)
			}
			for _, e := range envs {
				k, v, ok := strings.Cut(e, "=")
				if !ok {
					return fmt.Errorf("--env %q: want KEY=VALUE", e)
				}
				if req.Env == nil {
					req.Env = map[string]string{}
				}
				req.Env[k] = v
			}
			s, err := c.CreateSandbox(cmd.Context(), req, async)
			if err != nil {
				return err
			}
			return a.mutated(s, s.ID, "sandbox %s created (%s, %s)", s.Name, s.ID, s.Status)
		}}
	f := create.Flags()
	f.StringVar(&req.Name, "name", "", "sandbox name (default: derived from its id)")
	f.StringVar(&req.Template, "template", "base", "template name (see `berth template list`)")
	f.StringArrayVar(&mounts, "mount", nil, "workspace mount <workspace-id>:<path>[:ro] (repeatable)")
	f.StringArrayVar(&envs, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&req.Tags, "tag", nil, "tag (repeatable)")
	f.StringVar(&req.Network, "network", "", "bridge (default: internet only, isolated from other sandboxes and the host), none, or shared (also reaches other shared sandboxes and the host's services)")
	f.Int64Var(&req.IdleTimeout, "idle-timeout", 0, "pause after this many idle seconds (0: never)")
	f.BoolVar(&async, "async", false, "return while the sandbox is still being created")

	var all bool
	list := &cobra.Command{Use: "list", Short: "List sandboxes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var out []client.Sandbox
			cursor := ""
			for {
				page, next, err := c.Sandboxes(cmd.Context(), client.SandboxFilter{All: all, Cursor: cursor, Limit: 500})
				if err != nil {
					return err
				}
				out = append(out, page...)
				if next == "" {
					break
				}
				cursor = next
			}
			return printList(a, out, sandboxTable)
		}}
	list.Flags().BoolVar(&all, "all", false, "every sandbox of the organization (admins)")

	get := &cobra.Command{Use: "get ID|NAME", Short: "Show a sandbox", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			s, err := c.Sandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printOne(a, *s, sandboxTable)
		}}

	sb.AddCommand(create, list, get)
	for _, action := range []string{"pause", "resume", "stop", "start", "keepalive"} {
		sb.AddCommand(&cobra.Command{Use: action + " ID|NAME", Short: strings.ToUpper(action[:1]) + action[1:] + " a sandbox", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := cf.client()
				if err != nil {
					return err
				}
				s, err := c.SandboxAction(cmd.Context(), args[0], action)
				if err != nil {
					return err
				}
				return a.mutated(s, s.ID, "sandbox %s: %s done (%s)", s.Name, action, s.Status)
			}})
	}
	sb.AddCommand(&cobra.Command{Use: "destroy ID|NAME", Short: "Destroy a sandbox (its workspaces are kept)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.DestroySandbox(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.mutated(map[string]any{"id": args[0], "destroyed": true}, args[0], "sandbox %s destroyed", args[0])
		}})

	var timeout int64
	var cwd string
	exec := &cobra.Command{Use: "exec ID|NAME -- COMMAND [ARGS...]", Short: "Run a command in a sandbox, streaming its output",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			code := 0
			err = c.ExecStream(cmd.Context(), args[0], client.ExecRequest{Command: args[1:], Timeout: timeout, Cwd: cwd}, func(e client.Event) error {
				switch e.Name {
				case "stdout":
					// A stdout that fails (a closed pipe) ends the stream:
					// the rest of the output has nowhere to go.
					if _, err := fmt.Fprint(a.stdout, e.Data); err != nil {
						return err
					}
				case "stderr":
					if _, err := fmt.Fprint(a.stderr, e.Data); err != nil {
						return err
					}
				case "exit":
					var res client.ExecResult
					if err := json.Unmarshal([]byte(e.Data), &res); err != nil {
						return fmt.Errorf("bad exit event %q: %w", e.Data, err)
					}
					code = res.ExitCode
					if res.TimedOut {
						a.warnf("berth: command timed out\n")
					}
				case "error":
					return fmt.Errorf("exec failed: %s", e.Data)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		}}
	exec.Flags().Int64Var(&timeout, "timeout", 0, "timeout in milliseconds (default 30000)")
	exec.Flags().StringVar(&cwd, "cwd", "", "working directory")
	sb.AddCommand(exec)
	root.AddCommand(sb)

	tp := &cobra.Command{Use: "template", Aliases: []string{"templates"}, Short: "Sandbox templates"}
	tf := a
	tp.AddCommand(&cobra.Command{Use: "list", Short: "List templates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := tf.client()
			if err != nil {
				return err
			}
			ts, err := c.Templates(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, ts, templateTable)
		}})
	tp.AddCommand(&cobra.Command{Use: "build NAME", Short: "Build (or pull) a template's image now, showing progress", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := tf.client()
			if err != nil {
				return err
			}
			if err := c.BuildTemplate(cmd.Context(), args[0], func(line string) { a.warnf("%s\n", line) }); err != nil {
				return err
			}
			return a.mutated(nil, args[0], "template %s built", args[0])
		}})
	root.AddCommand(tp)
}
