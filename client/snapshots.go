package client

import (
	"context"
	"net/url"
	"time"
)

// Snapshot is a read-only snapshot of a workspace (btrfs storage driver;
// the routes answer not_supported on the dir driver).
type Snapshot struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspaceId"`
	Name        string    `json:"name"`
	CreatedBy   string    `json:"createdBy"`
	CreatedAt   time.Time `json:"createdAt"`
	// SizeBytes only this snapshot holds (what deleting it frees), as the
	// storage driver counts it now; ReferencedBytes its whole tree.
	SizeBytes       *int64 `json:"sizeBytes"`
	ReferencedBytes *int64 `json:"referencedBytes"`
}

// SnapshotRestore is the answer of RestoreSnapshot.
type SnapshotRestore struct {
	Snapshot Snapshot `json:"snapshot"`
	// RestartedSandboxes were stopped for the restore and started again on
	// the restored tree (a forced restore, or read-only mounts).
	RestartedSandboxes []string `json:"restartedSandboxes"`
}

// CloneRequest is the body of CloneWorkspace.
type CloneRequest struct {
	Name string `json:"name"`
	Slug string `json:"slug,omitempty"`
	// SnapshotID clones that snapshot instead of the live tree.
	SnapshotID string `json:"snapshotId,omitempty"`
}

func snapshotsURL(ws string) string { return "/v1/workspaces/" + url.PathEscape(ws) + "/snapshots" }

// CreateSnapshot snapshots workspace ws under name.
func (c *Client) CreateSnapshot(ctx context.Context, ws, name string) (*Snapshot, error) {
	var s Snapshot
	_, err := c.Do(ctx, "POST", snapshotsURL(ws), map[string]string{"name": name}, &s)
	return &s, err
}

// Snapshots lists every snapshot of workspace ws, oldest first.
func (c *Client) Snapshots(ctx context.Context, ws string) ([]Snapshot, error) {
	return listAll[Snapshot](ctx, c, snapshotsURL(ws))
}

// Snapshot returns one snapshot of workspace ws.
func (c *Client) Snapshot(ctx context.Context, ws, id string) (*Snapshot, error) {
	var s Snapshot
	_, err := c.Do(ctx, "GET", snapshotsURL(ws)+"/"+url.PathEscape(id), nil, &s)
	return &s, err
}

// DeleteSnapshot deletes one snapshot of workspace ws.
func (c *Client) DeleteSnapshot(ctx context.Context, ws, id string) error {
	_, err := c.Do(ctx, "DELETE", snapshotsURL(ws)+"/"+url.PathEscape(id), nil, nil)
	return err
}

// RestoreSnapshot returns workspace ws to snapshot id. Without force it is
// refused (conflict) while a running sandbox mounts ws read-write; with
// force those sandboxes are stopped and started again on the restored tree.
func (c *Client) RestoreSnapshot(ctx context.Context, ws, id string, force bool) (*SnapshotRestore, error) {
	var r SnapshotRestore
	_, err := c.Do(ctx, "POST", snapshotsURL(ws)+"/"+url.PathEscape(id)+"/restore", map[string]bool{"force": force}, &r)
	return &r, err
}

// CloneWorkspace makes a new workspace, owned by the caller, with the
// contents of ws (or of one of its snapshots) and ws's quota.
func (c *Client) CloneWorkspace(ctx context.Context, ws string, in CloneRequest) (*Workspace, error) {
	var w Workspace
	_, err := c.Do(ctx, "POST", "/v1/workspaces/"+url.PathEscape(ws)+"/clone", in, &w)
	return &w, err
}
