package storage_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/workspace/storage"
)

// Decide picks the driver from --storage and what the data directory
// holds, and refuses combinations that would hide workspaces.
func TestDecide(t *testing.T) {
	dir := t.TempDir() // not on btrfs on the test machines (checked below)
	p, err := storage.Decide(storage.Config{DataDir: dir})
	must(t, err)
	if p.Driver != "dir" || p.Root != filepath.Join(dir, "workspaces") {
		t.Fatalf("auto on a data dir not on btrfs: %+v (if the temp dir is on btrfs, this test needs another)", p)
	}
	p, err = storage.Decide(storage.Config{DataDir: dir, Driver: "btrfs", PoolSize: 1 << 30})
	must(t, err)
	if p.Driver != "btrfs" || p.PoolFile != filepath.Join(dir, storage.PoolFileName) || p.PoolSize != 1<<30 || p.PoolExists {
		t.Errorf("btrfs on a data dir not on btrfs: %+v, want a new 1 GiB pool file", p)
	}
	if _, err := storage.Decide(storage.Config{DataDir: dir, Driver: "zfs"}); !berth.IsKind(err, berth.Invalid) {
		t.Errorf("--storage zfs: %v, want invalid", err)
	}
	// A pool file left by an earlier btrfs start: auto keeps using it,
	// and dir is refused rather than hiding those workspaces.
	must(t, os.WriteFile(filepath.Join(dir, storage.PoolFileName), make([]byte, 4096), 0o600))
	p, err = storage.Decide(storage.Config{DataDir: dir})
	must(t, err)
	if p.Driver != "btrfs" || !p.PoolExists || p.PoolSize != 4096 {
		t.Errorf("auto with a pool file: %+v", p)
	}
	if _, err := storage.Decide(storage.Config{DataDir: dir, Driver: "dir"}); !berth.IsKind(err, berth.Invalid) {
		t.Errorf("--storage dir with a pool file: %v, want invalid", err)
	}
}

// Open on a host that cannot run btrfs (here: a pool too small to make)
// fails with a message, and leaves nothing mounted.
func TestOpenRefusesWhatTheHostCannotDo(t *testing.T) {
	need(t)
	dir := t.TempDir()
	_, _, err := storage.Open(testctx.Context(t), storage.Config{DataDir: dir, Driver: "btrfs", PoolSize: 1 << 20})
	if !berth.IsKind(err, berth.Invalid) {
		t.Fatalf("a 1 MiB pool: %v, want invalid", err)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.PoolFileName)); !os.IsNotExist(err) {
		t.Errorf("a failed Open left the pool file: %v", err)
	}
}
