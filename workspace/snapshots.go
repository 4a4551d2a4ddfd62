package workspace

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
)

// Snapshot is the metadata of one read-only snapshot of a workspace. Its
// tree is the storage driver's (a read-only btrfs subvolume named by ID).
type Snapshot struct {
	ID          string    `json:"id" db:"id"`
	WorkspaceID string    `json:"workspaceId" db:"workspace_id"`
	Name        string    `json:"name" db:"name"`
	CreatedBy   string    `json:"createdBy" db:"created_by"`
	CreatedAt   time.Time `json:"createdAt" db:"created_at"`
	// SizeBytes is what only this snapshot holds — extents neither the
	// live tree nor another snapshot or clone references: what deleting it
	// frees — as the storage driver counts it at the time of the request
	// (btrfs: its subvolume qgroup's exclusive bytes); null when not known.
	// It grows as the live tree drops or rewrites what the snapshot holds.
	SizeBytes *int64 `json:"sizeBytes" db:"size_bytes"`
	// ReferencedBytes is everything the snapshot's tree references,
	// shared extents included; null when not known.
	ReferencedBytes *int64 `json:"referencedBytes" db:"-"`
}

// SnapshotInput is the body of POST /v1/workspaces/{id}/snapshots.
type SnapshotInput struct {
	Name string `json:"name"`
}

// RestoreInput is the body of POST /v1/workspaces/{id}/snapshots/{sid}/restore.
type RestoreInput struct {
	// Force restores while sandboxes mount the workspace read-write: they
	// are stopped, and started again on the restored tree.
	Force bool `json:"force"`
}

// RestoreResult is the answer of a restore.
type RestoreResult struct {
	Snapshot Snapshot `json:"snapshot"`
	// RestartedSandboxes are the sandboxes stopped for the restore and
	// started again on the restored tree.
	RestartedSandboxes []string `json:"restartedSandboxes"`
}

// CloneInput is the body of POST /v1/workspaces/{id}/clone.
type CloneInput struct {
	Name string  `json:"name"`
	Slug *string `json:"slug"`
	// SnapshotID clones that snapshot of the workspace instead of its live tree.
	SnapshotID string `json:"snapshotId,omitempty"`
}

// Restarter stops the sandboxes whose containers hold a workspace's live
// tree and starts them again (the sandbox manager): a bind mount keeps the
// directory it was made from, so a restore must re-make it.
type Restarter interface {
	// StopMounting stops every running or paused sandbox that mounts the
	// live tree of workspace id and returns their ids.
	StopMounting(ctx context.Context, id string) ([]string, error)
	// StartAgain starts the sandboxes StopMounting stopped.
	StartAgain(ctx context.Context, ids []string) error
	// RepinMountPoints clears every mount-point pin in workspace id's tree
	// and pins again those that sandboxes not destroyed need (after a
	// restore: the restored tree carries the pins of when the snapshot was
	// taken).
	RepinMountPoints(ctx context.Context, id string) error
}

// SetRestarter installs the sandbox manager for forced restores.
func (s *Service) SetRestarter(r Restarter) { s.restarter = r }

var snapNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// ValidSnapshotName checks a snapshot's name: it is only shown (the tree
// is named by the snapshot's id), but it lands in listings, logs and file
// names of downloads, so it is kept to a plain, short form.
func ValidSnapshotName(name string) error {
	if !snapNameRe.MatchString(name) {
		return berth.FieldErrorf(berth.Invalid, "name", "snapshot name must be 1..100 characters of letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	return nil
}

const snapCols = `id, workspace_id, name, created_by, created_at, size_bytes`

// needSnapshots answers NotSupported on a driver without snapshots.
func (s *Service) needSnapshots() error {
	if !s.Storage().Caps().Snapshots {
		return berth.Errorf(berth.NotSupported, "workspace snapshots need the btrfs storage driver; this server uses %q (berth serve --storage btrfs)", s.Storage().Name())
	}
	return nil
}

// CreateSnapshot makes a read-only snapshot of a workspace's live tree
// (files:write on the workspace).
func (s *Service) CreateSnapshot(ctx context.Context, id string, in SnapshotInput) (*Snapshot, error) {
	c, err := auth.Require(ctx, "files:write")
	if err != nil {
		return nil, err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if err := s.needSnapshots(); err != nil {
		return nil, err
	}
	if err := ValidSnapshotName(in.Name); err != nil {
		return nil, err
	}
	snap := &Snapshot{ID: uuid.NewString(), WorkspaceID: w.ID, Name: in.Name, CreatedBy: c.UserID, CreatedAt: s.now()}
	// The tree exists before the row, as for workspaces: a listed snapshot
	// always has one.
	if _, err := s.Storage().Snapshot(ctx, w.ID, snap.ID); err != nil {
		return nil, fmt.Errorf("snapshot workspace: %w", err)
	}
	_, err = s.db.NamedExecContext(ctx, `INSERT INTO snapshots (id, workspace_id, name, created_by, created_at, size_bytes)
		VALUES (:id, :workspace_id, :name, :created_by, :created_at, :size_bytes)`, snap)
	if err = db.Err(err); err != nil {
		if derr := s.Storage().DeleteSnapshot(context.WithoutCancel(ctx), w.ID, snap.ID); derr != nil {
			s.log.Error("failed snapshot create: removing its tree", "workspace", w.ID, "snapshot", snap.ID, "err", derr)
		}
		if berth.IsKind(err, berth.Conflict) {
			return nil, berth.FieldErrorf(berth.Conflict, "name", "workspace %q already has a snapshot named %q", w.Slug, in.Name)
		}
		return nil, err
	}
	s.fillSnapshotSize(ctx, snap)
	return snap, nil
}

// fillSnapshotSize reads a snapshot's space from the storage driver; left
// null (logged) when it cannot.
func (s *Service) fillSnapshotSize(ctx context.Context, snap *Snapshot) {
	u, err := s.Storage().SnapshotUsage(ctx, snap.WorkspaceID, snap.ID)
	if err != nil {
		s.log.Warn("snapshot size", "workspace", snap.WorkspaceID, "snapshot", snap.ID, "err", err)
		snap.SizeBytes, snap.ReferencedBytes = nil, nil
		return
	}
	snap.SizeBytes, snap.ReferencedBytes = &u.ExclusiveBytes, &u.ReferencedBytes
}

// Snapshots lists a page of a workspace's snapshots, oldest first
// (files:read on the workspace), and the next page's cursor.
func (s *Service) Snapshots(ctx context.Context, id string, limit int, cursor string) ([]Snapshot, string, error) {
	c, err := auth.Require(ctx, "files:read")
	if err != nil {
		return nil, "", err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, "", err
	}
	if err := s.needSnapshots(); err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	where, args := []string{`sn.workspace_id = ?`}, []any{w.ID}
	if cond, cargs, ok := page.Where("sn"); ok {
		where = append(where, cond)
		args = append(args, cargs...)
	}
	var rows []Snapshot
	q := `SELECT ` + prefixed("sn", snapCols) + ` FROM snapshots sn WHERE ` + strings.Join(where, " AND ") + page.OrderLimit("sn")
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, "", db.Err(err)
	}
	rows, next := db.Trim(page, rows, func(r Snapshot) (time.Time, string) { return r.CreatedAt, r.ID })
	if rows == nil {
		rows = []Snapshot{}
	}
	for i := range rows {
		s.fillSnapshotSize(ctx, &rows[i])
	}
	return rows, next, nil
}

func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = alias + "." + p
	}
	return strings.Join(parts, ", ")
}

// GetSnapshot returns one snapshot of a visible workspace (files:read).
func (s *Service) GetSnapshot(ctx context.Context, id, snapID string) (*Snapshot, error) {
	_, snap, err := s.ResolveSnapshot(ctx, id, snapID, "files:read")
	if err != nil {
		return nil, err
	}
	s.fillSnapshotSize(ctx, snap)
	return snap, nil
}

// ResolveSnapshot returns a workspace visible to the caller for scope and
// one of its snapshots, or NotFound (NotSupported on the dir driver).
func (s *Service) ResolveSnapshot(ctx context.Context, id, snapID, scope string) (*Workspace, *Snapshot, error) {
	c, err := auth.Require(ctx, scope)
	if err != nil {
		return nil, nil, err
	}
	w, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, nil, err
	}
	if err := s.needSnapshots(); err != nil {
		return nil, nil, err
	}
	snap, err := s.snapshot(ctx, w.ID, snapID)
	return w, snap, err
}

func (s *Service) snapshot(ctx context.Context, wsID, snapID string) (*Snapshot, error) {
	notFound := berth.Errorf(berth.NotFound, "snapshot %q not found", snapID)
	if _, err := uuid.Parse(snapID); err != nil {
		return nil, notFound
	}
	var snap Snapshot
	err := db.Err(s.db.GetContext(ctx, &snap, s.db.Rebind(`SELECT `+snapCols+` FROM snapshots WHERE id = ? AND workspace_id = ?`), snapID, wsID))
	if berth.IsKind(err, berth.NotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return &snap, nil
}

// SnapshotDir is the host directory of a snapshot's read-only tree.
func (s *Service) SnapshotDir(wsID, snapID string) string {
	return s.Storage().SnapshotPath(wsID, snapID)
}

// DeleteSnapshot deletes one snapshot (files:write). A snapshot a sandbox
// mounts is kept (Conflict): its container would be left in a deleted tree.
func (s *Service) DeleteSnapshot(ctx context.Context, id, snapID string) error {
	w, snap, err := s.ResolveSnapshot(ctx, id, snapID, "files:write")
	if err != nil {
		return err
	}
	u, err := s.usage(ctx, w)
	if err != nil {
		return err
	}
	for _, m := range u.MountedSandboxes {
		if m.SnapshotID == snap.ID {
			return berth.Errorf(berth.Conflict, "snapshot %q is mounted by sandbox %q; destroy the sandbox first", snap.Name, m.SandboxName)
		}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM snapshots WHERE id = ?`), snap.ID); err != nil {
		return db.Err(err)
	}
	if err := s.Storage().DeleteSnapshot(ctx, w.ID, snap.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
		return fmt.Errorf("delete snapshot tree: %w", err)
	}
	return nil
}

// live says whether a sandbox status holds its container's mounts (the
// container exists and may be running again without a start).
func live(status string) bool {
	switch status {
	case "stopped", "error", "destroyed":
		return false
	}
	return true
}

// RestoreSnapshot returns a workspace's live tree to a snapshot
// (files:write). While a sandbox that is not stopped mounts the live tree
// read-write it is refused (Conflict) unless force; then, and for
// read-only mounts of the live tree (which would otherwise keep showing
// the replaced tree), those sandboxes are stopped, the tree restored and
// the sandboxes started again, so their mounts are made anew.
func (s *Service) RestoreSnapshot(ctx context.Context, id, snapID string, force bool) (*RestoreResult, error) {
	w, snap, err := s.ResolveSnapshot(ctx, id, snapID, "files:write")
	if err != nil {
		return nil, err
	}
	u, err := s.usage(ctx, w)
	if err != nil {
		return nil, err
	}
	var rw, busy []string
	held := false
	for _, m := range u.MountedSandboxes {
		if m.SnapshotID != "" || !live(m.SandboxStatus) {
			continue
		}
		held = true
		if !m.ReadOnly && !slices.Contains(rw, m.SandboxName) {
			rw = append(rw, m.SandboxName)
		}
		if m.SandboxStatus != "running" && m.SandboxStatus != "paused" && !slices.Contains(busy, m.SandboxName) {
			busy = append(busy, m.SandboxName)
		}
	}
	if len(rw) > 0 && !force {
		return nil, berth.Errorf(berth.Conflict, "workspace %q is mounted read-write by running sandbox(es) %s; stop them first or pass force=true (they are then stopped and started again on the restored tree)",
			w.Slug, strings.Join(rw, ", "))
	}
	if len(busy) > 0 {
		return nil, berth.Errorf(berth.Conflict, "workspace %q is mounted by sandbox(es) %s that are changing state; retry when they are running or stopped", w.Slug, strings.Join(busy, ", "))
	}
	res := &RestoreResult{Snapshot: *snap, RestartedSandboxes: []string{}}
	if held {
		if s.restarter == nil {
			return nil, berth.Errorf(berth.Unavailable, "cannot restart the sandboxes mounting workspace %q", w.Slug)
		}
		stopped, err := s.restarter.StopMounting(ctx, w.ID)
		res.RestartedSandboxes = append(res.RestartedSandboxes, stopped...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("stop the sandboxes mounting the workspace: %w", err), s.restarter.StartAgain(context.WithoutCancel(ctx), stopped))
		}
	}
	// The open directory of the file API holds the replaced tree too.
	for _, fn := range s.onReplace {
		fn(w.ID)
	}
	rerr := s.Storage().Restore(ctx, w.ID, snap.ID)
	if rerr != nil {
		rerr = fmt.Errorf("restore workspace: %w", rerr)
	} else {
		// The snapshot kept the mount-point pins (immutable directories)
		// that were set when it was taken: a sandbox since destroyed
		// would leave a directory nobody can rename or delete, and one
		// made since would find its mount point unpinned.
		rerr = s.repin(ctx, w.ID)
	}
	// Started again whether or not the restore worked: on the restored tree
	// or, after a failure, on the untouched one.
	if len(res.RestartedSandboxes) > 0 {
		if err := s.restarter.StartAgain(context.WithoutCancel(ctx), res.RestartedSandboxes); err != nil {
			return nil, errors.Join(rerr, fmt.Errorf("start the sandboxes again: %w", err))
		}
	}
	if rerr != nil {
		return nil, rerr
	}
	return res, nil
}

// repin makes the pins of workspace id's tree those that sandboxes need
// now: all cleared, then those of sandboxes not destroyed set again (by
// the sandbox manager, which knows them).
func (s *Service) repin(ctx context.Context, id string) error {
	if s.restarter != nil {
		if err := s.restarter.RepinMountPoints(ctx, id); err != nil {
			return fmt.Errorf("reset the mount-point pins of the restored tree: %w", err)
		}
		return nil
	}
	if err := UnpinTree(s.Dir(id)); err != nil {
		return fmt.Errorf("clear the mount-point pins of the restored tree: %w", err)
	}
	return nil
}

// Clone makes a new workspace with the contents of workspace id (its live
// tree, or one of its snapshots): a copy-on-write snapshot on btrfs. The
// caller needs files:write and access to the origin, and owns the clone
// like a workspace they created; the clone has the origin's quota (a clone
// must not be a way around one) and no grants.
func (s *Service) Clone(ctx context.Context, id string, in CloneInput) (*Workspace, error) {
	c, err := auth.Require(ctx, "files:write")
	if err != nil {
		return nil, err
	}
	src, err := s.get(ctx, s.db, c, id)
	if err != nil {
		return nil, err
	}
	if !s.Storage().Caps().Clone {
		return nil, berth.Errorf(berth.NotSupported, "workspace clones need the btrfs storage driver; this server uses %q (berth serve --storage btrfs)", s.Storage().Name())
	}
	name, err := validName(in.Name)
	if err != nil {
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
	if in.SnapshotID != "" {
		if _, err := s.snapshot(ctx, src.ID, in.SnapshotID); err != nil {
			return nil, berth.WithField(err, "snapshotId")
		}
	}
	now := s.now()
	w := &Workspace{ID: uuid.NewString(), OrgID: c.OrgID, Name: name, OwnerUserID: c.UserID, QuotaBytes: src.QuotaBytes, CreatedAt: now, UpdatedAt: now}
	if err := s.Storage().Clone(ctx, src.ID, in.SnapshotID, w.ID); err != nil {
		return nil, fmt.Errorf("clone workspace: %w", err)
	}
	// The origin's pinned mount points (PinMountPoints) come along; no
	// sandbox mounts the clone, so nothing needs them there.
	if err := UnpinTree(s.Dir(w.ID)); err != nil {
		return nil, errors.Join(fmt.Errorf("unpin the clone: %w", err), s.Storage().Remove(context.WithoutCancel(ctx), w.ID))
	}
	if err := s.limitNew(ctx, w); err != nil {
		return nil, err
	}
	if err := s.insert(ctx, w, slug, derived); err != nil {
		return nil, err
	}
	s.fillSize(ctx, w)
	return w, nil
}
