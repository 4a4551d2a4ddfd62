package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

var snapshotTable = table[client.Snapshot]{
	ID: func(s client.Snapshot) string { return s.ID },
	Columns: []column[client.Snapshot]{
		{"ID", func(s client.Snapshot) string { return s.ID }, false},
		{"NAME", func(s client.Snapshot) string { return s.Name }, false},
		{"CREATED", func(s client.Snapshot) string { return ago(s.CreatedAt) }, false},
		// What only this snapshot holds: what deleting it frees.
		{"SIZE", func(s client.Snapshot) string {
			if s.SizeBytes == nil {
				return "-"
			}
			return bytesCell(*s.SizeBytes)
		}, false},
		{"BY", func(s client.Snapshot) string { return orDash(s.CreatedBy) }, true},
	},
}

// snapshot resolves a snapshot of workspace ws by id or name.
func snapshotOf(ctx context.Context, c *client.Client, ws, ref string) (*client.Snapshot, error) {
	l, err := c.Snapshots(ctx, ws)
	if err != nil {
		return nil, err
	}
	s, err := resolveRef("snapshot", ref, l, "",
		func(s client.Snapshot) string { return s.ID },
		func(s client.Snapshot) string { return s.Name })
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// addSnapshotCommands adds the snapshot and clone commands under
// `berth workspace` (btrfs storage; the server answers not_supported on dir).
func (a *app) addSnapshotCommands(ws *cobra.Command) {
	snap := &cobra.Command{Use: "snapshot WORKSPACE NAME", Short: "Snapshot a workspace (read-only, instant; btrfs storage)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			s, err := c.CreateSnapshot(cmd.Context(), w.ID, args[1])
			if err != nil {
				return err
			}
			return a.mutated(s, s.ID, "snapshot %s of workspace %s created (%s)", s.Name, w.Slug, s.ID)
		}}

	list := &cobra.Command{Use: "snapshots WORKSPACE", Short: "List a workspace's snapshots", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			l, err := c.Snapshots(cmd.Context(), w.ID)
			if err != nil {
				return err
			}
			return printList(a, l, snapshotTable)
		}}

	del := &cobra.Command{Use: "snapshot-delete WORKSPACE SNAPSHOT", Short: "Delete a snapshot (by id or name)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			s, err := snapshotOf(cmd.Context(), c, w.ID, args[1])
			if err != nil {
				return err
			}
			if err := c.DeleteSnapshot(cmd.Context(), w.ID, s.ID); err != nil {
				return err
			}
			return a.mutated(map[string]any{"id": s.ID, "deleted": true}, s.ID, "snapshot %s of workspace %s deleted (%s)", s.Name, w.Slug, s.ID)
		}}

	var force bool
	restore := &cobra.Command{Use: "restore WORKSPACE SNAPSHOT", Short: "Return a workspace to a snapshot (by id or name)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			s, err := snapshotOf(cmd.Context(), c, w.ID, args[1])
			if err != nil {
				return err
			}
			r, err := c.RestoreSnapshot(cmd.Context(), w.ID, s.ID, force)
			if err != nil {
				return err
			}
			return a.mutated(r, s.ID, "workspace %s restored to snapshot %s (%d sandbox(es) restarted)", w.Slug, s.Name, len(r.RestartedSandboxes))
		}}
	restore.Flags().BoolVar(&force, "force", false, "restore even while running sandboxes mount it read-write (they are stopped and started again)")

	var req client.CloneRequest
	var from string
	clone := &cobra.Command{Use: "clone WORKSPACE NAME", Short: "Make a new workspace with a workspace's contents (copy-on-write; btrfs storage)", Args: cobra.ExactArgs(2),
		ValidArgsFunction: a.completeWorkspaces,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, w, err := a.clientAndWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			req.Name = args[1]
			if from != "" {
				s, err := snapshotOf(cmd.Context(), c, w.ID, from)
				if err != nil {
					return err
				}
				req.SnapshotID = s.ID
			}
			nw, err := c.CloneWorkspace(cmd.Context(), w.ID, req)
			if err != nil {
				return err
			}
			return a.mutated(nw, nw.ID, "workspace %s cloned from %s (%s)", nw.Slug, w.Slug, nw.ID)
		}}
	clone.Flags().StringVar(&req.Slug, "slug", "", "slug (default: derived from the name)")
	clone.Flags().StringVar(&from, "snapshot", "", "clone this snapshot (id or name) instead of the live tree")

	ws.AddCommand(snap, list, del, restore, clone)
}
