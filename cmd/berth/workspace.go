package main

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

var workspaceTable = table[client.Workspace]{
	ID: func(w client.Workspace) string { return w.ID },
	Columns: []column[client.Workspace]{
		{"ID", func(w client.Workspace) string { return w.ID }, false},
		{"SLUG", func(w client.Workspace) string { return w.Slug }, false},
		{"NAME", func(w client.Workspace) string { return w.Name }, false},
		{"SIZE", func(w client.Workspace) string { return bytesCell(w.SizeBytes) }, false},
		{"QUOTA", func(w client.Workspace) string {
			if w.QuotaBytes == nil {
				return "-"
			}
			return bytesCell(*w.QuotaBytes)
		}, false},
		{"CREATED", func(w client.Workspace) string { return ago(w.CreatedAt) }, false},
		{"PERSONAL", func(w client.Workspace) string { return fmt.Sprint(w.IsPersonal) }, true},
		{"OWNER", func(w client.Workspace) string { return w.OwnerUserID }, true},
		{"LAST ACCESS", func(w client.Workspace) string { return agoPtr(w.LastAccessedAt) }, true},
	},
}

func (a *app) addWorkspaceCommands(root *cobra.Command) {
	ws := &cobra.Command{Use: "workspace", Aliases: []string{"workspaces", "ws"}, Short: "Manage workspaces (named by id or slug)"}

	var all bool
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List workspaces", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			l, err := c.Workspaces(cmd.Context(), all)
			if err != nil {
				return err
			}
			return printList(a, l.Workspaces, workspaceTable)
		}}
	list.Flags().BoolVar(&all, "all", false, "every workspace of the organization (admins)")

	var (
		req   client.WorkspaceRequest
		quota string
	)
	create := &cobra.Command{Use: "create NAME", Short: "Create a workspace", Args: cobra.ExactArgs(1),
		Example: `  berth workspace create "Docs Project" --slug docs-project`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			if quota != "" {
				q, err := parseQuota(quota)
				if err != nil {
					return err
				}
				req.QuotaBytes = q
			}
			w, err := c.CreateWorkspace(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.mutated(w, w.ID, "workspace %s created (%s)", w.Slug, w.ID)
		}}
	create.Flags().StringVar(&req.Slug, "slug", "", "slug (default: derived from the name)")
	create.Flags().BoolVar(&req.Personal, "personal", false, "personal workspace (owner and admins only, never mountable)")
	create.Flags().StringVar(&quota, "quota", "", "quota, e.g. 10GiB (default: none)")

	get := &cobra.Command{Use: "get WORKSPACE", Short: "Show a workspace", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// The resolved workspace may come from a list; ask for the
			// workspace itself for its size.
			full, err := c.Workspace(cmd.Context(), w.ID)
			if err != nil {
				return err
			}
			return printOne(a, *full, workspaceTable)
		}}

	rename := &cobra.Command{Use: "rename WORKSPACE NEW-NAME", Short: "Give a workspace a new display name (its slug stays)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			nw, err := c.RenameWorkspace(cmd.Context(), w.ID, args[1])
			if err != nil {
				return err
			}
			return a.mutated(nw, nw.ID, "workspace %s renamed from %q to %q (%s)", nw.Slug, w.Name, nw.Name, nw.ID)
		}}

	var force bool
	del := &cobra.Command{Use: "delete WORKSPACE...", Aliases: []string{"rm"}, Short: "Delete workspaces with their files", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				w, err := a.workspace(cmd.Context(), c, ref)
				if err == nil {
					err = c.DeleteWorkspace(cmd.Context(), w.ID, force)
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if err := a.mutated(map[string]any{"id": w.ID, "slug": w.Slug, "deleted": true}, w.ID, "workspace %s deleted (%s)", w.Slug, w.ID); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
	del.Flags().BoolVar(&force, "force", false, "delete even while sandboxes or agents use it")

	usage := &cobra.Command{Use: "usage WORKSPACE", Short: "Show the sandboxes and agents that use a workspace", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			u, err := c.WorkspaceUsage(cmd.Context(), w.ID)
			if err != nil {
				return err
			}
			if a.flags.output == "json" || a.flags.output == "yaml" {
				return printOne(a, *u, table[client.WorkspaceUsage]{})
			}
			type user struct{ Kind, ID, Name, Status, Path, Mode string }
			rows := []user{}
			for _, m := range u.MountedSandboxes {
				mode := "rw"
				if m.ReadOnly {
					mode = "ro"
				}
				rows = append(rows, user{"sandbox", m.SandboxID, m.SandboxName, m.SandboxStatus, m.MountPath, mode})
			}
			for _, ag := range u.Agents {
				rows = append(rows, user{"agent", ag.AgentID, ag.Slug, ag.ExecutionMode, "-", "-"})
			}
			if len(rows) == 0 && !a.flags.quiet {
				return a.printf("workspace %s is not in use\n", w.Slug)
			}
			return printList(a, rows, table[user]{ID: func(r user) string { return r.ID }, Columns: []column[user]{
				{"KIND", func(r user) string { return r.Kind }, false},
				{"NAME", func(r user) string { return r.Name }, false},
				{"STATUS/MODE", func(r user) string { return r.Status }, false},
				{"PATH", func(r user) string { return r.Path }, false},
				{"ACCESS", func(r user) string { return r.Mode }, false},
				{"ID", func(r user) string { return r.ID }, false},
			}})
		}}

	var revoke, clear bool
	grant := &cobra.Command{Use: "grant WORKSPACE [MEMBER...]", Short: "Grant members access to a workspace (admins); without members, list the grants",
		Long: "Grant members (by id, email or name) access to a workspace. --revoke takes their access away,\n" +
			"--clear takes everyone's. Without members, list who is granted. Admins only.",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			members, err := c.Members(ctx)
			if err != nil {
				return err
			}
			byID := map[string]client.Member{}
			for _, m := range members {
				byID[m.ID] = m
			}
			cur, err := c.WorkspaceAccess(ctx, w.ID)
			if err != nil {
				return err
			}
			if len(args) == 1 && !clear {
				rows := []client.Member{}
				for _, id := range cur {
					m, ok := byID[id]
					if !ok {
						m = client.Member{ID: id}
					}
					rows = append(rows, m)
				}
				return printList(a, rows, memberTable)
			}
			set := map[string]bool{}
			if !clear {
				for _, id := range cur {
					set[id] = true
				}
			}
			var names []string
			for _, ref := range args[1:] {
				m, err := resolveRef("member", ref, members, "",
					func(m client.Member) string { return m.ID },
					func(m client.Member) string { return m.Email },
					func(m client.Member) string { return m.Name })
				if err != nil {
					return err
				}
				set[m.ID] = !revoke
				names = append(names, firstOf(m.Email, m.Name, m.ID))
			}
			ids := []string{}
			for id, on := range set {
				if on {
					ids = append(ids, id)
				}
			}
			got, err := c.SetWorkspaceAccess(ctx, w.ID, ids)
			if err != nil {
				return err
			}
			out := map[string]any{"workspaceId": w.ID, "userIds": got}
			switch {
			case clear && len(names) == 0:
				return a.mutated(out, w.ID, "workspace %s: every grant removed", w.Slug)
			case revoke:
				return a.mutated(out, w.ID, "workspace %s: access revoked from %s", w.Slug, strings.Join(names, ", "))
			}
			return a.mutated(out, w.ID, "workspace %s: access granted to %s", w.Slug, strings.Join(names, ", "))
		}}
	grant.Flags().BoolVar(&revoke, "revoke", false, "take the members' access away instead")
	grant.Flags().BoolVar(&clear, "clear", false, "remove every other grant first (with no members: remove all)")

	quotaCmd := &cobra.Command{Use: "quota WORKSPACE [SIZE|none]", Short: "Show a workspace's space, or set its quota (e.g. 10GiB; none removes it)", Args: cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(args) == 1 {
				sp, err := c.WorkspaceSpace(cmd.Context(), w.ID)
				if err != nil {
					return err
				}
				lim := func(n int64) string {
					if n < 0 {
						return "unlimited"
					}
					return bytesCell(n)
				}
				return printOne(a, *sp, table[client.Space]{ID: func(client.Space) string { return w.ID }, Columns: []column[client.Space]{
					{"WORKSPACE", func(client.Space) string { return w.Slug }, false},
					{"USED", func(s client.Space) string { return bytesCell(s.Used) }, false},
					{"TOTAL", func(s client.Space) string { return lim(s.Total) }, false},
					{"FREE", func(s client.Space) string { return lim(s.Free) }, false},
				}})
			}
			q, err := parseQuota(args[1])
			if err != nil {
				return err
			}
			nw, err := c.SetWorkspaceQuota(cmd.Context(), w.ID, q)
			if err != nil {
				return err
			}
			if q == nil {
				return a.mutated(nw, nw.ID, "workspace %s: quota removed", nw.Slug)
			}
			return a.mutated(nw, nw.ID, "workspace %s: quota set to %s", nw.Slug, bytesCell(*q))
		}}

	ws.AddCommand(list, create, get, rename, del, usage, grant, quotaCmd)
	a.addSnapshotCommands(ws)
	root.AddCommand(ws)
}

// clientAndWorkspace is the client and the workspace ref names.
func (a *app) clientAndWorkspace(ctx context.Context, ref string) (*client.Client, *client.Workspace, error) {
	c, err := a.client()
	if err != nil {
		return nil, nil, err
	}
	w, err := a.workspace(ctx, c, ref)
	return c, w, err
}

// parseQuota reads "10GiB", "500MB", a number of bytes, or "none" (nil).
func parseQuota(s string) (*int64, error) {
	if s == "none" || s == "unlimited" {
		return nil, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return nil, fmt.Errorf("quota %q: want a size such as 10GiB, or none", s)
	}
	if n > math.MaxInt64 {
		return nil, fmt.Errorf("quota %q is too large", s)
	}
	q := int64(n)
	return &q, nil
}

// joinErrors prints every error of a command that went on past them but
// the last, which run prints; the command exits 1.
func joinErrors(a *app, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs[:len(errs)-1] {
		a.warnf("berth: %s\n", a.explain(err))
	}
	return errs[len(errs)-1]
}

var memberTable = table[client.Member]{
	ID: func(m client.Member) string { return m.ID },
	Columns: []column[client.Member]{
		{"ID", func(m client.Member) string { return m.ID }, false},
		{"NAME", func(m client.Member) string { return orDash(m.Name) }, false},
		{"EMAIL", func(m client.Member) string { return orDash(m.Email) }, false},
		{"ROLE", func(m client.Member) string { return orDash(m.Role) }, false},
		{"CREATED", func(m client.Member) string { return ago(m.CreatedAt) }, true},
	},
}
