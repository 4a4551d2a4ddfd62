package storage_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/workspace/storage"
)

// Usage reads the quota tree by ioctl; the btrfs command (its fallback, and
// what an operator reads) must show the same numbers in every state: empty,
// written to without fsync, limited, shared with a clone and a snapshot,
// unlimited again.
func TestBtrfsUsageIoctlMatchesCLI(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	check := func(step, id string, wantLimit int64) storage.Usage {
		t.Helper()
		u, err := p.drv.Usage(ctx, id) // commits the pool first
		must(t, err)
		cli, err := storage.CLIUsage(ctx, p.drv.Path(id))
		must(t, err)
		if u != cli {
			t.Errorf("%s: ioctl usage of %s %+v, btrfs qgroup show %+v", step, id, u, cli)
		}
		if u.Limit != wantLimit {
			t.Errorf("%s: limit of %s %d, want %d", step, id, u.Limit, wantLimit)
		}
		return u
	}
	empty := check("empty", "a", 0)

	// Written without fsync: Usage's commit makes it count.
	dir := p.drv.Path("a")
	must(t, os.WriteFile(filepath.Join(dir, "f"), randBytes(t, 2<<20), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	for _, n := range []string{"x", "y", "z"} {
		must(t, os.WriteFile(filepath.Join(dir, "sub", n), randBytes(t, 100<<10), 0o644))
	}
	u := check("written", "a", 0)
	if u.Bytes < empty.Bytes+2<<20+300<<10 {
		t.Errorf("after writing 2.3 MiB without fsync usage is %d bytes (empty %d): the commit did not count them", u.Bytes, empty.Bytes)
	}

	must(t, p.drv.SetQuota(ctx, "a", 64<<20))
	check("limited", "a", 64<<20)
	_, err := p.drv.Snapshot(ctx, "a", "s")
	must(t, err)
	must(t, p.drv.Clone(ctx, "a", "", "b"))
	check("snapshotted", "a", 64<<20)
	check("clone", "b", 0)
	must(t, p.drv.SetQuota(ctx, "b", 32<<20))
	check("clone limited", "b", 32<<20)
	must(t, p.drv.SetQuota(ctx, "a", 0))
	check("unlimited", "a", 0)
}

// CommittedUsage reads without committing: after a commit it agrees with
// Usage, and it never counts more than Usage does.
func TestBtrfsCommittedUsage(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	must(t, p.drv.SetQuota(ctx, "a", 32<<20))
	must(t, os.WriteFile(filepath.Join(p.drv.Path("a"), "f"), randBytes(t, 1<<20), 0o644))
	u, err := p.drv.Usage(ctx, "a") // commits
	must(t, err)
	c, err := p.drv.CommittedUsage(ctx, "a")
	must(t, err)
	if c != u {
		t.Errorf("committed usage %+v right after Usage's commit, want %+v", c, u)
	}
	if _, err := p.drv.CommittedUsage(ctx, "nope"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("committed usage of a missing workspace: %v, want not_found", err)
	}
}
