package db

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth"
)

// Page is keyset pagination over (created_at, id), oldest first: stable
// while rows are added, and each page costs one index range scan.
type Page struct {
	Limit   int
	after   time.Time
	afterID string
}

// Page size bounds of every paginated list (API.md: 1..500, default 50).
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ParsePage validates a limit (0: the default) and an opaque cursor that an
// earlier page gave out ("" for the first page).
func ParsePage(limit int, cursor string) (Page, error) {
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return Page{}, berth.Errorf(berth.Invalid, "limit must be between 1 and %d", MaxLimit)
	}
	p := Page{Limit: limit}
	if cursor == "" {
		return p, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	ts, id, ok := strings.Cut(string(b), "|")
	t, perr := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !ok || perr != nil || id == "" {
		return Page{}, berth.Errorf(berth.Invalid, "cursor is not one this server gave out")
	}
	p.after, p.afterID = t, id
	return p, nil
}

// Where is the condition selecting rows after the cursor, for a table
// aliased alias; ok is false on the first page.
func (p Page) Where(alias string) (cond string, args []any, ok bool) {
	if p.afterID == "" {
		return "", nil, false
	}
	return fmt.Sprintf(`(%[1]s.created_at > ? OR (%[1]s.created_at = ? AND %[1]s.id > ?))`, alias),
		[]any{p.after, p.after, p.afterID}, true
}

// OrderLimit orders a page and fetches one row more than the limit, which
// tells whether another page follows.
func (p Page) OrderLimit(alias string) string {
	return fmt.Sprintf(` ORDER BY %[1]s.created_at, %[1]s.id LIMIT %[2]d`, alias, p.Limit+1)
}

// Trim cuts the extra row fetched by OrderLimit and returns the cursor of the
// next page ("" on the last), from the key of the last row kept.
func Trim[T any](p Page, rows []T, key func(T) (time.Time, string)) ([]T, string) {
	if len(rows) <= p.Limit {
		return rows, ""
	}
	rows = rows[:p.Limit]
	t, id := key(rows[len(rows)-1])
	return rows, base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + id))
}
