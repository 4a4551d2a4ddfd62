package storage_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
)

// BenchmarkBtrfs measures snapshot, clone and usage on a workspace of
// 5,000 files of 4 KiB in 50 directories (20 MiB), against cp -a of the same
// tree on the same pool. Issue 11's full benchmark (1 GiB in 10,000 files,
// usage on 100,000 files, upload throughput) is not built yet.
func BenchmarkBtrfs(b *testing.B) {
	p := newPool(b)
	ctx := testctx.Context(b)
	must(b, p.drv.Create(ctx, "src"))
	data := randBytes(b, 4096)
	for d := range 50 {
		dir := filepath.Join(p.drv.Path("src"), fmt.Sprintf("d%02d", d))
		must(b, os.Mkdir(dir, 0o755))
		for f := range 100 {
			must(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), data, 0o644))
		}
	}
	must(b, syncPool(p.cfg.Root))

	b.Run("snapshot", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, err := p.drv.Snapshot(ctx, "src", fmt.Sprintf("s%d", i))
			must(b, err)
			b.StopTimer()
			must(b, p.drv.DeleteSnapshot(ctx, "src", fmt.Sprintf("s%d", i)))
			b.StartTimer()
		}
	})
	b.Run("clone", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			must(b, p.drv.Clone(ctx, "src", "", "clone"))
			b.StopTimer()
			must(b, p.drv.Remove(ctx, "clone"))
			b.StartTimer()
		}
	})
	b.Run("usage", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_, err := p.drv.Usage(ctx, "src")
			must(b, err)
		}
	})
	b.Run("cp-a", func(b *testing.B) {
		dst := filepath.Join(p.cfg.Root, ".cp")
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command("cp", "-a", "--reflink=never", p.drv.Path("src"), dst).CombinedOutput(); err != nil {
				b.Fatalf("cp -a: %v: %s", err, out)
			}
			must(b, syncPool(p.cfg.Root))
			b.StopTimer()
			must(b, os.RemoveAll(dst))
			b.StartTimer()
		}
	})
}

func syncPool(path string) error {
	out, err := exec.Command("btrfs", "filesystem", "sync", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("btrfs filesystem sync: %w: %s", err, out)
	}
	return nil
}
