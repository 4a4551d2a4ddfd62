package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

// deniedMount is a mount of a sandbox whose owner may no longer use its
// workspace.
type deniedMount struct {
	Mount
	why string
}

// deniedMounts asks the workspace policy which of s's mounts its owner may
// no longer use.
func (m *Manager) deniedMounts(ctx context.Context, s *Sandbox) ([]deniedMount, error) {
	if len(s.Mounts) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(s.Mounts))
	for _, mt := range s.Mounts {
		if !slices.Contains(ids, mt.WorkspaceID) {
			ids = append(ids, mt.WorkspaceID)
		}
	}
	denied, err := m.ws.Denied(ctx, s.OwnerUserID, ids)
	if err != nil {
		return nil, err
	}
	var out []deniedMount
	for _, d := range denied {
		for _, mt := range s.Mounts {
			if mt.WorkspaceID == d.WorkspaceID {
				out = append(out, deniedMount{Mount: mt, why: d.Why})
			}
		}
	}
	return out, nil
}

// accessReason is the status reason of a sandbox cut off for denied.
func accessReason(denied []deniedMount) string {
	parts := make([]string, 0, len(denied))
	for _, d := range denied {
		parts = append(parts, fmt.Sprintf("%s (mounted at %s)", d.why, d.Path))
	}
	return "stopped: " + strings.Join(parts, "; ")
}

// accessError is the answer to an operation that would run s although its
// owner lost access to a workspace it mounts.
func accessError(s *Sandbox, denied []deniedMount) error {
	d := denied[0]
	return berth.Errorf(berth.Forbidden, "sandbox %q cannot run: %s (mounted at %s); give the access back, or destroy the sandbox",
		s.Name, d.why, d.Path)
}

// cutOff stops s, whose owner may no longer use the workspaces of denied,
// and records why; execs running in it end with that reason. The caller
// holds s's lock and has loaded s under it.
func (m *Manager) cutOff(ctx context.Context, s *Sandbox, denied []deniedMount) error {
	reason := accessReason(denied)
	m.cancelExecs(s.ID, berth.Errorf(berth.Forbidden, "sandbox %q was %s", s.Name, reason))
	switch s.Status {
	case Stopped:
		if s.StatusReason == reason {
			return nil
		}
		return m.setStatus(ctx, s.ID, Stopped, reason)
	case Running, Paused, Pausing, Resuming, Stopping:
	default: // creating, destroying, destroyed, error: nothing runs, or it is on its way out
		return nil
	}
	m.log.Warn("stopping a sandbox whose owner lost access to a workspace it mounts", "sandbox", s.ID, "reason", reason)
	if err := m.setStatus(ctx, s.ID, Stopping, reason); err != nil {
		return err
	}
	// No grace period: every moment of it is access the owner no longer
	// has, and a paused sandbox could not use it anyway (frozen processes
	// do not see SIGTERM).
	if err := m.rt.Stop(ctx, s.containerID, 0); err != nil {
		if berth.IsKind(err, berth.NotFound) {
			return m.setStatus(ctx, s.ID, Error, "its container disappeared; "+reason)
		}
		// Not stopped: keep the reason, let the engine say where it is,
		// and let the caller (or the next reconcile) try again.
		info, ierr := m.rt.Inspect(ctx, s.containerID)
		st := Stopping
		if ierr == nil {
			st = statusOf(info.State)
		}
		return errors.Join(err, ierr, m.setStatus(ctx, s.ID, st, reason))
	}
	_, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET status = ?, status_reason = ?, ip = '', updated_at = ? WHERE id = ?`),
		Stopped, reason, m.now(), s.ID)
	return db.Err(err)
}

// enforceAccess re-checks, under its lock, one sandbox whose owner may have
// lost access, and cuts it off if so. It waits for an operation in flight
// (a create finishing) rather than skipping the sandbox.
func (m *Manager) enforceAccess(ctx context.Context, id string) error {
	unlock, err := m.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := m.load(ctx, m.db, `s.id = ?`, id)
	if err != nil {
		return err
	}
	denied, err := m.deniedMounts(ctx, s)
	if err != nil || len(denied) == 0 {
		return err
	}
	denied, err = m.detachDenied(ctx, s, denied)
	if len(denied) == 0 {
		return err
	}
	return errors.Join(err, m.cutOff(ctx, s, denied))
}

// accessLostTimeout bounds the stops that follow one access change.
const accessLostTimeout = 2 * time.Minute

// AccessLost stops, before it returns, every sandbox of l's scope whose
// owner may no longer use a workspace it mounts. It is the sandbox
// manager's subscription to berth.AccessFeed; it runs in the revoking
// request, but on its own deadline (a client that hangs up does not leave
// half the sandboxes running). Errors are logged: the change is committed,
// and the reconciler re-checks every sandbox on each pass.
func (m *Manager) AccessLost(ctx context.Context, l berth.AccessLoss) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessLostTimeout)
	defer cancel()
	where := []string{`s.org_id = ?`, `s.status NOT IN ('destroyed', 'error')`}
	args := []any{l.OrgID}
	if l.UserID != "" {
		where = append(where, `s.owner_user_id = ?`)
		args = append(args, l.UserID)
	}
	if l.WorkspaceID != "" {
		where = append(where, `mt.workspace_id = ?`)
		args = append(args, l.WorkspaceID)
	}
	var ids []string
	q := `SELECT DISTINCT s.id FROM sandboxes s JOIN sandbox_mounts mt ON mt.sandbox_id = s.id WHERE ` + strings.Join(where, " AND ")
	if err := m.db.SelectContext(ctx, &ids, m.db.Rebind(q), args...); err != nil {
		m.log.Error("access lost: list the sandboxes to re-check", "err", db.Err(err))
		return
	}
	for _, id := range ids {
		if err := m.enforceAccess(ctx, id); err != nil {
			m.log.Error("access lost: could not cut a sandbox off; the reconciler will retry", "sandbox", id, "err", err)
		}
	}
}
