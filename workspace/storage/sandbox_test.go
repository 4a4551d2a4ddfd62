package storage_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// A sandbox bind-mounting a btrfs workspace is bound by its qgroup limit:
// the kernel, not berth, stops its writes.
func TestBtrfsQuotaBindsSandboxWrites(t *testing.T) {
	p := newPool(t)
	rt := dockertest.New(t)
	image := runtimetest.BaseImage(t, rt)
	ctx := testctx.Context(t)

	must(t, p.drv.Create(ctx, "a"))
	must(t, os.Chmod(p.drv.Path("a"), 0o777)) // whatever user the image runs as
	const limit = 8 << 20
	must(t, p.drv.SetQuota(ctx, "a", limit))
	empty, err := p.drv.Usage(ctx, "a")
	must(t, err)

	id, err := rt.Create(ctx, runtime.Spec{
		Name: "berth-storage-test-" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), Image: image,
		Labels: map[string]string{runtimetest.LabelTest: t.Name()},
		Mounts: []runtime.Mount{{Source: p.drv.Path("a"), Target: "/workspace"}},
	})
	must(t, err)
	runtimetest.RemoveOnCleanup(t, rt, id) // before the pool's cleanup unmounts it (cleanups run last first)
	must(t, rt.Start(ctx, id))

	sh := func(script string) (int, string) {
		var out bytes.Buffer
		code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &out})
		must(t, err)
		return code, out.String()
	}
	code, out := sh("dd if=/dev/urandom of=/workspace/big bs=1M count=32 conv=fsync")
	if code == 0 || !strings.Contains(out, "Disk quota exceeded") {
		t.Fatalf("dd of 32 MiB into an 8 MiB workspace inside the sandbox: exit %d, %q; want Disk quota exceeded", code, out)
	}

	// Usage is exact: the workspace's empty tree plus the data the file
	// holds on disk.
	fi, err := os.Stat(filepath.Join(p.drv.Path("a"), "big"))
	must(t, err)
	held := fi.Sys().(*syscall.Stat_t).Blocks * 512
	u, err := p.drv.Usage(ctx, "a")
	must(t, err)
	if u.Bytes != empty.Bytes+held || u.Bytes > limit {
		t.Errorf("usage %d after the sandbox's write, want %d (empty %d + the file's %d), within %d", u.Bytes, empty.Bytes+held, empty.Bytes, held, limit)
	}

	// Raising the quota lets the sandbox continue.
	must(t, p.drv.SetQuota(ctx, "a", 4*limit))
	if code, out := sh("dd if=/dev/urandom of=/workspace/more bs=1M count=8 conv=fsync"); code != 0 {
		t.Fatalf("dd of 8 MiB after raising the quota to 32 MiB: exit %d, %q", code, out)
	}

	// Why callers must refuse a restore while a sandbox mounts the
	// workspace: the bind mount keeps the old subvolume, which the restore
	// deletes, so the sandbox is left in a deleted directory.
	_, err = p.drv.Snapshot(ctx, "a", "s1")
	must(t, err)
	must(t, p.drv.Restore(ctx, "a", "s1"))
	if _, err := os.Stat(filepath.Join(p.drv.Path("a"), "more")); err != nil {
		t.Errorf("host side after restore: %v", err)
	}
	if code, out := sh("ls /workspace/more"); code == 0 {
		t.Errorf("the sandbox still sees its files after a restore under it (%q): update Restore's doc", out)
	}
}
