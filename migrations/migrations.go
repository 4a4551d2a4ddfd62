// Package migrations embeds the SQL schema history, one directory per engine.
// It lives apart from db/ because go:embed cannot reach parent directories.
package migrations

import "embed"

// FS holds sqlite/*.sql and postgres/*.sql, goose-annotated, applied in order.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
