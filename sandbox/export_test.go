package sandbox

// SetReconcileHook makes Reconcile call fn after it has read the ids of the
// live sandboxes and before it locks any of them, so that tests can finish
// another operation exactly in that window. nil removes the hook.
func (m *Manager) SetReconcileHook(fn func()) {
	if fn == nil {
		m.afterList.Store(nil)
		return
	}
	m.afterList.Store(&fn)
}

// FullPasses is how many full reconcile passes have finished.
func (m *Manager) FullPasses() int64 { return m.events.fullPasses.Load() }

// EventReconciles is how many sandboxes were reconciled on an engine event.
func (m *Manager) EventReconciles() int64 { return m.events.reconciled.Load() }

// EventConnects is how many times the engine's event stream was established.
func (m *Manager) EventConnects() int64 { return m.events.connects.Load() }

// DropEvents ends the current event stream, as an engine restart would.
func (m *Manager) DropEvents() {
	m.events.mu.Lock()
	defer m.events.mu.Unlock()
	if m.events.drop != nil {
		m.events.drop()
	}
}
