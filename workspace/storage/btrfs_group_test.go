package storage_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
)

// The quota counts the live tree and every snapshot, each extent once:
// bytes only a snapshot still holds count against the workspace, and
// deleting the snapshot gives them back.
func TestBtrfsQuotaCountsSnapshots(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	const limit = 24 << 20
	must(t, p.drv.SetQuota(ctx, "a", limit))
	dir := p.drv.Path("a")
	writeFile(t, filepath.Join(dir, "first"), randBytes(t, 10<<20))
	before, err := p.drv.Usage(ctx, "a")
	must(t, err)

	// A snapshot shares every extent with the live tree: it adds nothing.
	_, err = p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Bytes > before.Bytes+64<<10 || u.LiveBytes > u.Bytes {
		t.Errorf("right after a snapshot: %+v, before it %+v; want the same bytes (shared extents count once)", u, before)
	}
	su, err := p.drv.SnapshotUsage(ctx, "a", "s1")
	must(t, err)
	if su.ExclusiveBytes > 64<<10 || su.ReferencedBytes < 10<<20 {
		t.Errorf("snapshot usage right after it was taken %+v: want ~0 exclusive, >= 10 MiB referenced", su)
	}

	// Deleting the file frees nothing: the snapshot holds it.
	must(t, os.Remove(filepath.Join(dir, "first")))
	u, err = p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Bytes < 10<<20 || u.LiveBytes > 1<<20 {
		t.Errorf("after deleting the snapshotted file: %+v; want >= 10 MiB in all, < 1 MiB live", u)
	}
	su, err = p.drv.SnapshotUsage(ctx, "a", "s1")
	must(t, err)
	if su.ExclusiveBytes < 10<<20 {
		t.Errorf("snapshot usage after the live tree dropped its file %+v: want >= 10 MiB exclusive", su)
	}

	// Writing again: the kernel stops the writer once the live tree and
	// the snapshot together reach the limit (10 MiB of the 24 are held by
	// the snapshot).
	n, err := fill(t, filepath.Join(dir, "second"), 4*limit)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("writing past live + snapshot bytes: %d bytes, error %v; want EDQUOT", n, err)
	}
	if n > limit-10<<20 {
		t.Errorf("wrote %d bytes beside a snapshot holding 10 MiB under a %d limit", n, limit)
	}
	u, err = p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Bytes > limit || u.Bytes < u.LiveBytes+10<<20 {
		t.Errorf("at the limit: %+v", u)
	}

	// Deleting the snapshot frees its bytes (once the kernel's cleaner
	// has dropped it) and the writer can go on.
	must(t, p.drv.DeleteSnapshot(ctx, "a", "s1"))
	testctx.Eventually(t, "the deleted snapshot's bytes freed", func() bool {
		u, err := p.drv.Usage(ctx, "a")
		must(t, err)
		return u.Bytes <= u.LiveBytes+64<<10
	})
	if n, err := fill(t, filepath.Join(dir, "third"), 8<<20); err != nil {
		t.Fatalf("writing 8 MiB after deleting the snapshot: %d bytes, %v", n, err)
	}
}

// A restore's new live tree, a clone and the clone's snapshots all join the
// right group; the quota and the numbers survive a restart.
func TestBtrfsGroupsAcrossRestoreCloneAndReopen(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	const limit = 24 << 20
	must(t, p.drv.SetQuota(ctx, "a", limit))
	dir := p.drv.Path("a")
	writeFile(t, filepath.Join(dir, "f"), randBytes(t, 8<<20))
	_, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	must(t, os.Remove(filepath.Join(dir, "f")))
	writeFile(t, filepath.Join(dir, "g"), randBytes(t, 4<<20))

	// After the restore the live tree is the snapshot's again (the 4 MiB
	// of g are gone once the old live tree is dropped) and still in the
	// group with the limit.
	must(t, p.drv.Restore(ctx, "a", "s1"))
	testctx.Eventually(t, "the old live tree dropped", func() bool {
		u, err := p.drv.Usage(ctx, "a")
		must(t, err)
		return u.Bytes < 10<<20
	})
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Limit != limit || u.LiveBytes < 8<<20 {
		t.Errorf("after restore: %+v, want limit %d and the 8 MiB file live", u, limit)
	}
	if n, err := fill(t, filepath.Join(dir, "big"), 4*limit); !errors.Is(err, syscall.EDQUOT) || n > limit {
		t.Errorf("after restore a write past the quota: %d bytes, %v; want EDQUOT", n, err)
	}
	must(t, os.Remove(filepath.Join(dir, "big")))

	// A clone has its own group: its own snapshots count there, not in
	// the origin's.
	must(t, p.drv.Clone(ctx, "a", "s1", "c"))
	must(t, p.drv.SetQuota(ctx, "c", 16<<20))
	_, err = p.drv.Snapshot(ctx, "c", "cs")
	must(t, err)
	must(t, os.Remove(filepath.Join(p.drv.Path("c"), "f")))
	cu, err := p.drv.Usage(ctx, "c")
	must(t, err)
	if cu.Limit != 16<<20 || cu.Bytes < 8<<20 || cu.LiveBytes > 1<<20 {
		t.Errorf("clone after snapshot and delete: %+v; want its snapshot's 8 MiB counted, limit 16 MiB", cu)
	}
	if n, err := fill(t, filepath.Join(p.drv.Path("c"), "big"), 4<<20); err != nil {
		t.Errorf("the clone's own quota has room for 4 MiB: %d bytes, %v", n, err)
	}
	if n, err := fill(t, filepath.Join(p.drv.Path("c"), "big"), 16<<20); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("the clone past its own quota: %d bytes, %v; want EDQUOT", n, err)
	}
	ua, err := p.drv.Usage(ctx, "a")
	must(t, err)

	p.close(t)
	p.open(t)
	ua2, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if ua2 != ua {
		t.Errorf("usage of a across a restart %+v, before %+v", ua2, ua)
	}
	if n, err := fill(t, filepath.Join(dir, "big"), 4*limit); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("after a restart a write past the quota: %d bytes, %v; want EDQUOT", n, err)
	}
	if inconsistent(t, p.cfg.Root) {
		t.Error("quota inconsistent after the clone (no rescan?)")
	}
}

// A pool made before workspace groups (each quota a limit on the live
// subvolume's own qgroup, snapshots in no group) is migrated at Open.
func TestBtrfsOpenMigratesOldWorkspaces(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	p.close(t)
	// Build the old layout with the btrfs command on the mounted pool.
	mnt := p.cfg.Root
	run(t, "mount", "-t", "btrfs", "-o", "loop", p.cfg.PoolFile, mnt)
	run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "old"))
	run(t, "btrfs", "qgroup", "limit", "24M", filepath.Join(mnt, "old"))
	writeFile(t, filepath.Join(mnt, "old", "f"), randBytes(t, 8<<20))
	must(t, os.MkdirAll(filepath.Join(mnt, ".snapshots", "old"), 0o700))
	run(t, "btrfs", "subvolume", "snapshot", "-r", filepath.Join(mnt, "old"), filepath.Join(mnt, ".snapshots", "old", "s1"))
	must(t, os.Remove(filepath.Join(mnt, "old", "f")))
	run(t, "umount", mnt)
	testctx.Eventually(t, "the loop device detached", func() bool { return len(loopsLeft(t, p.cfg.PoolFile)) == 0 })

	p.open(t)
	u, err := p.drv.Usage(ctx, "old")
	must(t, err)
	if u.Limit != 24<<20 || u.Bytes < 8<<20 || u.LiveBytes > 1<<20 {
		t.Errorf("migrated workspace: %+v; want the limit moved to its group and the snapshot's 8 MiB counted", u)
	}
	if inconsistent(t, p.cfg.Root) {
		t.Error("quota inconsistent after the migration")
	}
	if n, err := fill(t, filepath.Join(p.drv.Path("old"), "big"), 64<<20); !errors.Is(err, syscall.EDQUOT) || n > 16<<20 {
		t.Errorf("migrated workspace past live + snapshot bytes: %d bytes, %v; want EDQUOT by 16 MiB", n, err)
	}
	// A second Open finds nothing to migrate.
	p.close(t)
	p.open(t)
	if u2, err := p.drv.Usage(ctx, "old"); err != nil || u2.Limit != 24<<20 {
		t.Errorf("after a second open: %+v, %v", u2, err)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// inconsistent reads the kernel's qgroup status of the pool at root.
func inconsistent(t testing.TB, root string) bool {
	t.Helper()
	out, err := exec.Command("btrfs", "filesystem", "show", root).Output()
	must(t, err)
	var uuid string
	for _, f := range strings.Fields(string(out)) {
		if len(f) == 36 && strings.Count(f, "-") == 4 {
			uuid = f
			break
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/fs/btrfs/%s/qgroups/inconsistent", uuid))
	must(t, err)
	return strings.TrimSpace(string(b)) != "0"
}

// A deleted workspace's group goes too: at once when the kernel lets it,
// else at the next Open.
func TestBtrfsRemoveDropsGroup(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	must(t, p.drv.Create(ctx, "b"))
	writeFile(t, filepath.Join(p.drv.Path("a"), "f"), randBytes(t, 1<<20))
	_, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	must(t, p.drv.Remove(ctx, "a"))
	// Wait for the kernel to finish cleaning up the deleted subvolumes, as
	// a restart some time later would find them.
	run(t, "btrfs", "subvolume", "sync", p.cfg.Root)
	p.close(t)
	p.open(t)
	if gs := level1Groups(t, p.cfg.Root); len(gs) != 1 {
		t.Errorf("workspace groups after removing a and reopening: %v, want b's alone", gs)
	}
	if u, err := p.drv.Usage(ctx, "b"); err != nil || u.Bytes <= 0 {
		t.Errorf("b after a's removal: %+v, %v", u, err)
	}
}

func level1Groups(t testing.TB, root string) []string {
	t.Helper()
	out, err := exec.Command("btrfs", "qgroup", "show", "--raw", root).Output()
	must(t, err)
	var gs []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "1/") {
			gs = append(gs, f[0])
		}
	}
	return gs
}
