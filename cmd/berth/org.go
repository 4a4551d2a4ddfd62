package main

import (
	"context"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

var keyTable = table[client.APIKey]{
	ID: func(k client.APIKey) string { return k.ID },
	Columns: []column[client.APIKey]{
		{"ID", func(k client.APIKey) string { return k.ID }, false},
		{"NAME", func(k client.APIKey) string { return k.Name }, false},
		{"PREFIX", func(k client.APIKey) string { return k.KeyPrefix }, false},
		{"SCOPES", func(k client.APIKey) string { return strings.Join(k.Scopes, ",") }, false},
		{"STATUS", func(k client.APIKey) string { return k.Status }, false},
		{"LAST USED", func(k client.APIKey) string { return agoPtr(k.LastUsedAt) }, false},
		{"EXPIRES", func(k client.APIKey) string {
			if k.ExpiresAt == nil {
				return "never"
			}
			return k.ExpiresAt.Format("2006-01-02")
		}, false},
		{"OWNER", func(k client.APIKey) string { return k.OwnerUserID }, true},
		{"CREATED", func(k client.APIKey) string { return ago(k.CreatedAt) }, true},
	},
}

// member resolves a member by id, email or exact name.
func member(ctx context.Context, c *client.Client, ref string) (client.Member, error) {
	ms, reqID, err := listMembers(ctx, c)
	if err != nil {
		return client.Member{}, err
	}
	return resolveRef("member", ref, ms, reqID,
		func(m client.Member) string { return m.ID },
		func(m client.Member) string { return m.Email },
		func(m client.Member) string { return m.Name })
}

// listMembers is every member with the first page's request id.
func listMembers(ctx context.Context, c *client.Client) ([]client.Member, string, error) {
	var (
		all    []client.Member
		reqID  string
		cursor string
	)
	for {
		var page []client.Member
		meta, err := c.Do(ctx, "GET", "/v1/members?limit=500"+cursorParam(cursor), nil, &page)
		if err != nil {
			return nil, "", err
		}
		if reqID == "" {
			reqID = meta.RequestID
		}
		all = append(all, page...)
		if meta.NextCursor == nil || *meta.NextCursor == "" {
			return all, reqID, nil
		}
		cursor = *meta.NextCursor
	}
}

func cursorParam(c string) string {
	if c == "" {
		return ""
	}
	return "&cursor=" + url.QueryEscape(c)
}

// apiKey resolves a key by id or name: the caller's keys, then, for an
// admin, the org's.
func apiKey(ctx context.Context, c *client.Client, ref string) (client.APIKey, error) {
	var (
		k        client.APIKey
		notFound error
	)
	for _, all := range []bool{false, true} {
		ks, err := c.APIKeys(ctx, all)
		if err != nil {
			if all {
				break // not an admin: the first answer stands
			}
			return k, err
		}
		// Revoked keys keep their names; the live one is meant.
		var live []client.APIKey
		for _, x := range ks {
			if x.Status == "active" || x.ID == ref {
				live = append(live, x)
			}
		}
		k, err = resolveRef("API key", ref, live, "",
			func(k client.APIKey) string { return k.ID },
			func(k client.APIKey) string { return k.Name })
		if client.ErrorCode(err) != "not_found" {
			return k, err
		}
		if notFound == nil {
			notFound = err
		}
	}
	return k, notFound
}

func (a *app) completeMembers(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "remove" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Member, error) {
		return c.Members(ctx)
	}, func(m client.Member) string { return firstOf(m.Email, m.Name, m.ID) }, func(m client.Member) string { return m.Name + " (" + m.Role + ")" })(cmd, args, toComplete)
}

func (a *app) completeKeys(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.APIKey, error) {
		ks, err := c.APIKeys(ctx, false)
		var live []client.APIKey
		for _, k := range ks {
			if k.Status == "active" {
				live = append(live, k)
			}
		}
		return live, err
	}, func(k client.APIKey) string { return k.ID }, func(k client.APIKey) string { return k.Name })(cmd, args, toComplete)
}

var roles = cobra.FixedCompletions([]string{"admin", "member"}, cobra.ShellCompDirectiveNoFileComp)

func (a *app) addOrgCommands(root *cobra.Command) {
	mb := &cobra.Command{Use: "member", Aliases: []string{"members"}, Short: "Members of the organization (named by id, email or name)"}
	mb.AddCommand(&cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List members", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ms, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, ms, memberTable)
		}})

	var email, role string
	add := &cobra.Command{Use: "add NAME", Short: "Add a member (admins)", Args: cobra.ExactArgs(1),
		Example: "  berth member add \"Ada Lovelace\" --email ada@example.com --role member\n" +
			"  berth key create ada-laptop --for ada@example.com   # then give Ada the key",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			m, err := c.AddMember(cmd.Context(), args[0], email, role)
			if err != nil {
				return err
			}
			return a.mutated(m, m.ID, "member %s added as %s (%s)", m.Name, m.Role, m.ID)
		}}
	add.Flags().StringVar(&email, "email", "", "email address")
	add.Flags().StringVar(&role, "role", "member", "admin or member")
	_ = add.RegisterFlagCompletionFunc("role", roles) // the flag exists

	roleCmd := &cobra.Command{Use: "role MEMBER admin|member", Short: "Change a member's role (admins)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return roles(cmd, args, toComplete)
			}
			return a.completeMembers(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			old, err := member(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			m, err := c.SetMemberRole(cmd.Context(), old.ID, args[1])
			if err != nil {
				return err
			}
			return a.mutated(m, m.ID, "member %s: role %s → %s", m.Name, old.Role, m.Role)
		}}

	remove := &cobra.Command{Use: "remove MEMBER...", Aliases: []string{"rm"}, Short: "Remove members (admins)", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeMembers,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				m, err := member(cmd.Context(), c, ref)
				if err == nil {
					err = c.RemoveMember(cmd.Context(), m.ID)
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if err := a.mutated(map[string]any{"id": m.ID, "removed": true}, m.ID, "member %s removed (%s)", m.Name, m.ID); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
	mb.AddCommand(add, roleCmd, remove)
	root.AddCommand(mb)

	kc := &cobra.Command{Use: "key", Aliases: []string{"keys", "api-key"}, Short: "API keys (named by id or name)"}
	var (
		req    client.KeyRequest
		scopes []string
		owner  string
	)
	create := &cobra.Command{Use: "create NAME", Short: "Create an API key; its secret is shown once",
		Long: "Create an API key. Its secret is printed once, on stdout (alone with -q): store it\n" +
			"then, the server keeps only a hash. --scopes narrows it (default: everything its owner may do).",
		Example: "  berth key create ci --scopes sandbox:*,files:read --expires-in 90d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			for _, s := range scopes {
				for _, x := range strings.Split(s, ",") {
					if x = strings.TrimSpace(x); x != "" {
						req.Scopes = append(req.Scopes, x)
					}
				}
			}
			if owner != "" {
				m, err := member(cmd.Context(), c, owner)
				if err != nil {
					return err
				}
				req.UserID = m.ID
			}
			k, err := c.CreateAPIKey(cmd.Context(), req)
			if err != nil {
				return err
			}
			a.warnf("berth: this is the only time the key's secret is shown: store it now\n")
			switch {
			case a.flags.output == "json" || a.flags.output == "yaml":
				return a.mutated(k, k.ID, "")
			case a.flags.quiet:
				return a.printf("%s\n", k.Key)
			}
			return a.printf("API key %s created (%s, scopes %s)\n%s\n", k.Name, k.ID, strings.Join(k.Scopes, ","), k.Key)
		}}
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "scopes, comma-separated (e.g. sandbox:*,files:read; default: all)")
	create.Flags().StringVar(&req.ExpiresIn, "expires-in", "", "30d, 90d or 1y (default: never)")
	create.Flags().StringVar(&owner, "for", "", "the member the key is for (admins; default: you)")
	_ = create.RegisterFlagCompletionFunc("expires-in", cobra.FixedCompletions([]string{"30d", "90d", "1y"}, cobra.ShellCompDirectiveNoFileComp))
	_ = create.RegisterFlagCompletionFunc("for", a.completeMembers)
	_ = create.RegisterFlagCompletionFunc("scopes", cobra.FixedCompletions([]string{"*", "sandbox:*", "sandbox:create", "sandbox:read", "sandbox:write",
		"agent:*", "agent:run", "agent:read", "agent:write", "files:*", "files:read", "files:write",
		"org:*", "org:read", "org:write", "org:members", "admin:*"}, cobra.ShellCompDirectiveNoFileComp))

	var all bool
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List API keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ks, err := c.APIKeys(cmd.Context(), all)
			if err != nil {
				return err
			}
			return printList(a, ks, keyTable)
		}}
	list.Flags().BoolVar(&all, "all", false, "every key of the organization (admins)")

	revoke := &cobra.Command{Use: "revoke KEY...", Short: "Revoke API keys (from their next request on)", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeKeys,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				k, err := apiKey(cmd.Context(), c, ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				rk, err := c.RevokeAPIKey(cmd.Context(), k.ID)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if err := a.mutated(rk, rk.ID, "API key %s revoked (%s)", rk.Name, rk.ID); err != nil {
					return err
				}
			}
			return joinErrors(a, errs)
		}}
	kc.AddCommand(create, list, revoke)
	root.AddCommand(kc)
}
