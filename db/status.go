package db

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/migrations"
)

// SchemaVersions reports the newest migration applied to the database
// (0 on a database berth never started on) and the newest this binary
// carries, without changing anything: goose's own status calls create its
// version table, which `berth doctor` must not do to a database it only
// looks at.
func (d *DB) SchemaVersions(ctx context.Context) (applied, latest int64, err error) {
	latest, err = latestMigration(d.Engine)
	if err != nil {
		return 0, 0, err
	}
	var exists bool
	if d.Engine == Postgres {
		err = d.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists)
	} else {
		var n int
		err = d.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`).Scan(&n)
		exists = n > 0
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	var v *int64
	if err := d.QueryRowContext(ctx, `SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&v); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if v != nil {
		applied = *v
	}
	return applied, latest, nil
}

// latestMigration is the highest version among the embedded migrations of
// engine (file names start with it: 00003_agents.sql).
func latestMigration(engine Engine) (int64, error) {
	entries, err := fs.ReadDir(migrations.FS, string(engine))
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		latest = max(latest, n)
	}
	return latest, nil
}
