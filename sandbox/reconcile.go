package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime"
)

// Reconcile compares the database (desired state) with the engine (actual
// state) and closes the gap:
//   - a sandbox whose lock is held is mid-operation here (or, with
//     replicas, its lease is held: mid-operation on another server) and is
//     left alone; a crashed server's lease expires, and then its sandbox is
//     reconciled like any other;
//   - every decision is taken on the row as read under the sandbox's lock:
//     the list of ids is only a list of candidates, and a sandbox destroyed
//     between that list and the lock stays destroyed;
//   - creating (no create in flight: the server died mid-create) → its
//     container, if any, is removed and the sandbox is error;
//   - destroying → the container is removed and the sandbox destroyed;
//   - a sandbox whose container is gone → error, with the reason (one
//     being removed outside berth is left until it is gone);
//   - a sandbox in error keeps no container (one can appear after the
//     server died mid-create: the engine finishes a create whose caller is
//     gone), since only destroy is allowed from there;
//   - a sandbox whose owner may no longer use a workspace it mounts is
//     stopped, with the reason (the backstop of AccessLost);
//   - otherwise the status follows the container (running, paused, stopped);
//   - a container of this instance with no live sandbox is removed (every
//     one: several may carry the same sandbox label, or none).
func (m *Manager) Reconcile(ctx context.Context) error {
	defer m.events.fullPasses.Add(1) // counted once done
	cs, err := m.rt.List(ctx, map[string]string{LabelInstance: m.instance})
	if err != nil {
		return err
	}
	byID := map[string]runtime.Container{}
	for _, c := range cs {
		byID[c.Labels[LabelSandbox]] = c
	}
	var ids []string
	if err := m.db.SelectContext(ctx, &ids, `SELECT id FROM sandboxes WHERE status <> 'destroyed'`); err != nil {
		return db.Err(err)
	}
	if hook := m.afterList.Load(); hook != nil {
		(*hook)()
	}
	// One sandbox that cannot be reconciled (an engine call failing for
	// it) does not hold up the others.
	var errs []error
	live := map[string]bool{}
	for _, id := range ids {
		live[id] = true
		unlock, ok := m.tryAcquire(ctx, id)
		if !ok {
			continue
		}
		err := m.reconcileOne(ctx, id, byID)
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: %w", id, err))
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
	}
	for _, c := range cs {
		sid := c.Labels[LabelSandbox]
		if live[sid] {
			continue
		}
		unlock, ok := m.tryAcquire(ctx, sid)
		if !ok {
			continue // being created right now
		}
		// Re-check under the lock: the create may have committed meanwhile.
		// A failed check removes nothing.
		var n int
		if err := m.db.GetContext(ctx, &n, m.db.Rebind(`SELECT COUNT(*) FROM sandboxes WHERE id = ? AND status <> 'destroyed'`), sid); err != nil {
			unlock()
			return errors.Join(append(errs, db.Err(err))...)
		}
		if n == 0 {
			m.log.Info("reconcile: removing container without a sandbox", "container", c.ID, "sandbox", sid)
			if err := m.rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
				errs = append(errs, err)
			}
		}
		unlock()
	}
	return errors.Join(errs...)
}

func (m *Manager) reconcileOne(ctx context.Context, id string, byID map[string]runtime.Container) error {
	s, err := m.load(ctx, m.db, `s.id = ?`, id)
	if err != nil {
		return err
	}
	if s.Status == Destroyed {
		// Destroyed after the list of ids was read: its container is gone
		// on purpose, and nothing may bring the row back.
		return nil
	}
	c, exists := byID[id]
	// The list was taken before this sandbox's lock: an operation may have
	// changed the container since. Look again, now that nothing else can.
	if s.containerID != "" {
		fresh, err := m.rt.Inspect(ctx, s.containerID)
		switch {
		case err == nil:
			c, exists = fresh, true
		case berth.IsKind(err, berth.NotFound):
			exists = false
		default:
			return err
		}
	}
	switch {
	case s.Status == Creating:
		m.log.Warn("reconcile: sandbox was left creating (server stopped mid-create)", "sandbox", id)
		if err := m.removeContainer(ctx, id, s.containerID); err != nil {
			return err
		}
		return m.setStatus(ctx, id, Error, "interrupted while creating: the server stopped before the sandbox was ready")
	case s.Status == Destroying:
		if err := m.removeContainer(ctx, id, s.containerID); err != nil {
			return err
		}
		if err := m.setStatus(ctx, id, Destroyed, ""); err != nil {
			return err
		}
		m.released(ctx, s)
		return nil
	case !exists || c.State == runtime.StateRemoving:
		// Being removed counts as gone: berth's own removals hold the
		// lock, so this one is not berth's. (Following the engine's
		// events, the reconciler sees that state, which a periodic pass
		// rarely did; taken as a status it became "destroying", then
		// "destroyed".)
		if s.Status == Error {
			return nil
		}
		m.log.Warn("reconcile: container is gone", "sandbox", id, "status", s.Status)
		return m.setStatus(ctx, id, Error, "its container was removed outside berth (last status "+string(s.Status)+")")
	case s.Status == Error:
		m.log.Warn("reconcile: removing the container of a sandbox in error", "sandbox", id, "container", c.ID)
		return m.removeContainer(ctx, id, s.containerID)
	case c.State == runtime.StateRemoving:
		// Being removed outside berth (berth's own destroy is Destroying,
		// above): judged once it is gone, as a container removed.
		return nil
	}
	// The backstop of AccessLost: access lost by another path, or while the
	// server was down, still stops the sandbox — also one whose container
	// was started behind berth's back.
	denied, err := m.deniedMounts(ctx, s)
	if err != nil {
		return err
	}
	if denied, err = m.detachDenied(ctx, s, denied); err != nil {
		m.log.Error("reconcile: detach a mount whose workspace the owner may no longer use", "sandbox", id, "err", err)
	}
	if len(denied) > 0 {
		if st := statusOf(c.State); st == Running || st == Paused {
			s.Status = st
		}
		return m.cutOff(ctx, s, denied)
	}
	if actual := statusOf(c.State); actual != s.Status {
		m.log.Info("reconcile: status follows the engine", "sandbox", id, "was", s.Status, "now", actual)
		if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET ip = ? WHERE id = ?`), c.IPAddress, id); err != nil {
			return db.Err(err)
		}
		return m.setStatus(ctx, id, actual, "")
	}
	return nil
}

// errSkip leaves a sandbox alone in a loop.
var errSkip = errors.New("skip")

// PauseIdle pauses every running sandbox whose idleTimeout has passed since
// its last activity.
func (m *Manager) PauseIdle(ctx context.Context) error {
	var rows []struct {
		ID           string    `db:"id"`
		IdleTimeout  int64     `db:"idle_timeout"`
		LastActivity time.Time `db:"last_activity_at"`
	}
	if err := m.db.SelectContext(ctx, &rows, `SELECT id, idle_timeout, last_activity_at FROM sandboxes WHERE status = 'running' AND idle_timeout > 0`); err != nil {
		return db.Err(err)
	}
	now := m.now()
	for _, r := range rows {
		if now.Sub(r.LastActivity) < time.Duration(r.IdleTimeout)*time.Second || m.execsInFlight(r.ID) > 0 {
			continue
		}
		unlock, ok := m.tryAcquire(ctx, r.ID)
		if !ok {
			continue
		}
		// Re-read under the lock: an exec may have just counted as activity.
		var last time.Time
		err := db.Err(m.db.GetContext(ctx, &last, m.db.Rebind(`SELECT last_activity_at FROM sandboxes WHERE id = ? AND status = 'running'`), r.ID))
		if err != nil && !berth.IsKind(err, berth.NotFound) { // NotFound: no longer running
			m.log.Warn("idle pause: re-read the sandbox", "sandbox", r.ID, "err", err)
		}
		if err == nil && m.opts.Leases != nil {
			// Execs on other servers hold leases of their own.
			var elsewhere bool
			if elsewhere, err = m.opts.Leases.AnyValid(ctx, "exec:"+r.ID+":"); err != nil {
				m.log.Warn("idle pause: look for execs on other servers", "sandbox", r.ID, "err", err)
			} else if elsewhere {
				err = errSkip
			}
		}
		if err == nil && now.Sub(last) >= time.Duration(r.IdleTimeout)*time.Second && m.execsInFlight(r.ID) == 0 {
			m.log.Info("pausing idle sandbox", "sandbox", r.ID, "idleTimeout", r.IdleTimeout)
			_, err = m.transitionLocked(ctx, r.ID, "pause", []Status{Running}, Pausing, Paused, func(ctx context.Context, s *Sandbox) error {
				return m.rt.Pause(ctx, s.containerID)
			})
			if err != nil {
				m.log.Warn("idle pause failed", "sandbox", r.ID, "err", err)
			}
		}
		unlock()
	}
	return nil
}
