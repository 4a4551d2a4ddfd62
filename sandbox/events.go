package sandbox

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime"
)

// The event-driven reconciler. Asking the engine about every sandbox every
// few seconds costs CPU in berth and in the engine for nothing while
// sandboxes sit idle; with a runtime.Watcher, berth follows the engine's
// event stream instead and reconciles one sandbox when its container
// changes. A full pass still runs every FullReconcileInterval (a safety
// net) and each time the stream (re)connects, since events that happen
// while no stream is open are lost.

// retryBusy is how soon a sandbox whose lock was held when its event came
// is looked at again (the operation holding it is usually berth's own, and
// then the event changes nothing).
const retryBusy = time.Second

// eventStats are the follower's counters and its stream's cancel, for
// tests and benchmarks.
type eventStats struct {
	fullPasses atomic.Int64 // Reconcile calls finished, whoever made them
	reconciled atomic.Int64 // sandboxes reconciled on an event
	connects   atomic.Int64 // event streams established

	mu   sync.Mutex
	drop context.CancelFunc // ends the current stream
}

// follow runs until Close: it keeps an event stream open (reconnecting
// with backoff), reconciles the sandboxes named by its events, and runs
// the full passes.
func (m *Manager) follow() {
	defer m.wg.Done()
	full := time.NewTicker(m.opts.FullReconcileInterval)
	defer full.Stop()
	retry := time.NewTicker(retryBusy)
	defer retry.Stop()
	pending := map[string]bool{}
	fullPass := func() {
		if !m.leader() {
			return // with replicas, one reconciler at a time: the leader
		}
		if err := m.Reconcile(m.bg); err != nil && m.bg.Err() == nil {
			m.log.Warn("reconcile failed", "err", err)
		}
	}
	backoff := time.Second
	wasLeader := m.leader()
	for m.bg.Err() == nil {
		ctx, cancel := context.WithCancel(m.bg)
		m.events.mu.Lock()
		m.events.drop = cancel
		m.events.mu.Unlock()
		events, errs := m.watcher.Watch(ctx, map[string]string{LabelInstance: m.instance})
		select {
		case err := <-errs:
			cancel()
			if m.bg.Err() != nil {
				return
			}
			m.log.Warn("reconcile: cannot follow the engine's events; retrying", "err", err, "in", backoff)
			wait := time.NewTimer(backoff)
			select {
			case <-m.bg.Done():
			case <-wait.C:
			case <-full.C:
				fullPass() // keep reconciling while the stream is down
			}
			wait.Stop()
			backoff = min(2*backoff, time.Minute)
			continue
		default:
		}
		backoff = time.Second
		m.events.connects.Add(1)
		// Whatever changed while no stream was open.
		fullPass()
	stream:
		for {
			select {
			case <-m.bg.Done():
				break stream
			case e := <-events:
				if sid := e.Labels[LabelSandbox]; sid != "" {
					pending[sid] = true
					m.reconcilePending(pending)
				}
			case err := <-errs:
				if m.bg.Err() == nil {
					m.log.Warn("reconcile: the engine's event stream ended; reconnecting", "err", err)
				}
				break stream
			case <-retry.C:
				if lead := m.leader(); lead != wasLeader {
					wasLeader = lead
					// A server that just became the leader missed the
					// events the old one handled: one full pass.
					fullPass()
				}
				m.reconcilePending(pending)
			case <-full.C:
				fullPass()
			}
		}
		cancel()
	}
}

// reconcilePending reconciles the sandboxes in pending and forgets each
// one done; one whose lock is held stays for the next retry.
func (m *Manager) reconcilePending(pending map[string]bool) {
	if !m.leader() {
		// Another server reconciles (and sees the same events); the
		// leader's full pass after it takes over covers what it missed.
		clear(pending)
		return
	}
	for sid := range pending {
		busy, err := m.reconcileSandbox(m.bg, sid)
		if busy {
			continue
		}
		delete(pending, sid)
		if err != nil && m.bg.Err() == nil {
			m.log.Warn("reconcile on an engine event failed", "sandbox", sid, "err", err)
		}
	}
}

// reconcileSandbox does for one sandbox what a full pass does for each:
// the same decisions, taken under its lock (busy when another holds it).
func (m *Manager) reconcileSandbox(ctx context.Context, sid string) (busy bool, err error) {
	// The sandbox's lock and, with replicas, its lease: a sandbox another
	// server is working on (creating it, say) is busy, not left behind.
	unlock, ok := m.tryAcquire(ctx, sid)
	if !ok {
		return true, nil
	}
	defer unlock()
	m.events.reconciled.Add(1)
	cs, err := m.rt.List(ctx, map[string]string{LabelInstance: m.instance, LabelSandbox: sid})
	if err != nil {
		return false, err
	}
	var n int
	if err := m.db.GetContext(ctx, &n, m.db.Rebind(`SELECT COUNT(*) FROM sandboxes WHERE id = ? AND status <> 'destroyed'`), sid); err != nil {
		return false, db.Err(err)
	}
	if n > 0 {
		byID := map[string]runtime.Container{}
		for _, c := range cs {
			byID[sid] = c
		}
		return false, m.reconcileOne(ctx, sid, byID)
	}
	for _, c := range cs {
		m.log.Info("reconcile: removing container without a sandbox", "container", c.ID, "sandbox", sid)
		if err := m.rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
			return false, err
		}
	}
	return false, nil
}
