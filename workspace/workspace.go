// Package workspace owns workspace metadata — durable, organization-owned
// storage directories with slugs, quotas, grants and visibility rules — and,
// through workspace/files, their contents.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/workspace/storage"
)

// Workspace is the metadata of one workspace.
type Workspace struct {
	ID             string     `json:"id" db:"id"`
	OrgID          string     `json:"-" db:"org_id"`
	Slug           string     `json:"slug" db:"slug"`
	Name           string     `json:"name" db:"name"`
	IsPersonal     bool       `json:"isPersonal" db:"is_personal"`
	OwnerUserID    string     `json:"ownerUserId" db:"owner_user_id"`
	SizeBytes      int64      `json:"sizeBytes" db:"-"`
	QuotaBytes     *int64     `json:"quotaBytes" db:"quota_bytes"`
	CreatedAt      time.Time  `json:"createdAt" db:"created_at"`
	UpdatedAt      time.Time  `json:"updatedAt" db:"updated_at"`
	LastAccessedAt *time.Time `json:"lastAccessedAt" db:"last_accessed_at"`
}

// Storage totals the workspaces of a list.
type Storage struct {
	UsedBytes  int64  `json:"usedBytes"`
	QuotaBytes *int64 `json:"quotaBytes"`
	Unlimited  bool   `json:"unlimited"`
}

// List is the answer of the workspace list.
type List struct {
	Workspaces []Workspace `json:"workspaces"`
	Storage    Storage     `json:"storage"`
}

// MountedSandbox is a sandbox that mounts a workspace.
type MountedSandbox struct {
	SandboxID     string `json:"sandboxId"`
	SandboxName   string `json:"sandboxName"`
	SandboxStatus string `json:"sandboxStatus"`
	MountPath     string `json:"mountPath"`
	ReadOnly      bool   `json:"readOnly"`
	// SnapshotID is set when the sandbox mounts one of the workspace's
	// snapshots rather than its live tree.
	SnapshotID  string `json:"snapshotId,omitempty"`
	OwnerUserID string `json:"-"` // decides who may see the entry (Usage)
}

// AgentUse is an agent that uses a workspace.
type AgentUse struct {
	AgentID       string `json:"agentId"`
	Slug          string `json:"slug"`
	ExecutionMode string `json:"executionMode"`
	SandboxID     string `json:"sandboxId"`
	OwnerUserID   string `json:"-"` // decides who may see the entry (Usage)
}

// Usage says who references a workspace. Counts always cover every
// reference; the lists show every one only to admins and the workspace's
// owner, and to other grantees only their own sandboxes and agents (the
// others' ids, names and statuses are not theirs to see).
type Usage struct {
	WorkspaceID      string           `json:"workspaceId"`
	WorkspaceName    string           `json:"workspaceName"`
	InUse            bool             `json:"inUse"`
	Counts           UsageCounts      `json:"counts"`
	MountedSandboxes []MountedSandbox `json:"mountedSandboxes"`
	Agents           []AgentUse       `json:"agents"`
}

// UsageCounts are the lengths of Usage's lists.
type UsageCounts struct {
	MountedSandboxes int `json:"mountedSandboxes"`
	Agents           int `json:"agents"`
}

// UsageSource reports the live references to a workspace. The sandbox and
// agent packages provide them; workspace cannot import those (they import it).
type UsageSource func(ctx context.Context, workspaceID string) ([]MountedSandbox, []AgentUse, error)

// SizeFunc reports the bytes a workspace directory holds.
type SizeFunc func(ctx context.Context, id, dir string) (int64, error)

// AccessNotifier is told, after a change is committed, that users may
// have lost access to workspaces (berth.AccessFeed implements it).
type AccessNotifier interface {
	AccessLost(ctx context.Context, l berth.AccessLoss)
}

// Service is the workspace metadata store.
type Service struct {
	db      *db.DB
	dataDir string
	access  AccessNotifier
	log     *slog.Logger
	now     func() time.Time
	sources []UsageSource
	// Size reports a workspace's size; the default walks nothing and says 0
	// until the file layer installs its tracker (NewFiles).
	Size SizeFunc
	// onDelete runs after a workspace's row is gone and before its
	// directory is removed (NewFiles closes the open directory there).
	onDelete []func(id string)

	pinOnce sync.Once // PinSupported probes once
	pinErr  error

	// storage makes, removes and limits workspace trees: the dir driver
	// unless the server installs another (SetStorage).
	storage storage.Driver
	// onReplace runs before a workspace's live tree is replaced by a
	// restore (NewFiles closes the open directory there).
	onReplace []func(id string)
	// restarter stops and starts the sandboxes mounting a workspace around
	// a forced restore (SetRestarter).
	restarter Restarter
}

// New returns a Service keeping workspace directories under dataDir/workspaces.
// access is told when grants are replaced, and log gets the failures the
// service does not return (neither may be nil).
func New(d *db.DB, dataDir string, access AccessNotifier, log *slog.Logger) *Service {
	if access == nil || log == nil {
		panic("workspace.New: nil AccessNotifier or logger")
	}
	return &Service{db: d, dataDir: dataDir, access: access, log: log, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		storage: storage.NewDir(filepath.Join(dataDir, "workspaces"))}
}

// SetStorage replaces the storage driver (dir by default). Its Root must be
// dataDir/workspaces: Dir, pins and the file layer assume that layout. It
// is for server setup, before the service is used.
func (s *Service) SetStorage(d storage.Driver) { s.storage = d }

// Storage is the service's storage driver.
func (s *Service) Storage() storage.Driver {
	if s.storage == nil { // a Service made without New, as some tests do
		return storage.NewDir(filepath.Join(s.dataDir, "workspaces"))
	}
	return s.storage
}

// AddUsageSource registers a provider of workspace references.
func (s *Service) AddUsageSource(u UsageSource) { s.sources = append(s.sources, u) }

// DataDir is the server's data directory: a host path, never to be shown
// to clients.
func (s *Service) DataDir() string { return s.dataDir }

// Dir is the host directory of workspace id.
func (s *Service) Dir(id string) string { return s.Storage().Path(id) }

var slugRe = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// ValidSlug checks a caller-supplied slug.
func ValidSlug(slug string) error {
	if !slugRe.MatchString(slug) {
		return berth.FieldErrorf(berth.Invalid, "slug", "slug must be 1..63 characters of lowercase a-z, 0-9 and '-'")
	}
	return nil
}

// SlugFrom derives a slug from a display name.
func SlugFrom(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		s = "workspace"
	}
	return s
}

func validName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\x00\n\r") {
		return "", berth.FieldErrorf(berth.Invalid, "name", "name is required: 1..200 characters, no control characters")
	}
	return name, nil
}

func validQuota(q *int64) error {
	if q != nil && *q <= 0 {
		return berth.FieldErrorf(berth.Invalid, "quotaBytes", "quotaBytes must be a positive number of bytes (omit or null for unlimited)")
	}
	return nil
}

const wsCols = `w.id, w.org_id, w.slug, w.name, w.is_personal, w.owner_user_id, w.quota_bytes, w.created_at, w.updated_at, w.last_accessed_at`

// visibleClause restricts w to what c may see and use: admins see their
// whole org; members see what they own and organization workspaces granted
// to them. It is the one access rule: reads, writes, listings and mounts
// (through Denied) all go through it.
func visibleClause(c *berth.Caller) (string, []any) {
	if c.IsAdmin() {
		return `w.org_id = ?`, []any{c.OrgID}
	}
	own, args := ownOrGranted(c.UserID)
	return `w.org_id = ? AND ` + own, append([]any{c.OrgID}, args...)
}

// ownOrGranted restricts w to what userID owns and the organization (not
// personal) workspaces granted to them.
func ownOrGranted(userID string) (string, []any) {
	return `(w.owner_user_id = ? OR (w.is_personal = FALSE AND EXISTS
		(SELECT 1 FROM workspace_access a WHERE a.workspace_id = w.id AND a.user_id = ?)))`, []any{userID, userID}
}

// CreateInput is the body of POST /v1/workspaces.
type CreateInput struct {
	Name       string  `json:"name"`
	Slug       *string `json:"slug"`
	Personal   bool    `json:"personal"`
	QuotaBytes *int64  `json:"quotaBytes"`
}

// Create makes a workspace owned by the caller and its directory.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Workspace, error) {
	c, err := auth.Require(ctx, "files:write")
	if err != nil {
		return nil, err
	}
	name, err := validName(in.Name)
	if err != nil {
		return nil, err
	}
	if err := validQuota(in.QuotaBytes); err != nil {
		return nil, err
	}
	derived := in.Slug == nil
	slug := SlugFrom(name)
	if !derived {
		slug = *in.Slug
		if err := ValidSlug(slug); err != nil {
			return nil, err
		}
	}
	now := s.now()
	w := &Workspace{ID: uuid.NewString(), OrgID: c.OrgID, Name: name, IsPersonal: in.Personal,
		OwnerUserID: c.UserID, QuotaBytes: in.QuotaBytes, CreatedAt: now, UpdatedAt: now}
	// The directory exists before the row so that a visible workspace always
	// has one; a failed insert removes it again.
	if err := s.Storage().Create(ctx, w.ID); err != nil {
		return nil, fmt.Errorf("create workspace directory: %w", err)
	}
	if err := s.limitNew(ctx, w); err != nil {
		return nil, err
	}
	if err := s.insert(ctx, w, slug, derived); err != nil {
		return nil, err
	}
	return w, nil
}

// limitNew sets the kernel quota of a new workspace's tree, removing the
// tree when that fails.
func (s *Service) limitNew(ctx context.Context, w *Workspace) error {
	if w.QuotaBytes == nil || !s.Storage().Caps().KernelQuota {
		return nil
	}
	if err := s.Storage().SetQuota(ctx, w.ID, *w.QuotaBytes); err != nil {
		return errors.Join(fmt.Errorf("set workspace quota: %w", err), s.Storage().Remove(ctx, w.ID))
	}
	return nil
}

// insert adds the row of a new workspace whose tree exists, with slug (a
// derived one gets a -2, -3... suffix when taken). When it fails the tree
// is removed.
func (s *Service) insert(ctx context.Context, w *Workspace, slug string, derived bool) error {
	var err error
	for i := 1; ; i++ {
		w.Slug = slug
		if i > 1 {
			suffix := fmt.Sprintf("-%d", i)
			w.Slug = strings.TrimRight(slug[:min(len(slug), 63-len(suffix))], "-") + suffix
		}
		_, err = s.db.NamedExecContext(ctx, `INSERT INTO workspaces
			(id, org_id, slug, name, is_personal, owner_user_id, quota_bytes, created_at, updated_at)
			VALUES (:id, :org_id, :slug, :name, :is_personal, :owner_user_id, :quota_bytes, :created_at, :updated_at)`, w)
		err = db.Err(err)
		if derived && berth.IsKind(err, berth.Conflict) && i < 100 {
			continue
		}
		break
	}
	if err != nil {
		// The create's own error is what the caller gets; a directory left
		// behind belongs to no workspace and only takes space.
		if rerr := s.Storage().Remove(context.WithoutCancel(ctx), w.ID); rerr != nil {
			s.log.Error("failed workspace create: removing its directory", "dir", s.Dir(w.ID), "err", rerr)
		}
		if berth.IsKind(err, berth.Conflict) {
			return berth.FieldErrorf(berth.Conflict, "slug", "a workspace with slug %q already exists", w.Slug)
		}
		return err
	}
	return nil
}

// get loads a workspace visible to c, or NotFound.
func (s *Service) get(ctx context.Context, q sqlx.QueryerContext, c *berth.Caller, id string) (*Workspace, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, berth.Errorf(berth.NotFound, "workspace %q not found", id)
	}
	where, args := visibleClause(c)
	var w Workspace
	err := sqlx.GetContext(ctx, q, &w, s.db.Rebind(`SELECT `+wsCols+` FROM workspaces w WHERE w.id = ? AND `+where), append([]any{id}, args...)...)
	if err != nil {
		err = db.Err(err)
		if berth.IsKind(err, berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "workspace %q not found", id)
		}
		return nil, err
	}
	return &w, nil
}

func (s *Service) fillSize(ctx context.Context, w *Workspace) {
	if s.Size == nil {
		return
	}
	if n, err := s.Size(ctx, w.ID, s.Dir(w.ID)); err == nil {
		w.SizeBytes = n
	}
}

// Get returns one visible workspace (files:read).
func (s *Service) Get(ctx context.Context, id string) (*Workspace, error) {
	c, err := auth.Require(ctx, "files:read")
	if err != nil {
		return nil, err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	s.fillSize(ctx, w)
	return w, nil
}

// Resolve returns a workspace visible to the caller for an operation that
// needs scope (files:read or files:write), without computing its size.
func (s *Service) Resolve(ctx context.Context, id, scope string) (*Workspace, error) {
	c, err := auth.Require(ctx, scope)
	if err != nil {
		return nil, err
	}
	return s.get(ctx, s.db, c, id)
}

// List returns the caller's workspaces — those they own or were granted —
// or, with all (admins only), every workspace of the org.
func (s *Service) List(ctx context.Context, all bool) (*List, error) {
	c, err := auth.Require(ctx, "files:read")
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + wsCols + ` FROM workspaces w WHERE w.org_id = ?`
	args := []any{c.OrgID}
	if all {
		if !c.IsAdmin() {
			return nil, berth.Errorf(berth.Forbidden, "only organization admins may list every workspace (all=true)")
		}
	} else {
		own, oargs := ownOrGranted(c.UserID)
		q += ` AND ` + own
		args = append(args, oargs...)
	}
	out := &List{Workspaces: []Workspace{}}
	if err := s.db.SelectContext(ctx, &out.Workspaces, s.db.Rebind(q+` ORDER BY w.created_at, w.id`), args...); err != nil {
		return nil, db.Err(err)
	}
	var quota int64
	for i := range out.Workspaces {
		w := &out.Workspaces[i]
		s.fillSize(ctx, w)
		out.Storage.UsedBytes += w.SizeBytes
		if w.QuotaBytes == nil {
			out.Storage.Unlimited = true
		} else {
			quota += *w.QuotaBytes
		}
	}
	if !out.Storage.Unlimited {
		out.Storage.QuotaBytes = &quota
	}
	return out, nil
}

// UpdateInput is the body of PATCH /v1/workspaces/{id}. A quotaBytes of
// null in the JSON clears the quota; absent leaves it.
type UpdateInput struct {
	Name       *string
	QuotaSet   bool
	QuotaBytes *int64
}

// Update renames a workspace and, for admins, changes its quota.
func (s *Service) Update(ctx context.Context, id string, in UpdateInput) (*Workspace, error) {
	c, err := auth.Require(ctx, "files:write")
	if err != nil {
		return nil, err
	}
	if in.Name == nil && !in.QuotaSet {
		return nil, berth.Errorf(berth.Invalid, "nothing to change: give name and/or quotaBytes")
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if in.Name != nil {
		if w.Name, err = validName(*in.Name); err != nil {
			return nil, err
		}
	}
	if in.QuotaSet {
		if !c.IsAdmin() {
			return nil, berth.Errorf(berth.Forbidden, "only organization admins may change quotaBytes")
		}
		if err := validQuota(in.QuotaBytes); err != nil {
			return nil, err
		}
		w.QuotaBytes = in.QuotaBytes
		// A kernel quota is set before the row: a limit the kernel refused
		// must not show as the workspace's quota.
		if s.Storage().Caps().KernelQuota {
			var limit int64
			if w.QuotaBytes != nil {
				limit = *w.QuotaBytes
			}
			if err := s.Storage().SetQuota(ctx, w.ID, limit); err != nil {
				return nil, fmt.Errorf("set workspace quota: %w", err)
			}
		}
	}
	w.UpdatedAt = s.now()
	if _, err := s.db.NamedExecContext(ctx, `UPDATE workspaces SET name = :name, quota_bytes = :quota_bytes, updated_at = :updated_at WHERE id = :id`, w); err != nil {
		return nil, db.Err(err)
	}
	s.fillSize(ctx, w)
	return w, nil
}

// Usage reports who references a visible workspace: to admins and the
// owner in full, to other grantees with counts of all and lists of their
// own references only.
func (s *Service) Usage(ctx context.Context, id string) (*Usage, error) {
	c, err := auth.Require(ctx, "files:read")
	if err != nil {
		return nil, err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	u, err := s.usage(ctx, w)
	if err != nil || c.IsAdmin() || w.OwnerUserID == c.UserID {
		return u, err
	}
	u.MountedSandboxes = slices.DeleteFunc(u.MountedSandboxes, func(m MountedSandbox) bool { return m.OwnerUserID != c.UserID })
	u.Agents = slices.DeleteFunc(u.Agents, func(a AgentUse) bool { return a.OwnerUserID != c.UserID })
	return u, nil
}

func (s *Service) usage(ctx context.Context, w *Workspace) (*Usage, error) {
	u := &Usage{WorkspaceID: w.ID, WorkspaceName: w.Name, MountedSandboxes: []MountedSandbox{}, Agents: []AgentUse{}}
	for _, src := range s.sources {
		sbx, agents, err := src(ctx, w.ID)
		if err != nil {
			return nil, err
		}
		u.MountedSandboxes = append(u.MountedSandboxes, sbx...)
		u.Agents = append(u.Agents, agents...)
	}
	u.Counts = UsageCounts{MountedSandboxes: len(u.MountedSandboxes), Agents: len(u.Agents)}
	u.InUse = u.Counts.MountedSandboxes+u.Counts.Agents > 0
	return u, nil
}

// Delete removes a workspace and its directory (owner or admin). While a
// sandbox mounts it or an agent uses it, Delete fails with InUse unless force.
func (s *Service) Delete(ctx context.Context, id string, force bool) error {
	c, err := auth.Require(ctx, "files:write")
	if err != nil {
		return err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return err
	}
	if w.OwnerUserID != c.UserID && !c.IsAdmin() {
		return berth.Errorf(berth.Forbidden, "only the workspace's owner or an admin may delete it")
	}
	if !force {
		u, err := s.usage(ctx, w)
		if err != nil {
			return err
		}
		if u.InUse {
			return berth.Errorf(berth.InUse, "workspace %q is in use by %d sandbox(es) and %d agent(s); pass force=true to delete it anyway",
				w.Slug, u.Counts.MountedSandboxes, u.Counts.Agents)
		}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM workspaces WHERE id = ?`), w.ID); err != nil {
		return db.Err(err)
	}
	for _, fn := range s.onDelete {
		fn(w.ID)
	}
	// A forced delete may meet mount points pinned for sandboxes that still
	// mount this workspace (see PinMountPoints): force means they lose them.
	if err := UnpinTree(s.Dir(w.ID)); err != nil {
		return fmt.Errorf("unpin workspace directory: %w", err)
	}
	if err := s.Storage().Remove(ctx, w.ID); err != nil {
		return fmt.Errorf("remove workspace directory: %w", err)
	}
	return nil
}

// Access lists the members granted an organization workspace (admin).
func (s *Service) Access(ctx context.Context, id string) ([]string, error) {
	c, err := auth.RequireAdmin(ctx, "org:read")
	if err != nil {
		return nil, err
	}
	if _, err := s.get(ctx, s.db, c, id); err != nil {
		return nil, err
	}
	ids := []string{}
	err = s.db.SelectContext(ctx, &ids, s.db.Rebind(`SELECT user_id FROM workspace_access WHERE workspace_id = ? ORDER BY user_id`), id)
	return ids, db.Err(err)
}

// SetAccess replaces the grants of an organization workspace (admin).
func (s *Service) SetAccess(ctx context.Context, id string, userIDs []string) ([]string, error) {
	c, err := auth.RequireAdmin(ctx, "org:members")
	if err != nil {
		return nil, err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if w.IsPersonal {
		return nil, berth.Errorf(berth.Invalid, "personal workspaces cannot be shared")
	}
	if userIDs == nil {
		return nil, berth.Errorf(berth.Invalid, "userIds is required (an empty list removes every grant)")
	}
	seen := map[string]bool{}
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM workspace_access WHERE workspace_id = ?`), id); err != nil {
			return db.Err(err)
		}
		now := s.now()
		for _, u := range userIDs {
			if seen[u] {
				continue
			}
			seen[u] = true
			var n int
			if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM users WHERE id = ? AND org_id = ?`), u, c.OrgID); err != nil {
				return db.Err(err)
			}
			if n == 0 {
				return berth.Errorf(berth.Invalid, "userId %q is not a member of this organization", u)
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO workspace_access (workspace_id, user_id, created_at) VALUES (?, ?, ?)`), id, u, now); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Whoever lost a grant loses what it gave before this answers.
	s.access.AccessLost(ctx, berth.AccessLoss{OrgID: c.OrgID, WorkspaceID: id})
	return s.Access(ctx, id)
}

// Denied is a workspace a user may not use, and why, in words for a
// status reason or an error message.
type Denied struct {
	WorkspaceID string
	Slug        string
	Why         string
}

// Denied returns, among workspaceIDs, those userID may not use now. It is
// the rule of every workspace read (visibleClause) applied to the user's
// current role and grants, whoever asks: a revoked grant, a demotion or a
// removal from the organization shows at once. Workspaces that no longer
// exist are not listed (a forced delete leaves nothing to reach).
func (s *Service) Denied(ctx context.Context, userID string, workspaceIDs []string) ([]Denied, error) {
	if len(workspaceIDs) == 0 {
		return nil, nil
	}
	var u struct {
		OrgID string     `db:"org_id"`
		Role  berth.Role `db:"role"`
	}
	err := db.Err(s.db.GetContext(ctx, &u, s.db.Rebind(`SELECT org_id, role FROM users WHERE id = ?`), userID))
	removed := berth.IsKind(err, berth.NotFound)
	if err != nil && !removed {
		return nil, err
	}
	// A removed user may use nothing: a clause that holds for no row.
	where, args := `1 = 0`, []any{}
	if !removed {
		where, args = visibleClause(&berth.Caller{UserID: userID, OrgID: u.OrgID, Role: u.Role})
	}
	q, qargs, err := sqlx.In(`SELECT w.id, w.slug FROM workspaces w WHERE w.id IN (?) AND NOT (`+where+`) ORDER BY w.slug`,
		append([]any{workspaceIDs}, args...)...)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID   string `db:"id"`
		Slug string `db:"slug"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), qargs...); err != nil {
		return nil, db.Err(err)
	}
	out := make([]Denied, 0, len(rows))
	for _, r := range rows {
		why := fmt.Sprintf("its owner lost access to workspace %q", r.Slug)
		if removed {
			why = fmt.Sprintf("its owner is no longer a member of the organization (workspace %q)", r.Slug)
		}
		out = append(out, Denied{WorkspaceID: r.ID, Slug: r.Slug, Why: why})
	}
	return out, nil
}

// Touch records that a workspace was accessed.
// A failure only leaves "last accessed" stale, so it is logged, not returned.
func (s *Service) Touch(ctx context.Context, id string) {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE workspaces SET last_accessed_at = ? WHERE id = ?`), s.now(), id); err != nil {
		s.log.Warn("record workspace access", "workspace", id, "err", db.Err(err))
	}
}
