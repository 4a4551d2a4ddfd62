package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
)

func TestKeysetPagination(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		// 7 rows, two of them sharing a timestamp, so the id breaks the tie.
		for i := 0; i < 7; i++ {
			ts := base.Add(time.Duration(i/2*2) * time.Second)
			if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`),
				fmt.Sprintf("org_%d", i), fmt.Sprintf("o%d", i), ts); err != nil {
				t.Fatal(err)
			}
		}
		type org struct {
			ID        string    `db:"id"`
			CreatedAt time.Time `db:"created_at"`
		}
		var seen []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			p, err := db.ParsePage(3, cursor)
			if err != nil {
				t.Fatal(err)
			}
			q := `SELECT o.id, o.created_at FROM orgs o`
			var args []any
			if cond, a, ok := p.Where("o"); ok {
				q += ` WHERE ` + cond
				args = a
			}
			var rows []org
			if err := d.SelectContext(ctx, &rows, d.Rebind(q+p.OrderLimit("o")), args...); err != nil {
				t.Fatal(err)
			}
			rows, next := db.Trim(p, rows, func(o org) (time.Time, string) { return o.CreatedAt, o.ID })
			for _, r := range rows {
				seen = append(seen, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if fmt.Sprint(seen) != "[org_0 org_1 org_2 org_3 org_4 org_5 org_6]" {
			t.Errorf("pages gave %v", seen)
		}
	})
}

func TestParsePageRejects(t *testing.T) {
	for _, c := range []struct {
		limit  int
		cursor string
	}{{-1, ""}, {501, ""}, {10, "not-base64!"}, {10, "Zm9v"}} {
		if _, err := db.ParsePage(c.limit, c.cursor); !berth.IsKind(err, berth.Invalid) {
			t.Errorf("ParsePage(%d, %q): %v, want Invalid", c.limit, c.cursor, err)
		}
	}
}
