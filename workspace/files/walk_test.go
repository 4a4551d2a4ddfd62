package files

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestWalkLargeDirectory: a directory larger than a batch is walked whole,
// each name once, while the walk holds at most walkBatch of its names.
func TestWalkLargeDirectory(t *testing.T) {
	w, dir := newWS(t, Options{NoUsageWatch: true})
	const n = 2*walkBatch + 5
	mkEntries(t, filepath.Join(dir, "big"), n, 0, nil)
	if err := os.Mkdir(filepath.Join(dir, "big", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mkEntries(t, filepath.Join(dir, "big", "sub"), walkBatch+1, 0, nil)
	top, err := openDir(w.root, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = top.Close() }() // a directory read: nothing to lose
	seen := map[string]bool{}
	held := 0
	wk := &walker{}
	wk.visit = func(e *entry) (bool, error) {
		rel := e.rel()
		if seen[rel] {
			t.Errorf("%s visited twice", rel)
		}
		seen[rel] = true
		for _, f := range wk.stack {
			held = max(held, len(f.names)+1) // +1: the name being visited
		}
		return true, nil
	}
	if err := wk.run(context.Background(), top); err != nil {
		t.Fatal(err)
	}
	if want := n + 1 + walkBatch + 1; len(seen) != want {
		t.Fatalf("visited %d entries, want %d", len(seen), want)
	}
	if held > walkBatch {
		t.Fatalf("held %d names of one directory; want at most %d", held, walkBatch)
	}
}
