package workspace

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth"
)

// waitStats blocks until cond holds for the gate's counts; it waits on the
// gate's change signal, not on time.
func waitStats(t *testing.T, g *archiveGate, cond func(ArchiveStats) bool) {
	t.Helper()
	for {
		st := g.stats()
		if cond(st) {
			return
		}
		select {
		case <-st.Changed:
		case <-t.Context().Done():
			t.Fatal("test ended waiting for the gate")
		}
	}
}

// TestArchiveGate: with Max slots taken, the next archive waits for one to
// free, and is refused (Unavailable with a BusyError carrying Retry-After)
// when none frees within Wait.
func TestArchiveGate(t *testing.T) {
	ctx := t.Context()
	stop := make(chan struct{})
	const max = 2
	t.Run("waits for a turn", func(t *testing.T) {
		g := newArchiveGate(ArchiveLimits{Max: max, Wait: time.Hour})
		var held []func()
		for range max {
			done, err := g.start(ctx, stop)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, done)
		}
		got := make(chan error, 1)
		go func() {
			done, err := g.start(ctx, stop)
			if err == nil {
				done()
			}
			got <- err
		}()
		waitStats(t, g, func(st ArchiveStats) bool { return st.Waiting == 1 })
		select {
		case err := <-got:
			t.Fatalf("archive %d started while %d were running: %v", max+1, max, err)
		default:
		}
		held[0]()
		held[0]() // done is idempotent: one slot back, not two
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		waitStats(t, g, func(st ArchiveStats) bool { return st.Running == max-1 && st.Waiting == 0 })
		held[1]()
		if st := g.stats(); st.Running != 0 {
			t.Fatalf("%d running after all finished", st.Running)
		}
	})
	t.Run("refused after Wait", func(t *testing.T) {
		// The slots stay taken throughout, so the outcome does not depend
		// on how fast the machine is.
		g := newArchiveGate(ArchiveLimits{Max: 1, Wait: time.Millisecond})
		done, err := g.start(ctx, stop)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		_, err = g.start(ctx, stop)
		var busy *BusyError
		if !berth.IsKind(err, berth.Unavailable) || !errors.As(err, &busy) || busy.RetryAfter != time.Millisecond {
			t.Fatalf("got %v, want Unavailable with a BusyError", err)
		}
	})
	t.Run("client leaves or server stops", func(t *testing.T) {
		g := newArchiveGate(ArchiveLimits{Max: 1, Wait: time.Hour})
		done, err := g.start(ctx, stop)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := g.start(cctx, stop); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
		stopped := make(chan struct{})
		close(stopped)
		if _, err := g.start(ctx, stopped); !berth.IsKind(err, berth.Unavailable) {
			t.Fatalf("stopping server: %v", err)
		}
		if st := g.stats(); st.Waiting != 0 || st.Running != 1 {
			t.Fatalf("stats after refusals: %+v", st)
		}
	})
}
