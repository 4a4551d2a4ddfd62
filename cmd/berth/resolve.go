package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// resolveRef finds the item that ref names: its id, else one of its names
// (a slug, a name), tried in order. Not found is a not_found *client.Error
// carrying the request id of the list it was looked up in, so it prints
// like the server's own ("workspace "x" not found (request …)"). A name two
// items share is an error naming their ids.
func resolveRef[T any](kind, ref string, items []T, requestID string, id func(T) string, names ...func(T) string) (T, error) {
	var zero T
	for _, it := range items {
		if id(it) == ref {
			return it, nil
		}
	}
	for _, name := range names {
		var found []T
		for _, it := range items {
			if name(it) == ref {
				found = append(found, it)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			continue
		}
		ids := make([]string, len(found))
		for i, it := range found {
			ids[i] = id(it)
		}
		return zero, fmt.Errorf("%s %q is ambiguous: it names %s; use an id", kind, ref, strings.Join(ids, ", "))
	}
	return zero, &client.Error{Status: http.StatusNotFound, Code: "not_found", RequestID: requestID,
		Message: fmt.Sprintf("%s %q not found", kind, ref)}
}

// workspace resolves a workspace id, slug or exact name. An id is asked
// for directly (the server's 404 says it all); a slug is looked up in the
// caller's workspaces, then, for an admin, in every workspace of the org.
func (a *app) workspace(ctx context.Context, c *client.Client, ref string) (*client.Workspace, error) {
	if w, ok := a.wsCache[ref]; ok {
		return w, nil
	}
	var w *client.Workspace
	if _, err := uuid.Parse(ref); err == nil {
		got, err := c.Workspace(ctx, ref)
		if err != nil {
			return nil, err
		}
		w = got
	} else {
		l, reqID, err := listWorkspaces(ctx, c, false)
		if err != nil {
			return nil, err
		}
		got, err := resolveRef("workspace", ref, l.Workspaces, reqID,
			func(w client.Workspace) string { return w.ID },
			func(w client.Workspace) string { return w.Slug },
			func(w client.Workspace) string { return w.Name })
		if client.ErrorCode(err) == "not_found" {
			// An admin may name a workspace of the org that is not theirs;
			// for anyone else ?all=true is forbidden and the first answer
			// stands.
			if all, allID, aerr := listWorkspaces(ctx, c, true); aerr == nil {
				got, err = resolveRef("workspace", ref, all.Workspaces, allID,
					func(w client.Workspace) string { return w.ID },
					func(w client.Workspace) string { return w.Slug },
					func(w client.Workspace) string { return w.Name })
			}
		}
		if err != nil {
			return nil, err
		}
		w = &got
	}
	if a.wsCache == nil {
		a.wsCache = map[string]*client.Workspace{}
	}
	a.wsCache[ref] = w
	return w, nil
}

// listWorkspaces is the workspace list with its request id.
func listWorkspaces(ctx context.Context, c *client.Client, all bool) (*client.WorkspaceList, string, error) {
	var l client.WorkspaceList
	path := "/v1/workspaces"
	if all {
		path += "?all=true"
	}
	meta, err := c.Do(ctx, "GET", path, nil, &l)
	if err != nil {
		return nil, "", err
	}
	return &l, meta.RequestID, nil
}

// completeWith makes a cobra completion function from a list call: each
// candidate is value(item), described by desc(item). Completion runs the
// CLI with the user's flags and config, so it sees what the commands see;
// any error completes nothing rather than printing into the shell.
func completeWith[T any](a *app, list func(context.Context, *client.Client) ([]T, error), value, desc func(T) string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		c, err := a.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		items, err := list(cmd.Context(), c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, it := range items {
			v := value(it)
			if !strings.HasPrefix(v, toComplete) {
				continue
			}
			if d := desc(it); d != "" {
				v += "\t" + d
			}
			out = append(out, v)
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeWorkspaces completes workspace slugs (the first argument only).
func (a *app) completeWorkspaces(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Workspace, error) {
		l, err := c.Workspaces(ctx, false)
		if err != nil {
			return nil, err
		}
		return l.Workspaces, nil
	}, func(w client.Workspace) string { return w.Slug }, func(w client.Workspace) string { return w.Name })(cmd, args, toComplete)
}
