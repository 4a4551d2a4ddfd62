package db

import "time"

// CheckNow makes l's watch check its session at once (PostgreSQL locks).
func (l *Lock) CheckNow() { l.kick <- struct{}{} }

// SetLockWatchInterval sets how often locks made from now on check their
// session, until restore.
func SetLockWatchInterval(d time.Duration) (restore func()) {
	old := lockWatchInterval
	lockWatchInterval = d
	return func() { lockWatchInterval = old }
}
