package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
)

func TestMigrationsAndErrorKinds(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		ins := d.Rebind(`INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`)
		if _, err := d.ExecContext(ctx, ins, "org_a", "a", now); err != nil {
			t.Fatal(err)
		}
		_, err := d.ExecContext(ctx, ins, "org_b", "a", now)
		if !berth.IsKind(db.Err(err), berth.Conflict) {
			t.Errorf("unique violation: %v, want Conflict", err)
		}
		_, err = d.ExecContext(ctx, d.Rebind(`INSERT INTO users (id, org_id, name, role, created_at) VALUES (?, ?, ?, ?, ?)`), "usr_x", "org_missing", "x", "member", now)
		if !berth.IsKind(db.Err(err), berth.Invalid) {
			t.Errorf("foreign key violation: %v, want Invalid", err)
		}
		var name string
		err = d.GetContext(ctx, &name, d.Rebind(`SELECT name FROM orgs WHERE id = ?`), "nope")
		if !berth.IsKind(db.Err(err), berth.NotFound) {
			t.Errorf("no rows: %v, want NotFound", err)
		}
		// Times round-trip in UTC at microsecond precision on both engines.
		var got time.Time
		if err := d.GetContext(ctx, &got, d.Rebind(`SELECT created_at FROM orgs WHERE id = ?`), "org_a"); err != nil {
			t.Fatal(err)
		}
		// (PostgreSQL rounds to the microsecond, SQLite keeps what it got.)
		if d := got.Sub(now); d >= time.Microsecond || d <= -time.Microsecond {
			t.Errorf("time round trip: %v, want %v", got, now)
		}
	})
}

func TestReopenKeepsSchema(t *testing.T) {
	path := t.TempDir() + "/berth.db"
	for i := 0; i < 2; i++ {
		d, err := db.Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := d.Get(&n, `SELECT COUNT(*) FROM goose_db_version WHERE is_applied`); err != nil || n < 1 {
			t.Errorf("open %d: schema history %d rows, %v", i, n, err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("close %d: %v", i, err)
		}
	}
}

// The API answers UTC timestamps (API.md), so the session is pinned to UTC
// whatever the server's TimeZone or the DSN's options say.
func TestPostgresTimesAreUTC(t *testing.T) {
	dsn := dbtest.PostgresDSN(t) + "&options=-c%20TimeZone%3DAmerica%2FNew_York&TimeZone=Asia%2FTokyo"
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	var got time.Time
	if err := d.Get(&got, `SELECT now()`); err != nil {
		t.Fatal(err)
	}
	if b, _ := got.MarshalJSON(); !strings.HasSuffix(string(b), `Z"`) {
		t.Errorf("timestamp from a non-UTC session: %s, want UTC", b)
	}
}
