package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/mountns"
)

// Attaching a workspace to a running sandbox. The engine cannot add a bind
// mount to a container that runs, so berth does it itself (see mountns):
// it clones the workspace's host directory as a detached mount and moves
// it into the container's mount namespace at the path asked for. Such a
// mount is recorded with attached set; the engine does not know it, so
// every start attaches it again, and only it can be detached. Revoking the
// owner's access to its workspace detaches it (a mount given at create
// stops the sandbox instead: the engine would mount it again on start).

// Attach mounts a workspace (or a snapshot of one) into sandbox idOrName,
// running or stopped, with the checks of a create: the path, the caller's
// access to the workspace (files:read, files:write unless read-only), and
// the owner's. A path that lies inside another mount of the sandbox, or
// holds one, is refused: its mount point would have to be made in a
// workspace.
func (m *Manager) Attach(ctx context.Context, idOrName string, in Mount) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return nil, err
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return nil, err
	}
	l := m.lock(s.ID)
	l.Lock()
	defer l.Unlock()
	if s, err = m.load(ctx, m.db, `s.id = ?`, s.ID); err != nil {
		return nil, err
	}
	if s.Status != Running && s.Status != Stopped {
		return nil, berth.Errorf(berth.Conflict, "cannot attach a mount to sandbox %q: it is %s; it must be running or stopped", s.Name, s.Status)
	}
	if len(s.Mounts) >= 32 {
		return nil, berth.Errorf(berth.Invalid, "sandbox %q has 32 mounts, the most it may have", s.Name)
	}
	field := func(err error) error {
		var be *berth.Error
		if errors.As(err, &be) && strings.HasPrefix(be.Field, "mounts[0].") {
			be.Field = strings.TrimPrefix(be.Field, "mounts[0].")
		}
		return err
	}
	if err := ValidMountPath(in.Path); err != nil {
		return nil, berth.WithField(err, "path")
	}
	for _, o := range s.Mounts {
		switch {
		case o.Path == in.Path:
			return nil, berth.FieldErrorf(berth.Conflict, "path", "sandbox %q already has a mount at %s", s.Name, in.Path)
		case strings.HasPrefix(in.Path, o.Path+"/"), strings.HasPrefix(o.Path, in.Path+"/"):
			return nil, berth.FieldErrorf(berth.Invalid, "path", "mount path %s and the mount at %s nest: a mount attached to a sandbox cannot lie inside another mount or hold one; choose a separate path", in.Path, o.Path)
		}
	}
	mounts := []Mount{in}
	res, err := m.resolveMounts(ctx, mounts)
	if err != nil {
		return nil, field(err)
	}
	mt := res[0]
	// The caller may be an admin acting on a member's sandbox: the owner
	// must be allowed the workspace too, as for every later use of it.
	probe := &Sandbox{Mounts: []Mount{mt.Mount}}
	probe.OwnerUserID = s.OwnerUserID
	denied, err := m.deniedMounts(ctx, probe)
	if err != nil {
		return nil, err
	}
	if len(denied) > 0 {
		return nil, berth.FieldErrorf(berth.Forbidden, "workspaceId", "the owner of sandbox %q may not use this workspace: %s", s.Name, denied[0].why)
	}
	err = m.db.Tx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sandbox_mounts (sandbox_id, workspace_id, snapshot_id, path, read_only, attached) VALUES (?, ?, ?, ?, ?, ?)`),
			s.ID, mt.WorkspaceID, mt.SnapshotID, mt.Path, mt.ReadOnly, true)
		return db.Err(err)
	})
	if err != nil {
		return nil, err
	}
	if s.Status == Running {
		if err := m.attachNow(ctx, s, mt); err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if derr := m.dropMount(dctx, s.ID, mt.Path); derr != nil {
				m.log.Error("failed attach: removing the mount's row", "sandbox", s.ID, "path", mt.Path, "err", derr)
			}
			return nil, err
		}
	}
	m.log.Info("mount attached", "sandbox", s.ID, "workspace", mt.WorkspaceID, "path", mt.Path, "readOnly", mt.ReadOnly)
	return m.load(ctx, m.db, `s.id = ?`, s.ID)
}

// Detach removes the mount at path, attached earlier, from sandbox
// idOrName; processes inside that still use it keep it until they let go
// (a lazy unmount), but nothing new can reach it.
func (m *Manager) Detach(ctx context.Context, idOrName, path string) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return nil, err
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return nil, err
	}
	l := m.lock(s.ID)
	l.Lock()
	defer l.Unlock()
	if s, err = m.load(ctx, m.db, `s.id = ?`, s.ID); err != nil {
		return nil, err
	}
	var found *Mount
	for i := range s.Mounts {
		if s.Mounts[i].Path == path {
			found = &s.Mounts[i]
		}
	}
	if found == nil {
		return nil, berth.FieldErrorf(berth.NotFound, "path", "sandbox %q has no mount at %q", s.Name, path)
	}
	if !found.attached {
		return nil, berth.FieldErrorf(berth.Invalid, "path", "the mount at %s was given when sandbox %q was created and stays for its life; only a mount attached later can be detached", path, s.Name)
	}
	if s.Status != Running && s.Status != Stopped {
		return nil, berth.Errorf(berth.Conflict, "cannot detach a mount from sandbox %q: it is %s; it must be running or stopped", s.Name, s.Status)
	}
	if err := m.detachNow(ctx, s, *found); err != nil {
		return nil, err
	}
	if err := m.dropMount(ctx, s.ID, path); err != nil {
		return nil, err
	}
	m.log.Info("mount detached", "sandbox", s.ID, "path", path)
	return m.load(ctx, m.db, `s.id = ?`, s.ID)
}

// attachNow mounts mt into the running container of s.
func (m *Manager) attachNow(ctx context.Context, s *Sandbox, mt resolvedMount) error {
	info, err := m.rt.Inspect(ctx, s.containerID)
	if err != nil {
		return err
	}
	if info.Pid <= 0 {
		return berth.Errorf(berth.Conflict, "sandbox %q has no running container to attach to (it is %s in the engine)", s.Name, info.State)
	}
	if err := mountns.Attach(info.Pid, mt.source, mt.Path, mt.ReadOnly); err != nil {
		if errors.Is(err, mountns.ErrSymlink) {
			return berth.FieldErrorf(berth.Conflict, "path", "cannot attach at %s in sandbox %q: %v", mt.Path, s.Name, err)
		}
		return berth.Wrap(berth.Internal, err, fmt.Sprintf("attach a mount at %s in sandbox %q", mt.Path, s.Name))
	}
	return nil
}

// source is the host directory that mt mounts.
func (m *Manager) source(mt Mount) string {
	if mt.SnapshotID != "" {
		return m.ws.SnapshotDir(mt.WorkspaceID, mt.SnapshotID)
	}
	return m.ws.Dir(mt.WorkspaceID)
}

// detachNow unmounts mt in the container of s if it runs (or is paused),
// wherever the sandbox may have moved it; a stopped container holds no
// mount.
func (m *Manager) detachNow(ctx context.Context, s *Sandbox, mt Mount) error {
	path := mt.Path
	info, err := m.rt.Inspect(ctx, s.containerID)
	if berth.IsKind(err, berth.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Pid <= 0 {
		return nil
	}
	var keep []string
	for _, o := range s.Mounts {
		if o.Path != path {
			keep = append(keep, o.Path)
		}
	}
	if err := mountns.Detach(info.Pid, path, m.source(mt), keep); err != nil {
		return berth.Wrap(berth.Internal, err, fmt.Sprintf("detach the mount at %s from sandbox %q", path, s.Name))
	}
	return nil
}

// dropMount removes the record of sandbox id's mount at path.
func (m *Manager) dropMount(ctx context.Context, id, path string) error {
	_, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM sandbox_mounts WHERE sandbox_id = ? AND path = ?`), id, path)
	return db.Err(err)
}

// reattach mounts the attached mounts of s again into its container, just
// started (the engine made only the mounts given at create).
func (m *Manager) reattach(ctx context.Context, s *Sandbox) error {
	var errs []error
	for _, mt := range s.Mounts {
		if !mt.attached {
			continue
		}
		errs = append(errs, m.attachNow(ctx, s, resolvedMount{Mount: mt, source: m.source(mt)}))
	}
	return errors.Join(errs...)
}

// detachDenied detaches, and forgets, the attached mounts among denied,
// and returns the others: those given at create, which stop the sandbox.
// The caller holds s's lock.
func (m *Manager) detachDenied(ctx context.Context, s *Sandbox, denied []deniedMount) ([]deniedMount, error) {
	var rest []deniedMount
	var errs []error
	gone := map[string]bool{}
	for _, d := range denied {
		if !d.attached {
			rest = append(rest, d)
			continue
		}
		m.log.Warn("detaching a mount whose workspace the sandbox's owner may no longer use", "sandbox", s.ID, "path", d.Path, "reason", d.why)
		if err := m.detachNow(ctx, s, d.Mount); err != nil {
			// Not detached: the sandbox must not keep running with it.
			errs = append(errs, err)
			rest = append(rest, d)
			continue
		}
		if err := m.dropMount(ctx, s.ID, d.Path); err != nil {
			errs = append(errs, err)
			continue
		}
		gone[d.Path] = true
	}
	kept := s.Mounts[:0:0]
	for _, mt := range s.Mounts {
		if !gone[mt.Path] {
			kept = append(kept, mt)
		}
	}
	s.Mounts = kept
	return rest, errors.Join(errs...)
}

// visibleDenied is denied without the attached mounts, which are detached
// rather than refused (see detachDenied).
func visibleDenied(denied []deniedMount) []deniedMount {
	var out []deniedMount
	for _, d := range denied {
		if !d.attached {
			out = append(out, d)
		}
	}
	return out
}
