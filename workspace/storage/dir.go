package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth"
)

// Dir is the "dir" driver: each workspace a plain directory under Root.
// It is today's behaviour and works on any filesystem: the API enforces the
// quota on its own writes (sandbox writes are only measured), usage comes
// from walking the tree, and there are no snapshots or clones (they answer
// NotSupported; copies made in the background are a possible later
// addition, not built).
type Dir struct {
	Root string // <data-dir>/workspaces
}

// NewDir returns a dir driver keeping workspaces under root.
func NewDir(root string) *Dir { return &Dir{Root: root} }

func (d *Dir) Name() string          { return "dir" }
func (d *Dir) Caps() Caps            { return Caps{} }
func (d *Dir) Path(id string) string { return filepath.Join(d.Root, id) }

// SnapshotPath is "": the dir driver has no snapshots.
func (d *Dir) SnapshotPath(id, snapID string) string { return "" }

func (d *Dir) Create(ctx context.Context, id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if err := os.MkdirAll(d.Root, 0o755); err != nil {
		return fmt.Errorf("create workspaces directory: %w", err)
	}
	if err := os.Mkdir(d.Path(id), 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return berth.Errorf(berth.Conflict, "workspace storage %s already exists", id)
		}
		return fmt.Errorf("create workspace directory: %w", err)
	}
	return nil
}

// Remove deletes the tree. Mount points pinned immutable for sandboxes
// (workspace.PinMountPoints) must be unpinned by the caller first
// (workspace.UnpinTree): this package cannot import workspace.
func (d *Dir) Remove(ctx context.Context, id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if err := os.RemoveAll(d.Path(id)); err != nil {
		return fmt.Errorf("remove workspace directory: %w", err)
	}
	return nil
}

// SetQuota does nothing: the dir driver has no kernel quota (Caps), the
// API enforces the quota it keeps in the database.
func (d *Dir) SetQuota(ctx context.Context, id string, limit int64) error { return ValidID(id) }

// Usage walks the tree: the data bytes each regular file's inode holds,
// counted once per inode (hard links), as workspace/files' scan counts them.
// It costs a stat per entry; files.Usage caches it for the API.
func (d *Dir) Usage(ctx context.Context, id string) (Usage, error) {
	if err := ValidID(id); err != nil {
		return Usage{}, err
	}
	root := d.Path(id)
	if _, err := os.Lstat(root); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Usage{}, berth.Errorf(berth.NotFound, "workspace storage %s not found", id)
		}
		return Usage{}, err
	}
	seen := map[[2]uint64]bool{}
	var total int64
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !e.Type().IsRegular() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		// As workspace/files counts a file: its allocated blocks, but no
		// more than its size (a file's last block is partly empty).
		total += min(fi.Size(), st.Blocks*512)
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("measure workspace %s: %w", id, err)
	}
	return Usage{Bytes: total, LiveBytes: total}, nil
}

func (d *Dir) notSupported(what string) error {
	return berth.Errorf(berth.NotSupported, "%s needs the btrfs storage driver (this server uses %q)", what, d.Name())
}

func (d *Dir) Snapshot(ctx context.Context, id, snapID string) (Snapshot, error) {
	return Snapshot{}, d.notSupported("workspace snapshots")
}

func (d *Dir) Snapshots(ctx context.Context, id string) ([]Snapshot, error) {
	return nil, d.notSupported("workspace snapshots")
}

func (d *Dir) SnapshotUsage(ctx context.Context, id, snapID string) (SnapshotUsage, error) {
	return SnapshotUsage{}, d.notSupported("workspace snapshots")
}

func (d *Dir) DeleteSnapshot(ctx context.Context, id, snapID string) error {
	return d.notSupported("workspace snapshots")
}

func (d *Dir) Restore(ctx context.Context, id, snapID string) error {
	return d.notSupported("workspace snapshots")
}

func (d *Dir) Clone(ctx context.Context, src, snapID, dst string) error {
	return d.notSupported("workspace clones")
}

func (d *Dir) Close(ctx context.Context) error { return nil }

var _ Driver = (*Dir)(nil)
