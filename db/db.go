// Package db opens berth's metadata database — embedded SQLite by default,
// PostgreSQL for production — applies the embedded migrations, and translates
// driver errors into berth error kinds.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/migrations"
)

func init() {
	// Queries are written once with '?' placeholders and rebound per engine.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Engine names the SQL engine behind a DB.
type Engine string

const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// DB is the metadata database.
type DB struct {
	*sqlx.DB
	Engine Engine
	path   string // the SQLite file; "" for PostgreSQL
	dsn    string // PostgreSQL: what Listen connects to
}

// IsPostgres reports whether dsn selects PostgreSQL.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn (a postgres:// URL, or a SQLite file path) and applies
// every pending migration.
func Open(ctx context.Context, dsn string) (*DB, error) {
	d, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

// Connect connects to dsn without migrating: a server takes the database
// (LockServer) before it changes the schema under anyone.
func Connect(ctx context.Context, dsn string) (*DB, error) {
	var (
		d   *DB
		err error
	)
	if IsPostgres(dsn) {
		d, err = openPostgres(dsn)
	} else {
		d, err = openSQLite(dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := d.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("connect to %s database: %w", d.Engine, err), d.Close())
	}
	return d, nil
}

func openSQLite(path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Immediate transactions take the write lock up front, so concurrent
	// writers wait on busy_timeout instead of failing on lock upgrade.
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	x, err := sqlx.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	x.SetMaxOpenConns(8)
	return &DB{DB: x, Engine: SQLite, path: path}, nil
}

func openPostgres(dsn string) (*DB, error) {
	dsn, err := utcSession(dsn)
	if err != nil {
		return nil, err
	}
	x, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	x.SetMaxOpenConns(20)
	return &DB{DB: x, Engine: Postgres, dsn: dsn}, nil
}

// utcSession pins the session time zone to UTC, whatever the server's
// TimeZone setting or the DSN's options say: the driver returns timestamps
// in the session's zone, and the API answers RFC 3339 UTC (API.md). An
// explicit startup parameter overrides "options=-c TimeZone=...".
func utcSession(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// Not %w: url.Error quotes the whole DSN, password included.
		return "", fmt.Errorf("the postgres DSN is not a valid URL")
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "timezone") {
			q.Del(k)
		}
	}
	q.Set("timezone", "UTC")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Migrate applies every pending migration.
func (d *DB) Migrate(ctx context.Context) error {
	dialect := goose.DialectSQLite3
	if d.Engine == Postgres {
		dialect = goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations.FS, string(d.Engine))
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(dialect, d.DB.DB, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Tx runs fn in a transaction, committing when it returns nil.
func (d *DB) Tx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := d.BeginTxx(ctx, nil)
	if err != nil {
		return Err(err)
	}
	defer func() {
		// A panicking fn must not leave the transaction (and its
		// connection) open; the panic itself is what matters.
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", Err(rerr)))
		}
		return err
	}
	return Err(tx.Commit())
}

// Err translates driver errors into berth kinds: unique violations become
// Conflict, missing rows NotFound, a lost connection Unavailable. Errors that
// already carry a kind pass through.
func Err(err error) error {
	if err == nil {
		return nil
	}
	var be *berth.Error
	if errors.As(err, &be) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return berth.Wrap(berth.NotFound, err, "not found")
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return berth.Wrap(berth.Conflict, err, "already exists")
		case "23503":
			return berth.Wrap(berth.Invalid, err, "refers to something that does not exist")
		}
		if strings.HasPrefix(string(pe.Code), "08") || pe.Code == "57P01" {
			return berth.Wrap(berth.Unavailable, err, "database unavailable")
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return berth.Wrap(berth.Conflict, err, "already exists")
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return berth.Wrap(berth.Invalid, err, "refers to something that does not exist")
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return berth.Wrap(berth.Unavailable, err, "database busy")
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, driverBadConn) {
		return berth.Wrap(berth.Unavailable, err, "database unavailable")
	}
	return err
}
