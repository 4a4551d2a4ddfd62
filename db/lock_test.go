package db_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
)

// lockHolderPID is the PostgreSQL backend holding the server lock of d's
// database, 0 when none does.
func lockHolderPID(t *testing.T, d *db.DB) int {
	t.Helper()
	var pids []int
	if err := d.Select(&pids, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	if len(pids) > 1 {
		t.Fatalf("%d sessions hold advisory locks", len(pids))
	}
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

func terminate(t *testing.T, d *db.DB, pid int) {
	t.Helper()
	if _, err := d.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
}

// TestServerLockSessionLoss: when the lock's PostgreSQL session ends (the
// database restarted, the backend was killed), the holder takes the lock
// again on a new session; if another server took it meanwhile, the holder
// learns that it lost it.
func TestServerLockSessionLoss(t *testing.T) {
	if os.Getenv("BERTH_TEST_POSTGRES") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
		}
		t.Skip("BERTH_TEST_POSTGRES not set")
	}
	ctx := context.Background()
	d := dbtest.Postgres(t)
	// Checks happen when the test says (CheckNow), never in between.
	defer db.SetLockWatchInterval(time.Hour)()
	self := db.Holder{Host: "h1", PID: 1, Since: time.Now()}

	l, err := d.LockServer(ctx, self, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	first := lockHolderPID(t, d)
	terminate(t, d, first)
	testctx.Eventually(t, "the lock taken again on a new session", func() bool {
		l.CheckNow()
		pid := lockHolderPID(t, d)
		return pid != 0 && pid != first
	})
	select {
	case <-l.Lost():
		t.Fatalf("lock lost after its session ended with nobody else around: %v", l.Err())
	default:
	}
	var held *db.HeldError
	if _, err := d.LockServer(ctx, db.Holder{Host: "h2", PID: 2}, false); !errors.As(err, &held) || held.Holder.Host != "h1" || held.Holder.PID != 1 {
		t.Fatalf("second taker after the re-take: %v, want held by h1 pid 1", err)
	}

	// Session gone and another server quicker: lost.
	terminate(t, d, lockHolderPID(t, d))
	var other *db.Lock
	testctx.Eventually(t, "another server taking the free lock", func() bool {
		other, err = d.LockServer(ctx, db.Holder{Host: "h2", PID: 2}, false)
		return err == nil
	})
	defer func() { _ = other.Close() }()
	l.CheckNow()
	select {
	case <-l.Lost():
	case <-time.After(60 * time.Second):
		t.Fatal("the holder did not learn it lost the lock")
	}
	if !errors.As(l.Err(), &held) || held.Holder.Host != "h2" {
		t.Errorf("lost lock's error %v, want held by h2", l.Err())
	}
}
