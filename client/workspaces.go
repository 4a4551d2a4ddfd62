package client

import (
	"context"
	"net/url"
	"time"
)

// Workspace is a workspace's metadata.
type Workspace struct {
	ID             string     `json:"id"`
	Slug           string     `json:"slug"`
	Name           string     `json:"name"`
	IsPersonal     bool       `json:"isPersonal"`
	OwnerUserID    string     `json:"ownerUserId"`
	SizeBytes      int64      `json:"sizeBytes"`
	QuotaBytes     *int64     `json:"quotaBytes"`
	CreatedAt      time.Time  `json:"createdAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	LastAccessedAt *time.Time `json:"lastAccessedAt"`
}

// WorkspaceList is the workspace list's answer.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
	Storage    struct {
		UsedBytes  int64  `json:"usedBytes"`
		QuotaBytes *int64 `json:"quotaBytes"`
		Unlimited  bool   `json:"unlimited"`
	} `json:"storage"`
}

// WorkspaceRequest is the body of a workspace creation.
type WorkspaceRequest struct {
	Name       string `json:"name"`
	Slug       string `json:"slug,omitempty"`
	Personal   bool   `json:"personal,omitempty"`
	QuotaBytes *int64 `json:"quotaBytes,omitempty"`
}

// WorkspaceUsage says who references a workspace.
type WorkspaceUsage struct {
	WorkspaceID   string `json:"workspaceId"`
	WorkspaceName string `json:"workspaceName"`
	InUse         bool   `json:"inUse"`
	Counts        struct {
		MountedSandboxes int `json:"mountedSandboxes"`
		Agents           int `json:"agents"`
	} `json:"counts"`
	MountedSandboxes []struct {
		SandboxID     string `json:"sandboxId"`
		SandboxName   string `json:"sandboxName"`
		SandboxStatus string `json:"sandboxStatus"`
		MountPath     string `json:"mountPath"`
		ReadOnly      bool   `json:"readOnly"`
		SnapshotID    string `json:"snapshotId,omitempty"`
	} `json:"mountedSandboxes"`
	Agents []struct {
		AgentID       string `json:"agentId"`
		Slug          string `json:"slug"`
		ExecutionMode string `json:"executionMode"`
		SandboxID     string `json:"sandboxId"`
	} `json:"agents"`
}

// CreateWorkspace creates a workspace.
func (c *Client) CreateWorkspace(ctx context.Context, in WorkspaceRequest) (*Workspace, error) {
	var w Workspace
	_, err := c.Do(ctx, "POST", "/v1/workspaces", in, &w)
	return &w, err
}

// Workspaces lists workspaces (all: every workspace of the org, admins only).
func (c *Client) Workspaces(ctx context.Context, all bool) (*WorkspaceList, error) {
	var l WorkspaceList
	_, err := c.Do(ctx, "GET", "/v1/workspaces"+query("all", boolStr(all)), nil, &l)
	return &l, err
}

// Workspace returns one workspace.
func (c *Client) Workspace(ctx context.Context, id string) (*Workspace, error) {
	var w Workspace
	_, err := c.Do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(id), nil, &w)
	return &w, err
}

// UpdateWorkspace sends a PATCH body as given (name and/or quotaBytes).
func (c *Client) UpdateWorkspace(ctx context.Context, id string, patch map[string]any) (*Workspace, error) {
	var w Workspace
	_, err := c.Do(ctx, "PATCH", "/v1/workspaces/"+url.PathEscape(id), patch, &w)
	return &w, err
}

// DeleteWorkspace deletes a workspace; force deletes one in use.
func (c *Client) DeleteWorkspace(ctx context.Context, id string, force bool) error {
	_, err := c.Do(ctx, "DELETE", "/v1/workspaces/"+url.PathEscape(id)+query("force", boolStr(force)), nil, nil)
	return err
}

// WorkspaceUsage reports who references a workspace.
func (c *Client) WorkspaceUsage(ctx context.Context, id string) (*WorkspaceUsage, error) {
	var u WorkspaceUsage
	_, err := c.Do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(id)+"/usage", nil, &u)
	return &u, err
}

// WorkspaceAccess lists the members granted a workspace.
func (c *Client) WorkspaceAccess(ctx context.Context, id string) ([]string, error) {
	var out struct {
		UserIDs []string `json:"userIds"`
	}
	_, err := c.Do(ctx, "GET", "/v1/workspaces/"+url.PathEscape(id)+"/access", nil, &out)
	return out.UserIDs, err
}

// SetWorkspaceAccess replaces a workspace's grants.
func (c *Client) SetWorkspaceAccess(ctx context.Context, id string, userIDs []string) ([]string, error) {
	var out struct {
		UserIDs []string `json:"userIds"`
	}
	_, err := c.Do(ctx, "PUT", "/v1/workspaces/"+url.PathEscape(id)+"/access", map[string][]string{"userIds": userIDs}, &out)
	return out.UserIDs, err
}

// RenameWorkspace gives a workspace a new display name (its slug stays).
func (c *Client) RenameWorkspace(ctx context.Context, id, name string) (*Workspace, error) {
	return c.UpdateWorkspace(ctx, id, map[string]any{"name": name})
}

// SetWorkspaceQuota sets a workspace's quota in bytes; nil removes it.
func (c *Client) SetWorkspaceQuota(ctx context.Context, id string, quotaBytes *int64) (*Workspace, error) {
	return c.UpdateWorkspace(ctx, id, map[string]any{"quotaBytes": quotaBytes})
}
