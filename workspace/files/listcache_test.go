package files

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testctx"
)

// settled waits until dir's last change is older than snapRacy, so that a
// snapshot of it is kept (a real wait on the clock, not a sleep).
func settled(t *testing.T, dir string) {
	t.Helper()
	testctx.Eventually(t, "the directory's last change to age past snapRacy", func() bool {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		return time.Since(snapStamp{st.Mtim, st.Ctim}.newest()) >= snapRacy
	})
}

func mkNames(t *testing.T, dir string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("f%05d", i)
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, i%13), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// traverse pages through "/" and returns the names, calling between(page)
// after each page but the last.
func traverse(t *testing.T, w *Workspace, opt ListOptions, between func(page int)) []string {
	t.Helper()
	var got []string
	for page := 0; ; page++ {
		p, err := w.List(context.Background(), "/", opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			got = append(got, e.Name)
		}
		if !p.HasMore {
			return got
		}
		if between != nil {
			between(page)
		}
		opt.Cursor = p.NextCursor
	}
}

// TestListSnapshot: a full traversal reads the directory once; a change
// between pages is seen (the snapshot is rebuilt) with the keyed cursor's
// guarantee: entries present throughout appear exactly once, a new entry
// past the cursor appears, a removed one does not.
func TestListSnapshot(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	want := mkNames(t, dir, 1234)
	settled(t, dir)

	for _, sortBy := range []string{SortName, SortSize} {
		before := snapBuilds.Load()
		got := traverse(t, w, ListOptions{Limit: 100, Sort: sortBy}, nil)
		if builds := snapBuilds.Load() - before; builds != 1 {
			t.Errorf("sort %s: %d directory reads for a traversal of 13 pages, want 1", sortBy, builds)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("sort %s: got %d names, want %d", sortBy, len(got), len(want))
		}
	}
	// The name order's first page is served from the snapshot too.
	before := snapBuilds.Load()
	if _, err := w.List(context.Background(), "/", ListOptions{Limit: 100}); err != nil {
		t.Fatal(err)
	}
	if n := snapBuilds.Load() - before; n != 0 {
		t.Errorf("first page of an unchanged directory read it %d times", n)
	}

	got := traverse(t, w, ListOptions{Limit: 100}, func(page int) {
		if page != 3 {
			return
		}
		for _, n := range []string{"f00001x", "f00999x"} { // before and after the cursor
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []string{"f00002", "f01000"} {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				t.Fatal(err)
			}
		}
	})
	seen := map[string]int{}
	for _, n := range got {
		seen[n]++
	}
	for _, n := range want {
		if n == "f01000" {
			if seen[n] != 0 {
				t.Errorf("%s was removed past the cursor but listed", n)
			}
			continue
		}
		if n != "f00002" && seen[n] != 1 {
			t.Errorf("%s listed %d times", n, seen[n])
		}
	}
	if seen["f00999x"] != 1 || seen["f00001x"] != 0 {
		t.Errorf("new entries: after the cursor %d times (want 1), before it %d times (want 0)", seen["f00999x"], seen["f00001x"])
	}
	if !slices.IsSorted(got) {
		t.Error("traversal out of order")
	}
}

// TestListSnapshotBounded: a directory larger than one snapshot may be is
// listed by the heap pass, with the same result, and the snapshots of the
// process stay within their budget, the least recently used evicted.
func TestListSnapshotBounded(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	want := mkNames(t, dir, 700)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want = append(want, "sub")
	for i := range 700 {
		if err := os.WriteFile(filepath.Join(dir, "sub", fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	settled(t, dir)
	settled(t, filepath.Join(dir, "sub"))

	oldMax, oldBudget := snapMaxBytes, snapBudget
	t.Cleanup(func() { snapMaxBytes, snapBudget = oldMax, oldBudget })

	snapMaxBytes = 1000 // a few names
	before := snapBuilds.Load()
	got := traverse(t, w, ListOptions{Limit: 50}, nil)
	if !slices.Equal(got, want) {
		t.Fatalf("heap pass: got %d names, want %d", len(got), len(want))
	}
	if n := snapBuilds.Load() - before; n != 15 {
		t.Errorf("%d snapshot attempts for 15 pages, want one per page (none kept)", n)
	}

	// Room for one of the two directories: listing the other evicts it.
	snapMaxBytes = oldMax
	snapBudget = 60 * 1000
	first := func(p string) {
		t.Helper()
		if _, err := w.List(context.Background(), p, ListOptions{Limit: 50}); err != nil {
			t.Fatal(err)
		}
	}
	first("/")
	first("/sub")
	snapshots.mu.Lock()
	n, bytes := len(snapshots.m), snapshots.bytes
	snapshots.mu.Unlock()
	if n != 1 || bytes > snapBudget {
		t.Errorf("%d snapshots of %d bytes kept, want 1 within %d", n, bytes, snapBudget)
	}
	before = snapBuilds.Load()
	first("/sub") // the one kept
	first("/")    // evicted: read again
	if n := snapBuilds.Load() - before; n != 1 {
		t.Errorf("%d directory reads, want 1 (the evicted one)", n)
	}
}
