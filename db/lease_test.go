package db_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
)

func needPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv("BERTH_TEST_POSTGRES") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
		}
		t.Skip("BERTH_TEST_POSTGRES not set")
	}
}

// TestReplicasShareTheServerLock: servers started with --replicas hold the
// database together; a server without it is refused while they do, and
// they are refused while it runs. SQLite refuses replicas.
func TestReplicasShareTheServerLock(t *testing.T) {
	needPostgres(t)
	ctx := testctx.Context(t)
	d := dbtest.Postgres(t)
	a, err := d.LockServer(ctx, db.Holder{Host: "a", PID: 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.LockServer(ctx, db.Holder{Host: "b", PID: 2}, true)
	if err != nil {
		t.Fatalf("second replica: %v", err)
	}
	var held *db.HeldError
	if _, err := d.LockServer(ctx, db.Holder{Host: "c", PID: 3}, false); !errors.As(err, &held) || !held.Replicas ||
		!strings.Contains(err.Error(), "--replicas") {
		t.Fatalf("single server beside replicas: %v, want a HeldError naming --replicas", err)
	}
	if err := errors.Join(a.Close(), b.Close()); err != nil {
		t.Fatal(err)
	}
	// The backends of the closed sessions end (and let go) a moment later.
	var single *db.Lock
	testctx.Eventually(t, "a single server to take the database the replicas left", func() bool {
		single, err = d.LockServer(ctx, db.Holder{Host: "c", PID: 3}, false)
		return err == nil
	})
	defer func() { _ = single.Close() }()
	if _, err := d.LockServer(ctx, db.Holder{Host: "a", PID: 1}, true); !errors.As(err, &held) || held.Replicas || held.Holder.Host != "c" {
		t.Fatalf("replica beside a single server: %v, want held by c", err)
	}

	sq, err := db.Open(ctx, t.TempDir()+"/berth.db")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sq.Close() }()
	if _, err := sq.LockServer(ctx, db.Holder{Host: "a", PID: 1}, true); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("replicas on SQLite: %v, want refused", err)
	}
}

// TestLeases: a lease has one holder at a time; its holder renews it; an
// expired one is taken over; a released one is free.
func TestLeases(t *testing.T) {
	needPostgres(t)
	ctx := testctx.Context(t)
	d := dbtest.Postgres(t)
	a := d.NewLeases("inst_a", time.Hour)
	b := d.NewLeases("inst_b", time.Hour)
	take := func(l *db.Leases, name string) bool {
		t.Helper()
		ok, err := l.TryAcquire(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !take(a, "sandbox:x") || !take(a, "sandbox:x") {
		t.Fatal("a cannot take or renew a free lease")
	}
	if take(b, "sandbox:x") {
		t.Fatal("b took a lease a holds")
	}
	if err := b.Release(ctx, "sandbox:x"); err != nil {
		t.Fatal(err)
	}
	if take(b, "sandbox:x") {
		t.Fatal("b's release freed a's lease")
	}
	if err := a.Release(ctx, "sandbox:x"); err != nil {
		t.Fatal(err)
	}
	if !take(b, "sandbox:x") {
		t.Fatal("b cannot take a released lease")
	}
	// A holder that stops renewing (died) loses the lease once expired.
	short := d.NewLeases("inst_dead", time.Millisecond)
	if !take(short, "leader") {
		t.Fatal("cannot take a free leader lease")
	}
	testctx.Eventually(t, "the dead holder's lease taken over", func() bool { return take(a, "leader") })
	if take(short, "leader") {
		t.Fatal("the old holder took back a lease renewed by its new holder")
	}
}
