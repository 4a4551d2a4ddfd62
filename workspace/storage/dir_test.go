package storage_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/workspace/storage"
)

func TestDir(t *testing.T) {
	ctx := testctx.Context(t)
	d := storage.NewDir(filepath.Join(t.TempDir(), "workspaces"))
	if c := d.Caps(); c != (storage.Caps{}) {
		t.Errorf("dir caps %+v, want none", c)
	}
	must(t, d.Create(ctx, "a"))
	if err := d.Create(ctx, "a"); !berth.IsKind(err, berth.Conflict) {
		t.Errorf("second create: %v, want conflict", err)
	}
	if err := d.Create(ctx, ".."); !berth.IsKind(err, berth.Invalid) {
		t.Errorf("create ..: %v, want invalid_request", err)
	}
	u, err := d.Usage(ctx, "a")
	must(t, err)
	if u.Bytes != 0 {
		t.Errorf("empty workspace uses %d", u.Bytes)
	}
	writeFile(t, filepath.Join(d.Path("a"), "f"), randBytes(t, 64<<10))
	must(t, os.Link(filepath.Join(d.Path("a"), "f"), filepath.Join(d.Path("a"), "hardlink")))
	must(t, os.MkdirAll(filepath.Join(d.Path("a"), "sub"), 0o755))
	writeFile(t, filepath.Join(d.Path("a"), "sub", "g"), randBytes(t, 8<<10))
	u, err = d.Usage(ctx, "a")
	must(t, err)
	if u.Bytes != 72<<10 {
		t.Errorf("usage %d, want %d (a hard link counted once)", u.Bytes, 72<<10)
	}
	// The dir driver has no kernel quota: SetQuota records nothing.
	must(t, d.SetQuota(ctx, "a", 1))
	writeFile(t, filepath.Join(d.Path("a"), "past-quota"), randBytes(t, 4096))

	if _, err := d.Snapshot(ctx, "a", "s"); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("snapshot: %v, want not_supported", err)
	}
	if _, err := d.Snapshots(ctx, "a"); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("snapshots: %v, want not_supported", err)
	}
	if err := d.Restore(ctx, "a", "s"); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("restore: %v, want not_supported", err)
	}
	if err := d.DeleteSnapshot(ctx, "a", "s"); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("delete snapshot: %v, want not_supported", err)
	}
	if err := d.Clone(ctx, "a", "", "b"); !berth.IsKind(err, berth.NotSupported) {
		t.Errorf("clone: %v, want not_supported", err)
	}

	must(t, d.Remove(ctx, "a"))
	if _, err := os.Stat(d.Path("a")); !os.IsNotExist(err) {
		t.Errorf("after remove: %v", err)
	}
	must(t, d.Remove(ctx, "a"))
	if _, err := d.Usage(ctx, "a"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("usage of a removed workspace: %v, want not_found", err)
	}
}
