// Package testctx gives tests deadlines that follow the test binary's own
// (go test -timeout) instead of fixed wall-clock guards, which fail on a
// busy machine however correct the code is.
package testctx

import (
	"context"
	"testing"
	"time"
)

// Hang is the limit for waits that only exist to catch a hang (a server
// that does not shut down, a cleanup that never returns): far longer than
// anything takes on a loaded machine, far shorter than forever.
const Hang = 5 * time.Minute

// Context returns the test's context (ended when the test finishes), with
// a deadline shortly before the test binary's: an operation that hangs
// fails the test with an error, and its cleanups still run, instead of the
// binary panicking with everything left behind. Without a binary deadline
// (-timeout 0) the context has none either.
func Context(t testing.TB) context.Context {
	ctx := t.Context()
	d, ok := Deadline(t)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// Deadline is the test binary's deadline less a grace for cleanups and the
// report (a tenth of the time left, between 5 s and a minute); ok is false
// when there is none or t cannot tell (benchmarks).
func Deadline(t testing.TB) (time.Time, bool) {
	dt, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}, false
	}
	d, ok := dt.Deadline()
	if !ok {
		return time.Time{}, false
	}
	grace := min(max(time.Until(d)/10, 5*time.Second), time.Minute)
	return d.Add(-grace), true
}

// Cleanup returns a context for cleanup work registered with t.Cleanup,
// when the test's context has ended: its own deadline of Hang.
func Cleanup() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), Hang)
}

// Eventually polls cond until it holds, failing t if the test's deadline
// comes first. It is for state that changes in the background with no event
// to wait on (a counter, a session the database ends, a process being
// killed); never a timing assertion. Polls start fast and back off to
// 100 ms, so a quick change is seen quickly and a slow one costs little.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx := Context(t)
	wait := 5 * time.Millisecond
	for !cond() {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.Fatalf("gave up waiting for %s: the test's deadline came first", what)
		case <-timer.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
