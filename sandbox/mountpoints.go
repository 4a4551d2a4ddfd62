package sandbox

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/workspace"
)

// Nested mounts. A mount whose path lies under another mount of the same
// sandbox (W2 at /workspace/priv under W at /workspace) needs its mount
// point as a directory inside the outer workspace's host directory, which
// others may write. The workspace package pins such directories with inode
// flags that no writer can get past (see workspace/pin.go); this file
// decides which directories are pinned: those of every sandbox that is not
// destroyed, recomputed from the database whenever one is released, so
// that a path shared by several sandboxes stays pinned until the last one
// is gone. pinMu serialises pinning and releasing.

// mountPoint is a nested mount's mount point: the workspace that holds it
// and its path relative to that workspace's root.
type mountPoint struct {
	WorkspaceID string
	Rel         string
	Path        string // the nested mount's path in the sandbox
}

// mountPointsOf lists the mount points of mounts that lie inside another of
// the same mounts (the closest enclosing one holds it).
func mountPointsOf(mounts []Mount) []mountPoint {
	var out []mountPoint
	for _, mt := range mounts {
		var outer *Mount
		for i := range mounts {
			o := &mounts[i]
			if strings.HasPrefix(mt.Path, o.Path+"/") && (outer == nil || len(o.Path) > len(outer.Path)) {
				outer = o
			}
		}
		if outer != nil {
			out = append(out, mountPoint{WorkspaceID: outer.WorkspaceID, Rel: strings.TrimPrefix(mt.Path, outer.Path+"/"), Path: mt.Path})
		}
	}
	return out
}

// byWorkspace groups mount points by the workspace holding them.
func byWorkspace(mps []mountPoint) map[string][]string {
	out := map[string][]string{}
	for _, mp := range mps {
		out[mp.WorkspaceID] = append(out[mp.WorkspaceID], mp.Rel)
	}
	return out
}

// checkNesting refuses nested mounts when the data directory cannot pin
// their mount points: unprotected, they could be redirected by others.
func (m *Manager) checkNesting(mounts []Mount) error {
	if len(mountPointsOf(mounts)) == 0 {
		return nil
	}
	if err := m.ws.PinSupported(); err != nil {
		m.log.Warn("nested mount refused: mount points cannot be pinned", "err", err)
		return berth.FieldErrorf(berth.Invalid, "mounts",
			"nested mounts (a mount path under another mount) are not available on this server: its data directory's filesystem cannot protect their mount points from other writers (immutable flags unsupported); mount the workspaces at separate paths")
	}
	return nil
}

// pinMountPoints creates and pins the mount points of a sandbox's nested
// mounts before its container starts (create and every start): none is
// followed if it is a symlink, and a symlink or a file in the way is a
// Conflict that leaves it untouched.
func (m *Manager) pinMountPoints(ctx context.Context, mounts []Mount) error {
	mps := mountPointsOf(mounts)
	if len(mps) == 0 {
		return nil
	}
	if err := m.checkNesting(mounts); err != nil {
		return err
	}
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	var errs []error
	for ws, rels := range byWorkspace(mps) {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, m.ws.PinMountPoints(ws, rels))
	}
	return errors.Join(errs...)
}

// unpinMountPoints releases the mount points of a sandbox that no longer
// needs them (destroyed, or never created): each keeps the flags that the
// remaining sandboxes need and loses the others.
func (m *Manager) unpinMountPoints(ctx context.Context, mounts []Mount) error {
	mps := mountPointsOf(mounts)
	if len(mps) == 0 {
		return nil
	}
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	var errs []error
	for ws, rels := range byWorkspace(mps) {
		keep, err := m.mountPointsIn(ctx, ws)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, m.ws.UnpinMountPoints(ws, rels, keep))
	}
	return errors.Join(errs...)
}

// RepinMountPoints clears every mount-point pin in workspace wsID's tree
// and pins again those that sandboxes not destroyed need
// (workspace.Restarter; after a restore, whose tree carries the pins of
// the moment its snapshot was taken).
func (m *Manager) RepinMountPoints(ctx context.Context, wsID string) error {
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	keep, err := m.mountPointsIn(ctx, wsID)
	if err != nil {
		return err
	}
	if err := workspace.UnpinTree(m.ws.Dir(wsID)); err != nil {
		return err
	}
	if len(keep) == 0 {
		return nil
	}
	return m.ws.PinMountPoints(wsID, keep)
}

// mountPointsIn lists the mount points in workspace wsID that sandboxes
// not destroyed need.
func (m *Manager) mountPointsIn(ctx context.Context, wsID string) ([]string, error) {
	var rows []struct {
		SandboxID string `db:"sandbox_id"`
		Mount
	}
	err := m.db.SelectContext(ctx, &rows, m.db.Rebind(`SELECT mt.sandbox_id, mt.workspace_id, mt.path, mt.read_only
		FROM sandbox_mounts mt JOIN sandboxes s ON s.id = mt.sandbox_id
		WHERE s.status <> 'destroyed' AND mt.sandbox_id IN (SELECT sandbox_id FROM sandbox_mounts WHERE workspace_id = ?)`), wsID)
	if err != nil {
		return nil, db.Err(err)
	}
	bySandbox := map[string][]Mount{}
	for _, r := range rows {
		bySandbox[r.SandboxID] = append(bySandbox[r.SandboxID], r.Mount)
	}
	var out []string
	for _, mounts := range bySandbox {
		for _, mp := range mountPointsOf(mounts) {
			if mp.WorkspaceID == wsID {
				out = append(out, mp.Rel)
			}
		}
	}
	return out, nil
}
