package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth"
)

// TestListSorted pages through a directory in every order, with pages
// smaller than the directory, and checks the concatenation against a sort of
// the whole directory done here.
func TestListSorted(t *testing.T) {
	w, dir := newWS(t, Options{})
	ctx := context.Background()
	type file struct {
		name  string
		size  int
		mtime time.Time
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var files []file
	for i := range 57 {
		// Sizes and times repeat, so ties (broken by name) cross pages.
		f := file{name: fmt.Sprintf("f%02d", (i*37)%57), size: (i % 7) * 10, mtime: base.Add(time.Duration(i%5) * time.Hour)}
		files = append(files, f)
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, make([]byte, f.size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	dirTime := base.Add(90 * time.Minute)
	if err := os.Chtimes(filepath.Join(dir, "dir"), dirTime, dirTime); err != nil {
		t.Fatal(err)
	}
	files = append(files, file{name: "dir", size: 0, mtime: dirTime})

	for _, tc := range []struct {
		sort string
		desc bool
		key  func(f file) int64
	}{
		{SortName, false, nil},
		{SortName, true, nil},
		{"", true, nil},
		{SortSize, false, func(f file) int64 { return int64(f.size) }},
		{SortSize, true, func(f file) int64 { return int64(f.size) }},
		{SortMTime, false, func(f file) int64 { return f.mtime.UnixNano() }},
		{SortMTime, true, func(f file) int64 { return f.mtime.UnixNano() }},
	} {
		want := slices.Clone(files)
		slices.SortFunc(want, func(a, b file) int {
			c := 0
			if tc.key != nil {
				if tc.key(a) < tc.key(b) {
					c = -1
				} else if tc.key(a) > tc.key(b) {
					c = 1
				}
			}
			if c == 0 {
				c = cmpString(a.name, b.name)
			}
			if tc.desc {
				c = -c
			}
			return c
		})
		var wantNames, got []string
		for _, f := range want {
			wantNames = append(wantNames, f.name)
		}
		cursor := ""
		for {
			p, err := w.List(ctx, "/", ListOptions{Limit: 8, Cursor: cursor, Sort: tc.sort, Desc: tc.desc})
			if err != nil {
				t.Fatalf("%s desc=%v: %v", tc.sort, tc.desc, err)
			}
			for _, e := range p.Entries {
				got = append(got, e.Name)
			}
			if !p.HasMore {
				break
			}
			cursor = p.NextCursor
		}
		if !slices.Equal(got, wantNames) {
			t.Errorf("sort %q desc=%v:\n got %v\nwant %v", tc.sort, tc.desc, got, wantNames)
		}
	}

	_, err := w.List(ctx, "/", ListOptions{Sort: "color"})
	wantKind(t, err, berth.Invalid)
	// A name cursor is not a size cursor.
	p, err := w.List(ctx, "/", ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.List(ctx, "/", ListOptions{Limit: 1, Cursor: p.NextCursor, Sort: SortSize})
	wantKind(t, err, berth.Invalid)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
