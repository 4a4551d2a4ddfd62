// Package storage provides the per-workspace storage drivers: where a
// workspace's tree lives, how its byte quota is enforced, how its usage is
// read, and (where the filesystem can) its snapshots and clones.
//
// Two drivers exist. "dir" is berth's original behaviour: plain directories,
// a quota the API enforces on its own writes, usage by walking the tree, no
// snapshots. "btrfs" puts each workspace in its own subvolume of a btrfs
// pool, so the quota is a qgroup limit the kernel enforces on every writer
// (API, sandboxes, agents), usage is read from the qgroup, and snapshots and
// clones are copy-on-write subvolume snapshots.
//
// Drivers know workspaces and snapshots only by id; names, owners, access
// and timestamps stay in the database (workspace.Service).
package storage

import (
	"context"
	"regexp"

	"github.com/berth-dev/berth"
)

// Caps says what a driver does itself, so that callers know what they must
// still do (the API enforces a quota the kernel does not) and what to refuse.
type Caps struct {
	// KernelQuota: SetQuota binds every writer (EDQUOT past the limit), not
	// just the API's writes.
	KernelQuota bool
	// ExactUsage: Usage is exact and cheap (no tree walk).
	ExactUsage bool
	// Snapshots: Snapshot, Snapshots, DeleteSnapshot and Restore work.
	Snapshots bool
	// InstantSnapshots: a snapshot's cost does not grow with the tree.
	InstantSnapshots bool
	// Clone: Clone works (copy-on-write when InstantSnapshots).
	Clone bool
}

// Usage is a workspace's space on disk.
type Usage struct {
	// Bytes the workspace holds, as its quota counts them. For btrfs, the
	// referenced bytes of the workspace's level-1 qgroup: the live tree and
	// all its snapshots, an extent they share counted once, extents shared
	// with clones or other workspaces counted in full. For dir, the live
	// tree (dir has no snapshots).
	Bytes int64
	// LiveBytes the live tree references (btrfs: its subvolume's qgroup),
	// shared extents in full; Bytes - LiveBytes is what only snapshots
	// hold. Equal to Bytes for dir.
	LiveBytes int64
	// Limit is the kernel-enforced quota in bytes, 0 when there is none (or
	// the driver enforces none: see Caps.KernelQuota).
	Limit int64
}

// Snapshot is one read-only snapshot of a workspace.
type Snapshot struct {
	ID          string
	WorkspaceID string
	// Path is the snapshot's read-only tree, for browsing, download and
	// read-only mounts into sandboxes.
	Path string
}

// SnapshotUsage is the space one snapshot takes.
type SnapshotUsage struct {
	// ExclusiveBytes only this snapshot references: what deleting it frees.
	ExclusiveBytes int64
	// ReferencedBytes the snapshot's tree references, shared or not.
	ReferencedBytes int64
}

// Driver is a workspace storage backend. Every method takes ids the caller
// has already validated as existing workspaces (except Create and Clone's
// destination); ids that could leave the pool (ValidID) are refused.
// Errors are *berth.Error: NotSupported for what a driver cannot do,
// NotFound for a missing workspace or snapshot, Conflict for one that
// already exists, Unavailable when the host cannot do what the driver needs.
type Driver interface {
	// Name is the driver's name as --storage spells it ("dir", "btrfs").
	Name() string
	Caps() Caps
	// Path is the workspace's live tree (which Create makes).
	Path(id string) string
	// SnapshotPath is the read-only tree of one snapshot ("" where the
	// driver has no snapshots).
	SnapshotPath(id, snapID string) string

	// Create makes an empty workspace tree.
	Create(ctx context.Context, id string) error
	// Remove deletes a workspace's tree and all its snapshots. Removing a
	// workspace that does not exist is not an error (a retried delete).
	Remove(ctx context.Context, id string) error

	// SetQuota limits the workspace to limit bytes; limit <= 0 clears it.
	// Where Caps().KernelQuota is false it does nothing: the API enforces
	// the quota on its own writes.
	SetQuota(ctx context.Context, id string, limit int64) error
	// Usage reports the bytes the workspace's tree holds.
	Usage(ctx context.Context, id string) (Usage, error)

	// Snapshot makes a read-only snapshot of the live tree, named snapID.
	Snapshot(ctx context.Context, id, snapID string) (Snapshot, error)
	// Snapshots lists a workspace's snapshots, in id order.
	Snapshots(ctx context.Context, id string) ([]Snapshot, error)
	// SnapshotUsage reports one snapshot's space.
	SnapshotUsage(ctx context.Context, id, snapID string) (SnapshotUsage, error)
	// DeleteSnapshot deletes one snapshot.
	DeleteSnapshot(ctx context.Context, id, snapID string) error
	// Restore replaces the live tree by a writable copy of the snapshot;
	// the quota stays. The caller must make sure no sandbox mounts the
	// workspace (see the btrfs driver's Restore for why).
	Restore(ctx context.Context, id, snapID string) error
	// Clone makes workspace dst with the contents of src: its live tree
	// when snapID is "", else that snapshot. dst gets no quota.
	Clone(ctx context.Context, src, snapID, dst string) error

	// Close releases what the driver holds (the btrfs driver unmounts a
	// pool file it mounted).
	Close(ctx context.Context) error
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidID checks a workspace or snapshot id: it becomes a path component,
// so it must not be empty, ".", "..", contain a slash or start with a dot
// (the drivers keep their own entries, like .snapshots, beside workspaces).
func ValidID(id string) error {
	if !validID.MatchString(id) {
		return berth.Errorf(berth.Invalid, "invalid storage id %q: letters, digits, '-' and '_' only, starting with a letter or digit", id)
	}
	return nil
}

func validIDs(ids ...string) error {
	for _, id := range ids {
		if err := ValidID(id); err != nil {
			return err
		}
	}
	return nil
}
