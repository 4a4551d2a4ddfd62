package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime"
)

// find loads the sandbox named by idOrName that c may see: admins see the
// whole org, members their own. An id wins over a name.
func (m *Manager) find(ctx context.Context, c *berth.Caller, idOrName string) (*Sandbox, error) {
	where := `s.org_id = ? AND (s.id = ? OR (s.name = ? AND s.status <> 'destroyed'))`
	args := []any{c.OrgID, idOrName, idOrName}
	if !c.IsAdmin() {
		where += ` AND s.owner_user_id = ?`
		args = append(args, c.UserID)
	}
	s, err := m.load(ctx, m.db, where+` ORDER BY CASE WHEN s.id = ? THEN 0 ELSE 1 END LIMIT 1`, append(args, idOrName)...)
	if berth.IsKind(err, berth.NotFound) {
		return nil, berth.Errorf(berth.NotFound, "sandbox %q not found", idOrName)
	}
	return s, err
}

// Get returns one visible sandbox by id or name.
func (m *Manager) Get(ctx context.Context, idOrName string) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:read")
	if err != nil {
		return nil, err
	}
	return m.find(ctx, c, idOrName)
}

// Filter selects sandboxes for List.
type Filter struct {
	Status   Status
	Tags     []string
	Template string
	All      bool // admins: every sandbox of the org
	Limit    int
	Cursor   string
}

// List returns a page of sandboxes, oldest first, and the cursor of the next
// page ("" on the last). Destroyed sandboxes are listed only when asked for
// with Status.
func (m *Manager) List(ctx context.Context, f Filter) ([]Sandbox, string, error) {
	c, err := auth.Require(ctx, "sandbox:read")
	if err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(f.Limit, f.Cursor)
	if err != nil {
		return nil, "", err
	}
	where := []string{`s.org_id = ?`}
	args := []any{c.OrgID}
	if f.All {
		if !c.IsAdmin() {
			return nil, "", berth.Errorf(berth.Forbidden, "only organization admins may list every sandbox (all=true)")
		}
	} else {
		where = append(where, `s.owner_user_id = ?`)
		args = append(args, c.UserID)
	}
	switch f.Status {
	case "":
		where = append(where, `s.status <> 'destroyed'`)
	case Creating, Running, Pausing, Paused, Resuming, Stopping, Stopped, Destroying, Destroyed, Error:
		where = append(where, `s.status = ?`)
		args = append(args, f.Status)
	default:
		return nil, "", berth.Errorf(berth.Invalid, "unknown status %q", f.Status)
	}
	if f.Template != "" {
		where = append(where, `s.template = ?`)
		args = append(args, f.Template)
	}
	for _, t := range f.Tags {
		where = append(where, `EXISTS (SELECT 1 FROM sandbox_tags t WHERE t.sandbox_id = s.id AND t.tag = ?)`)
		args = append(args, t)
	}
	if cond, cargs, ok := page.Where("s"); ok {
		where = append(where, cond)
		args = append(args, cargs...)
	}
	q := `SELECT ` + sbxCols + ` FROM sandboxes s WHERE ` + strings.Join(where, " AND ") + page.OrderLimit("s")
	var rows []row
	if err := m.db.SelectContext(ctx, &rows, m.db.Rebind(q), args...); err != nil {
		return nil, "", db.Err(err)
	}
	rows, next := db.Trim(page, rows, func(r row) (time.Time, string) { return r.CreatedAt, r.ID })
	out, err := m.hydrate(ctx, m.db, rows)
	return out, next, err
}

// transition runs one lifecycle step under the sandbox's lock: the current
// status must be one of from; the sandbox shows via while act runs, then
// to. If act fails, the status is set from what the engine reports.
func (m *Manager) transition(ctx context.Context, idOrName, verb string, from []Status, via, to Status, act func(ctx context.Context, s *Sandbox) error) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return nil, err
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return nil, err
	}
	unlock, err := m.acquire(ctx, s.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return m.transitionLocked(ctx, s.ID, verb, from, via, to, act)
}

func (m *Manager) transitionLocked(ctx context.Context, id, verb string, from []Status, via, to Status, act func(ctx context.Context, s *Sandbox) error) (*Sandbox, error) {
	s, err := m.load(ctx, m.db, `s.id = ?`, id)
	if err != nil {
		return nil, err
	}
	if to == Running {
		// Nothing brings a mount back to life for an owner who lost access;
		// that is the answer whatever the status (a sandbox cut off is
		// stopped, and "it is stopped" would not say why).
		denied, err := m.deniedMounts(ctx, s)
		if err != nil {
			return nil, err
		}
		if denied, err = m.detachDenied(ctx, s, denied); err != nil {
			m.log.Error("detach a mount whose workspace the owner may no longer use", "sandbox", s.ID, "err", err)
		}
		if len(denied) > 0 {
			return nil, accessError(s, denied)
		}
	}
	if !slices.Contains(from, s.Status) {
		return nil, berth.Errorf(berth.Conflict, "cannot %s sandbox %q: it is %s", verb, s.Name, s.Status)
	}
	before := s.Status
	if err := m.setStatus(ctx, id, via, ""); err != nil {
		return nil, err
	}
	if err := act(ctx, s); err != nil {
		// Whatever happened, the row must not stay in a transitional state,
		// also when the caller is gone.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if serr := m.settle(sctx, s, before, err); serr != nil {
			m.log.Error("sandbox left in a transitional status", "sandbox", id, "status", via, "err", serr)
		}
		return nil, err
	}
	if err := m.setStatus(ctx, id, to, ""); err != nil {
		return nil, err
	}
	return m.load(ctx, m.db, `s.id = ?`, id)
}

// cleanupTimeout bounds each cleanup step that must run even when the
// caller's context has ended.
const cleanupTimeout = 30 * time.Second

// settle sets a sandbox's status after a failed step: back to before when
// the engine is unreachable (nothing happened), else what the engine says.
func (m *Manager) settle(ctx context.Context, s *Sandbox, before Status, cause error) error {
	if berth.IsKind(cause, berth.Unavailable) {
		return m.setStatus(ctx, s.ID, before, "")
	}
	info, err := m.rt.Inspect(ctx, s.containerID)
	switch {
	case berth.IsKind(err, berth.NotFound):
		return m.setStatus(ctx, s.ID, Error, "container disappeared: "+berth.Message(cause))
	case err != nil:
		return errors.Join(err, m.setStatus(ctx, s.ID, before, ""))
	default:
		return m.setStatus(ctx, s.ID, statusOf(info.State), "")
	}
}

// statusOf maps an engine state to the sandbox status it means.
func statusOf(st runtime.State) Status {
	switch st {
	case runtime.StateRunning, runtime.StateRestarting:
		return Running
	case runtime.StatePaused:
		return Paused
	case runtime.StateRemoving:
		return Destroying
	}
	return Stopped
}

// Pause freezes a running sandbox.
func (m *Manager) Pause(ctx context.Context, idOrName string) (*Sandbox, error) {
	return m.transition(ctx, idOrName, "pause", []Status{Running}, Pausing, Paused, func(ctx context.Context, s *Sandbox) error {
		return m.rt.Pause(ctx, s.containerID)
	})
}

// Resume thaws a paused sandbox; it counts as activity.
func (m *Manager) Resume(ctx context.Context, idOrName string) (*Sandbox, error) {
	return m.transition(ctx, idOrName, "resume", []Status{Paused}, Resuming, Running, m.unpause)
}

func (m *Manager) unpause(ctx context.Context, s *Sandbox) error {
	if err := m.rt.Unpause(ctx, s.containerID); err != nil {
		return err
	}
	m.touch(ctx, s.ID)
	return nil
}

// Stop stops a running or paused sandbox, keeping its filesystem.
func (m *Manager) Stop(ctx context.Context, idOrName string) (*Sandbox, error) {
	return m.transition(ctx, idOrName, "stop", []Status{Running, Paused}, Stopping, Stopped, m.stop)
}

func (m *Manager) stop(ctx context.Context, s *Sandbox) error {
	if err := m.rt.Stop(ctx, s.containerID, m.opts.StopTimeout); err != nil {
		return err
	}
	// A stopped container has no address; start assigns a new one.
	_, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET ip = '' WHERE id = ?`), s.ID)
	return db.Err(err)
}

// Start starts a stopped sandbox.
func (m *Manager) Start(ctx context.Context, idOrName string) (*Sandbox, error) {
	return m.transition(ctx, idOrName, "start", []Status{Stopped}, Resuming, Running, m.start)
}

// start starts the container; the engine makes its bind mounts anew from
// the host paths, so a workspace tree replaced meanwhile (a restore) is
// the one the sandbox sees.
func (m *Manager) start(ctx context.Context, s *Sandbox) error {
	if err := m.pinMountPoints(ctx, s.Mounts); err != nil {
		return err
	}
	if err := m.rt.Start(ctx, s.containerID); err != nil {
		return err
	}
	info, err := m.rt.Inspect(ctx, s.containerID)
	if err != nil {
		return err
	}
	// The engine made the mounts given at create; berth attaches the
	// others. A sandbox that cannot have them all does not run.
	if err := m.reattach(ctx, s); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		return errors.Join(err, m.rt.Stop(sctx, s.containerID, 0))
	}
	now := m.now()
	_, err = m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET ip = ?, last_activity_at = ? WHERE id = ?`), info.IPAddress, now, s.ID)
	return db.Err(err)
}

// StopMounting stops every running or paused sandbox that mounts the live
// tree of workspace wsID, whoever owns it, for a forced restore of that
// workspace (workspace.Restarter; the caller has checked the right to
// restore). It returns the ids it stopped, also when it fails midway.
func (m *Manager) StopMounting(ctx context.Context, wsID string) ([]string, error) {
	var ids []string
	err := m.db.SelectContext(ctx, &ids, m.db.Rebind(`SELECT DISTINCT s.id FROM sandboxes s JOIN sandbox_mounts mt ON mt.sandbox_id = s.id
		WHERE mt.workspace_id = ? AND mt.snapshot_id = '' AND s.status IN ('running', 'paused') ORDER BY s.id`), wsID)
	if err != nil {
		return nil, db.Err(err)
	}
	stopped := []string{}
	for _, id := range ids {
		unlock, err := m.acquire(ctx, id)
		if err != nil {
			return stopped, fmt.Errorf("stop sandbox %s: %w", id, err)
		}
		_, err = m.transitionLocked(ctx, id, "stop", []Status{Running, Paused}, Stopping, Stopped, m.stop)
		unlock()
		if err != nil {
			return stopped, fmt.Errorf("stop sandbox %s: %w", id, err)
		}
		m.log.Info("sandbox stopped for a workspace restore", "sandbox", id, "workspace", wsID)
		stopped = append(stopped, id)
	}
	return stopped, nil
}

// StartAgain starts the sandboxes StopMounting stopped (each that is still
// stopped; one destroyed meanwhile is skipped).
func (m *Manager) StartAgain(ctx context.Context, ids []string) error {
	var errs []error
	for _, id := range ids {
		unlock, err := m.acquire(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("start sandbox %s again: %w", id, err))
			continue
		}
		_, err = m.transitionLocked(ctx, id, "start", []Status{Stopped}, Resuming, Running, m.start)
		unlock()
		if err != nil && !berth.IsKind(err, berth.NotFound) {
			errs = append(errs, fmt.Errorf("start sandbox %s again: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Destroy removes a sandbox's container and its own files; its workspaces
// are untouched.
func (m *Manager) Destroy(ctx context.Context, idOrName string) (*Sandbox, error) {
	all := []Status{Creating, Running, Pausing, Paused, Resuming, Stopping, Stopped, Destroying, Error}
	s, err := m.transition(ctx, idOrName, "destroy", all, Destroying, Destroyed, func(ctx context.Context, s *Sandbox) error {
		return m.removeContainer(ctx, s.ID, s.containerID)
	})
	if err != nil {
		return nil, err
	}
	m.released(ctx, s)
	return s, nil
}

// released frees what a destroyed sandbox held outside its container: the
// pins of its mount points. A failure is logged (the sandbox is destroyed
// all the same); the pins then stay until another release of the same
// paths or the deletion of the workspace holding them.
func (m *Manager) released(ctx context.Context, s *Sandbox) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := m.unpinMountPoints(ctx, s.Mounts); err != nil {
		m.log.Error("destroyed sandbox: releasing its mount points", "sandbox", s.ID, "err", err)
	}
}

// removeContainer removes a sandbox's container, found by id or by label
// (a create may have died before recording the id). Gone already is fine.
func (m *Manager) removeContainer(ctx context.Context, sandboxID, containerID string) error {
	if containerID != "" {
		if err := m.rt.Remove(ctx, containerID); err != nil && !berth.IsKind(err, berth.NotFound) {
			return err
		}
	}
	cs, err := m.rt.List(ctx, map[string]string{LabelSandbox: sandboxID, LabelInstance: m.instance})
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := m.rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
			return err
		}
	}
	_, err = m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET ip = '' WHERE id = ?`), sandboxID)
	return db.Err(err)
}

// Keepalive resets a sandbox's idle timer.
func (m *Manager) Keepalive(ctx context.Context, idOrName string) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return nil, err
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return nil, err
	}
	if err := m.checkMountAccess(ctx, s); err != nil {
		return nil, err
	}
	if s.Status != Running && s.Status != Paused {
		return nil, berth.Errorf(berth.Conflict, "cannot keep sandbox %q alive: it is %s", s.Name, s.Status)
	}
	m.touch(ctx, s.ID)
	return m.load(ctx, m.db, `s.id = ?`, s.ID)
}

// touch records activity on id. A failure only makes an idle pause come
// sooner, so it is logged, not returned.
func (m *Manager) touch(ctx context.Context, id string) {
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET last_activity_at = ? WHERE id = ?`), m.now(), id); err != nil {
		m.log.Warn("record sandbox activity", "sandbox", id, "err", db.Err(err))
	}
}

// startExec makes sure a sandbox runs — resuming a paused one, as activity —
// and marks an exec in flight, under the sandbox's lock so that idle pause
// (which checks for execs under the same lock) cannot freeze it in between.
// The caller must call the returned func when the exec ends.
func (m *Manager) startExec(ctx context.Context, s *Sandbox, cancel context.CancelCauseFunc) (*Sandbox, func(), error) {
	// Stopped goes on to the access check under the lock: a sandbox cut off
	// is stopped, and the answer must say why.
	if s.Status != Running && s.Status != Paused && s.Status != Pausing && s.Status != Resuming && s.Status != Stopped {
		return nil, nil, berth.Errorf(berth.Conflict, "sandbox %q is %s; it must be running", s.Name, s.Status)
	}
	unlock, err := m.acquire(ctx, s.ID)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	cur, err := m.load(ctx, m.db, `s.id = ?`, s.ID)
	if err != nil {
		return nil, nil, err
	}
	denied, err := m.deniedMounts(ctx, cur)
	if err != nil {
		return nil, nil, err
	}
	if denied, err = m.detachDenied(ctx, cur, denied); err != nil {
		m.log.Error("detach a mount whose workspace the owner may no longer use", "sandbox", cur.ID, "err", err)
	}
	if len(denied) > 0 {
		// Still running although access is gone (a change made behind the
		// server's back, or a cut-off that failed): cut it off now.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessLostTimeout)
		defer cancel()
		if err := m.cutOff(cctx, cur, denied); err != nil {
			m.log.Error("cut off a sandbox whose owner lost access", "sandbox", cur.ID, "err", err)
		}
		return nil, nil, accessError(cur, denied)
	}
	if cur.Status == Paused {
		if cur, err = m.transitionLocked(ctx, s.ID, "resume", []Status{Paused}, Resuming, Running, m.unpause); err != nil {
			return nil, nil, err
		}
	}
	if cur.Status != Running {
		return nil, nil, berth.Errorf(berth.Conflict, "sandbox %q is %s; it must be running", cur.Name, cur.Status)
	}
	return cur, m.busy(s.ID, cancel), nil
}

// checkMountAccess refuses to run anything in a sandbox whose owner has
// lost access to a workspace it mounts (a grant revoked, a demotion, a
// removal): the mount was validated at create time, and revoking access
// must cut it off from then on, not only for new sandboxes. The owner's
// access counts, whoever calls (an admin starting a member's sandbox too).
func (m *Manager) checkMountAccess(ctx context.Context, s *Sandbox) error {
	denied, err := m.deniedMounts(ctx, s)
	if err != nil {
		return err
	}
	// An attached mount is detached rather than refused, under the
	// sandbox's lock (enforceAccess, startExec, a start).
	if denied = visibleDenied(denied); len(denied) == 0 {
		return nil
	}
	return accessError(s, denied)
}
