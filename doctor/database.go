package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/db"
)

// Database checks that the database answers and that its schema is one
// this binary can serve (older is fine: serve migrates it at start). A
// SQLite file that does not exist yet is not created.
func Database(ctx context.Context, cfg Config) []Check {
	dsn := cfg.Database
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "berth.db")
	}
	where := "SQLite " + dsn
	if db.IsPostgres(dsn) {
		where = "PostgreSQL " + redact(dsn)
	} else if _, err := os.Stat(dsn); errors.Is(err, fs.ErrNotExist) {
		return []Check{
			{Name: "database", Status: OK, Message: where + " does not exist yet; berth serve creates it"},
		}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d, err := db.Connect(cctx, dsn)
	if err != nil {
		fix := "check --database and that the file's directory is readable"
		if db.IsPostgres(dsn) {
			fix = "start PostgreSQL, or fix --database (host, port, user, password, database name)"
		}
		return []Check{
			{Name: "database", Status: Fail, Message: fmt.Sprintf("cannot connect to %s: %v", where, err), Fix: fix},
			{Name: "migrations", Status: Warn, Message: "not checked: no database"},
		}
	}
	defer func() { _ = d.Close() }() // read only
	out := []Check{{Name: "database", Status: OK, Message: where + " answers"}}
	applied, latest, err := d.SchemaVersions(cctx)
	switch {
	case err != nil:
		out = append(out, Check{Name: "migrations", Status: Fail, Message: err.Error()})
	case applied == latest:
		out = append(out, Check{Name: "migrations", Status: OK, Message: fmt.Sprintf("schema at version %d, current", applied)})
	case applied == 0:
		out = append(out, Check{Name: "migrations", Status: OK, Message: fmt.Sprintf("empty database; berth serve creates the schema (version %d) at start", latest)})
	case applied < latest:
		out = append(out, Check{Name: "migrations", Status: Warn,
			Message: fmt.Sprintf("schema at version %d, this binary's is %d", applied, latest), Fix: "berth serve applies the rest at start"})
	default:
		out = append(out, Check{Name: "migrations", Status: Fail,
			Message: fmt.Sprintf("schema at version %d is newer than this binary's %d", applied, latest), Fix: "run the berth version that migrated it, or a newer one"})
	}
	return out
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}
