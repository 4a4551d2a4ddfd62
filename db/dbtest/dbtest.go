// Package dbtest gives tests an isolated, migrated database on every engine
// the machine offers: SQLite always, PostgreSQL when BERTH_TEST_POSTGRES holds
// a DSN (CI sets it; there a missing server is a failure, not a skip).
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/internal/testctx"
)

// Engines runs fn once per available engine as a subtest named after it.
func Engines(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	if os.Getenv("BERTH_TEST_POSTGRES") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set: PostgreSQL store tests cannot run")
		}
		t.Log("BERTH_TEST_POSTGRES not set: skipping the PostgreSQL run")
		return
	}
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite opens a fresh SQLite database in a temporary directory.
func SQLite(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), filepath.Join(t.TempDir(), "berth.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return d
}

// PostgresDSN creates an empty database on the BERTH_TEST_POSTGRES server,
// dropped when the test ends, and returns its DSN.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("BERTH_TEST_POSTGRES")
	if base == "" {
		t.Skip("BERTH_TEST_POSTGRES not set")
	}
	admin, err := sqlx.Open("postgres", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer func() {
		if err := admin.Close(); err != nil {
			t.Errorf("close postgres admin connection: %v", err)
		}
	}()
	var b [6]byte
	rand.Read(b[:])
	name := "berth_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sqlx.Open("postgres", base)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		if _, err := a.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("close postgres admin connection: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse BERTH_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Postgres opens a fresh PostgreSQL database.
func Postgres(t testing.TB) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), PostgresDSN(t))
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close postgres: %v", err)
		}
	})
	return d
}
