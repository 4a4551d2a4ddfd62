package storage_test

import (
	"bytes"
	"context"

	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/workspace/storage"
)

// need skips t when the host cannot run a real btrfs loop pool, or fails
// it under CI=true, where the pool must be available (.ci/run installs
// btrfs-progs).
func need(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root (btrfs pool tests mount a loop device)"
	case !haveCmd("btrfs") || !haveCmd("mkfs.btrfs"):
		why = "btrfs-progs not installed (apt-get install btrfs-progs)"
	case !haveCmd("losetup"):
		why = "losetup not installed"
	}
	if why == "" {
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			why = "no loop devices (/dev/loop-control: " + err.Error() + ")"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the btrfs pool tests cannot run: %s", why)
	}
	t.Skipf("skipping btrfs pool test: %s", why)
}

func haveCmd(name string) bool { _, err := exec.LookPath(name); return err == nil }

type pool struct {
	cfg storage.BtrfsConfig
	drv *storage.Btrfs
}

// newPool makes a sparse pool file in a temporary directory and opens the
// driver on it, mounted at <dir>/workspaces. Cleanup unmounts it and
// detaches its loop device, whatever state the test left it in.
func newPool(t testing.TB) *pool { return newPoolSized(t, 512<<20) }

// newPoolSized is newPool with a pool file of size bytes (sparse: it takes
// host space only as it fills).
func newPoolSized(t testing.TB, size int64) *pool {
	need(t)
	dir := t.TempDir()
	p := &pool{cfg: storage.BtrfsConfig{
		Root:     filepath.Join(dir, "workspaces"),
		PoolFile: filepath.Join(dir, "storage", "pool.img"),
		PoolSize: size,
	}}
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		if p.drv != nil {
			if err := p.drv.Close(ctx); err != nil {
				t.Errorf("close pool: %v", err)
			}
		}
		// Whatever the test did: nothing stays mounted, no loop device
		// stays attached to the pool file.
		if mountedAt(t, p.cfg.Root) {
			t.Errorf("pool still mounted at %s after Close", p.cfg.Root)
			if out, err := exec.CommandContext(ctx, "umount", "-l", p.cfg.Root).CombinedOutput(); err != nil {
				t.Errorf("umount -l %s: %v: %s", p.cfg.Root, err, out)
			}
		}
		for _, dev := range loopsLeft(t, p.cfg.PoolFile) {
			t.Errorf("loop device %s still attached to the pool after Close", dev)
			if out, err := exec.CommandContext(ctx, "losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v: %s", dev, err, out)
			}
		}
	})
	p.open(t)
	return p
}

func (p *pool) open(t testing.TB) {
	t.Helper()
	d, err := storage.OpenBtrfs(testctx.Context(t), p.cfg)
	if err != nil {
		t.Fatalf("open btrfs pool: %v", err)
	}
	p.drv = d
}

func (p *pool) close(t *testing.T) {
	t.Helper()
	if err := p.drv.Close(testctx.Context(t)); err != nil {
		t.Fatal(err)
	}
	p.drv = nil
}

func mountedAt(t testing.TB, path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func loopsOf(t testing.TB, file string) []string {
	out, err := exec.Command("losetup", "-j", file, "-O", "NAME", "-n").Output()
	if err != nil {
		t.Errorf("losetup -j %s: %v", file, err)
		return nil
	}
	return strings.Fields(string(out))
}

// loopsLeft waits for the loop devices attached to file to detach and
// returns those still attached when it gives up. Since Linux 5.17 a loop
// device set to clear itself (mount -o loop) detaches in the background
// after the unmount: a check right after Close would race it.
func loopsLeft(t testing.TB, file string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // hang guard
	defer cancel()
	wait := 5 * time.Millisecond
	for {
		loops := loopsOf(t, file)
		if len(loops) == 0 {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return loops
		case <-timer.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes data and fsyncs it, so that the qgroup sees it at the
// next commit.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	must(t, errors.Join(err, f.Close()))
}

// fill appends 256 KiB chunks to path until a write fails or max bytes are
// written; it returns the bytes written and the error.
func fill(t testing.TB, path string, max int) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	must(t, err)
	defer f.Close() //nolint:errcheck // the error that matters is the write's or the sync's
	chunk := randBytes(t, 256<<10)
	n := 0
	for n < max {
		w, err := f.Write(chunk)
		n += w
		if err != nil {
			return n, err
		}
	}
	return n, f.Sync()
}

func TestBtrfsQuotaStopsWritesWithEDQUOT(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	must(t, p.drv.Create(ctx, "b"))
	const limit = 8 << 20
	must(t, p.drv.SetQuota(ctx, "a", limit))

	n, err := fill(t, filepath.Join(p.drv.Path("a"), "big"), 4*limit)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("writing 32 MiB into an 8 MiB workspace: %d bytes, error %v; want EDQUOT", n, err)
	}
	if n > limit || n < limit/2 {
		t.Errorf("stopped after %d bytes, want between %d and the limit %d", n, limit/2, limit)
	}
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Limit != limit || u.Bytes > limit {
		t.Errorf("usage %+v, want limit %d and bytes within it", u, limit)
	}

	// The other workspace has no quota: the limit is per subvolume.
	if n, err := fill(t, filepath.Join(p.drv.Path("b"), "big"), 2*limit); err != nil {
		t.Fatalf("writing into the workspace without quota: %d bytes, %v", n, err)
	}

	// Raising the quota lets the writer continue.
	must(t, p.drv.SetQuota(ctx, "a", 3*limit))
	if n, err := fill(t, filepath.Join(p.drv.Path("a"), "big"), limit); err != nil {
		t.Fatalf("writing 8 MiB more after raising the quota to 24 MiB: %d bytes, %v", n, err)
	}
	// Clearing it removes the limit.
	must(t, p.drv.SetQuota(ctx, "a", 0))
	if u, err := p.drv.Usage(ctx, "a"); err != nil || u.Limit != 0 {
		t.Fatalf("after clearing the quota: %+v, %v", u, err)
	}
	if n, err := fill(t, filepath.Join(p.drv.Path("a"), "big"), 3*limit); err != nil {
		t.Fatalf("writing after clearing the quota: %d bytes, %v", n, err)
	}
}

func TestBtrfsUsageIsExact(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	empty, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if empty.Bytes <= 0 || empty.Bytes > 64<<10 {
		t.Fatalf("empty workspace uses %d bytes, want its root's tree block", empty.Bytes)
	}
	dir := p.drv.Path("a")
	writeFile(t, filepath.Join(dir, "one"), randBytes(t, 1<<20))
	writeFile(t, filepath.Join(dir, "three"), randBytes(t, 3<<20))
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if want := empty.Bytes + 4<<20; u.Bytes != want {
		t.Errorf("after writing 4 MiB: %d bytes, want %d", u.Bytes, want)
	}
	must(t, os.Remove(filepath.Join(dir, "one")))
	u, err = p.drv.Usage(ctx, "a")
	must(t, err)
	if want := empty.Bytes + 3<<20; u.Bytes != want {
		t.Errorf("after deleting 1 MiB: %d bytes, want %d", u.Bytes, want)
	}
	if _, err := p.drv.Usage(ctx, "nope"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("usage of a missing workspace: %v, want not_found", err)
	}
}

func TestBtrfsSnapshotRestore(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	must(t, p.drv.SetQuota(ctx, "a", 64<<20))
	dir := p.drv.Path("a")
	v1 := randBytes(t, 1<<20)
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	writeFile(t, filepath.Join(dir, "sub", "x"), v1)

	s, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	if _, err := p.drv.Snapshot(ctx, "a", "s1"); !berth.IsKind(err, berth.Conflict) {
		t.Errorf("second snapshot s1: %v, want conflict", err)
	}
	if _, err := p.drv.Snapshot(ctx, "a", "../b"); !berth.IsKind(err, berth.Invalid) {
		t.Errorf("snapshot named ../b: %v, want invalid_request", err)
	}

	// The snapshot is read-only: neither changing nor adding works.
	if err := os.WriteFile(filepath.Join(s.Path, "sub", "x"), []byte("no"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing into a snapshot: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(s.Path, "new"), []byte("no"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("creating a file in a snapshot: %v, want EROFS", err)
	}

	// Change the live tree, then restore.
	writeFile(t, filepath.Join(dir, "sub", "x"), []byte("v2"))
	writeFile(t, filepath.Join(dir, "y"), []byte("added after"))
	if got, _ := os.ReadFile(filepath.Join(s.Path, "sub", "x")); !bytes.Equal(got, v1) {
		t.Fatal("the snapshot changed with the live tree")
	}
	must(t, p.drv.Restore(ctx, "a", "s1"))
	got, err := os.ReadFile(filepath.Join(dir, "sub", "x"))
	must(t, err)
	if !bytes.Equal(got, v1) {
		t.Errorf("after restore x has %d bytes, not the snapshot's", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, "y")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file added after the snapshot survives the restore: %v", err)
	}
	// The restored tree is writable, keeps the quota, and the snapshot
	// is still there.
	writeFile(t, filepath.Join(dir, "z"), []byte("writable"))
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Limit != 64<<20 {
		t.Errorf("after restore the limit is %d, want 64 MiB", u.Limit)
	}
	snaps, err := p.drv.Snapshots(ctx, "a")
	must(t, err)
	if len(snaps) != 1 || snaps[0].ID != "s1" {
		t.Errorf("snapshots after restore: %+v", snaps)
	}
	if err := p.drv.Restore(ctx, "a", "nope"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("restore of a missing snapshot: %v, want not_found", err)
	}
	// No leftovers of the swap beside the workspaces.
	ents, err := os.ReadDir(p.cfg.Root)
	must(t, err)
	for _, e := range ents {
		if e.Name() != "a" && e.Name() != ".snapshots" {
			t.Errorf("left in the pool root after restore: %s", e.Name())
		}
	}

	must(t, p.drv.DeleteSnapshot(ctx, "a", "s1"))
	if snaps, err := p.drv.Snapshots(ctx, "a"); err != nil || len(snaps) != 0 {
		t.Errorf("snapshots after deleting s1: %+v, %v", snaps, err)
	}
	if err := p.drv.DeleteSnapshot(ctx, "a", "s1"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("deleting s1 twice: %v, want not_found", err)
	}
}

func TestBtrfsCloneDiverges(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	orig := randBytes(t, 512<<10)
	writeFile(t, filepath.Join(p.drv.Path("a"), "f"), orig)
	_, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	writeFile(t, filepath.Join(p.drv.Path("a"), "after"), []byte("after the snapshot"))

	must(t, p.drv.Clone(ctx, "a", "", "live-clone"))
	must(t, p.drv.Clone(ctx, "a", "s1", "snap-clone"))
	if err := p.drv.Clone(ctx, "a", "", "live-clone"); !berth.IsKind(err, berth.Conflict) {
		t.Errorf("clone onto an existing workspace: %v, want conflict", err)
	}
	if err := p.drv.Clone(ctx, "a", "nope", "x"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("clone from a missing snapshot: %v, want not_found", err)
	}

	// The live clone has everything, the snapshot clone what the snapshot had.
	if _, err := os.Stat(filepath.Join(p.drv.Path("live-clone"), "after")); err != nil {
		t.Errorf("live clone lacks a file of the live tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.drv.Path("snap-clone"), "after")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snapshot clone has a file made after the snapshot: %v", err)
	}
	// Both are writable and diverge from the origin.
	for _, c := range []string{"live-clone", "snap-clone"} {
		writeFile(t, filepath.Join(p.drv.Path(c), "f"), []byte("changed in "+c))
		must(t, os.Remove(filepath.Join(p.drv.Path(c), "f")))
		writeFile(t, filepath.Join(p.drv.Path(c), "only-here"), []byte(c))
	}
	got, err := os.ReadFile(filepath.Join(p.drv.Path("a"), "f"))
	must(t, err)
	if !bytes.Equal(got, orig) {
		t.Error("changing a clone changed its origin")
	}
	if _, err := os.Stat(filepath.Join(p.drv.Path("a"), "only-here")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a clone's new file appeared in the origin: %v", err)
	}
	// A clone has its own quota.
	u, err := p.drv.Usage(ctx, "live-clone")
	must(t, err)
	if u.Limit != 0 {
		t.Errorf("a clone starts with limit %d, want none", u.Limit)
	}
}

func TestBtrfsRemoveDeletesSubvolumeAndSnapshots(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	must(t, p.drv.Create(ctx, "b"))
	writeFile(t, filepath.Join(p.drv.Path("a"), "f"), []byte("x"))
	// Mount points pinned for sandboxes are immutable (workspace.PinMountPoints):
	// they do not stop a subvolume delete.
	pinned := filepath.Join(p.drv.Path("a"), "mnt")
	must(t, os.Mkdir(pinned, 0o755))
	if out, err := exec.Command("chattr", "+i", pinned).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i: %v: %s", err, out)
	}
	_, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	_, err = p.drv.Snapshot(ctx, "a", "s2")
	must(t, err)

	must(t, p.drv.Remove(ctx, "a"))
	for _, gone := range []string{p.drv.Path("a"), filepath.Join(p.cfg.Root, ".snapshots", "a")} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v", gone, err)
		}
	}
	out, err := exec.Command("btrfs", "subvolume", "list", p.cfg.Root).Output()
	must(t, err)
	if strings.Contains(string(out), "path a") || strings.Contains(string(out), ".snapshots/a/") {
		t.Errorf("subvolumes left after Remove:\n%s", out)
	}
	if !strings.Contains(string(out), "path b") {
		t.Errorf("Remove of a took b:\n%s", out)
	}
	must(t, p.drv.Remove(ctx, "a")) // a retried delete is fine
	if err := p.drv.Create(ctx, "../x"); !berth.IsKind(err, berth.Invalid) {
		t.Errorf("create ../x: %v, want invalid_request", err)
	}
}

func TestBtrfsReopenKeepsSubvolumesAndQuotas(t *testing.T) {
	p := newPool(t)
	ctx := testctx.Context(t)
	must(t, p.drv.Create(ctx, "a"))
	const limit = 4 << 20
	must(t, p.drv.SetQuota(ctx, "a", limit))
	data := randBytes(t, 1<<20)
	writeFile(t, filepath.Join(p.drv.Path("a"), "f"), data)
	_, err := p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)

	// A restore interrupted by a crash left its temporary subvolume.
	if out, err := exec.Command("btrfs", "subvolume", "create", filepath.Join(p.cfg.Root, ".restore-a-1")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	// As a restart (or reboot) does: the pool is unmounted, its loop
	// device released, and the next start mounts it again.
	p.close(t)
	if mountedAt(t, p.cfg.Root) {
		t.Fatal("pool still mounted after Close")
	}
	if loops := loopsLeft(t, p.cfg.PoolFile); len(loops) > 0 {
		t.Fatalf("loop devices still attached after Close: %v", loops)
	}
	p.open(t)

	got, err := os.ReadFile(filepath.Join(p.drv.Path("a"), "f"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Error("file changed across the remount")
	}
	snaps, err := p.drv.Snapshots(ctx, "a")
	must(t, err)
	if len(snaps) != 1 {
		t.Errorf("snapshots after remount: %+v", snaps)
	}
	if _, err := os.Lstat(filepath.Join(p.cfg.Root, ".restore-a-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an interrupted restore's subvolume after reopening: %v", err)
	}
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Limit != limit {
		t.Errorf("limit after remount %d, want %d", u.Limit, limit)
	}
	if n, err := fill(t, filepath.Join(p.drv.Path("a"), "more"), 4*limit); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("after remount a write past the quota: %d bytes, %v; want EDQUOT", n, err)
	}
}

func TestBtrfsRefusesRootNotOnBtrfs(t *testing.T) {
	need(t)
	dir := t.TempDir()
	if ok, _ := onBtrfsFS(dir); ok {
		t.Skip("the temporary directory is itself on btrfs")
	}
	_, err := storage.OpenBtrfs(testctx.Context(t), storage.BtrfsConfig{Root: dir})
	if !berth.IsKind(err, berth.Unavailable) || !strings.Contains(err.Error(), "not on btrfs") {
		t.Errorf("open on a non-btrfs directory: %v, want unavailable saying so", err)
	}
	// A pool file would hide workspaces already in the directory.
	root := filepath.Join(dir, "workspaces")
	must(t, os.MkdirAll(filepath.Join(root, "old"), 0o755))
	_, err = storage.OpenBtrfs(testctx.Context(t), storage.BtrfsConfig{Root: root, PoolFile: filepath.Join(dir, "pool.img"), PoolSize: 256 << 20})
	if !berth.IsKind(err, berth.Unavailable) || !strings.Contains(err.Error(), "hide") {
		t.Errorf("pool over a directory with workspaces: %v, want unavailable", err)
	}
	if loops := loopsLeft(t, filepath.Join(dir, "pool.img")); len(loops) > 0 {
		t.Errorf("refused open left loop devices: %v", loops)
	}
}

func onBtrfsFS(path string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == 0x9123683E, nil
}

// On a data dir that is already on btrfs the driver uses it in place: no
// pool file, nothing mounted, Close leaves it as it was.
func TestBtrfsOnExistingFilesystem(t *testing.T) {
	p := newPool(t) // stands in for a host filesystem that is btrfs
	ctx := testctx.Context(t)
	root := filepath.Join(p.cfg.Root, "data", "workspaces")
	d, err := storage.OpenBtrfs(ctx, storage.BtrfsConfig{Root: root})
	must(t, err)
	must(t, d.Create(ctx, "a"))
	const limit = 4 << 20
	must(t, d.SetQuota(ctx, "a", limit))
	if n, err := fill(t, filepath.Join(d.Path("a"), "big"), 4*limit); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("write past the quota: %d bytes, %v; want EDQUOT", n, err)
	}
	must(t, d.Close(ctx))
	if _, err := os.Stat(filepath.Join(d.Path("a"), "big")); err != nil {
		t.Errorf("Close of a driver that mounted nothing changed the tree: %v", err)
	}
	must(t, d.Remove(ctx, "a"))
}
