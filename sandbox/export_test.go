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
