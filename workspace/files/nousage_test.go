package files

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
)

// A tree opened with NoUsage (a snapshot read) is never scanned: its usage
// says so instead of measuring, and reads work.
func TestNoUsageNeverScans(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, Options{NoUsage: true, NoUsageWatch: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testctx.Context(t)
	if err := w.Usage().Wait(ctx); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("usage of an unmeasured tree: %v, want not_supported", err)
	}
	if n := w.Usage().Used(); n != 0 {
		t.Errorf("an unmeasured tree reports %d bytes used: it was scanned", n)
	}
	w.Usage().Invalidate() // no tracker: nothing to wake
	if _, err := w.Stat(ctx, "/f"); err != nil {
		t.Errorf("stat in an unmeasured tree: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
