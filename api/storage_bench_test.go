package api_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// uploadVariant is one way of putting a local file into a workspace
// through the API, as BenchmarkBtrfsUpload times it. Another transport
// (a raw-body PUT, say) is one more entry in uploadVariants.
type uploadVariant struct {
	name string
	// upload sends the local file src as the new file name in the root
	// of workspace ws; it returns once the server answered (the server
	// fsyncs before it answers).
	upload func(ctx context.Context, c *client.Client, ws, name, src string) error
}

var uploadVariants = []uploadVariant{
	{"multipart upload (Go client)", func(ctx context.Context, c *client.Client, ws, name, src string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }() // read-only: nothing to lose
		_, err = c.UploadAs(ctx, ws, "/", name, f)
		return err
	}},
}

const uploadRounds = 5 // interleaved rounds of every variant and the baseline

// BenchmarkBtrfsUpload: a 1 GiB upload into a workspace on the btrfs
// driver (a real server on its own loop pool, the Go client over
// loopback) against `cp` of the same file into the same pool followed by
// `sync -f` (goal: the upload at ≥ 90% of the copy's throughput). The
// source file is outside the pool, in the page cache; each round writes a
// new file (the previous one deleted and the pool synced, untimed, so
// that no round pays for another's writes); medians of interleaved rounds.
func BenchmarkBtrfsUpload(b *testing.B) {
	cfg := servertest.Config(b, "")
	cfg.Storage, cfg.StoragePoolSize = "btrfs", 4<<30 // room for the upload and the copy
	env := servertest.StartConfig(b, cfg)
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "upload-bench"})
	if err != nil {
		b.Fatal(err)
	}
	live := env.API.Workspaces.Dir(w.ID)
	scratch := filepath.Join(env.Config.DataDir, "scratch") // beside the pool file, not in the pool
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(scratch, "src.bin")
	if err := writeFile(src, &patternReader{n: benchFileSize}, true); err != nil {
		b.Fatal(err)
	}
	readAllFile(b, src) // into the page cache

	settle := func() {
		b.Helper()
		unix.Sync() // no dirty pages left by the previous round
		if out, err := exec.Command("btrfs", "filesystem", "sync", live).CombinedOutput(); err != nil {
			b.Fatalf("btrfs filesystem sync: %v: %s", err, out)
		}
	}
	timed := func(fn func() error) time.Duration {
		b.Helper()
		settle()
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	got := make([][]time.Duration, len(uploadVariants))
	var base []time.Duration
	b.ResetTimer()
	for range b.N {
		for range uploadRounds {
			base = append(base, timed(func() error {
				dst := filepath.Join(live, "cp.bin")
				if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
					return fmt.Errorf("cp: %w: %s", err, out)
				}
				if out, err := exec.Command("sync", "-f", dst).CombinedOutput(); err != nil {
					return fmt.Errorf("sync -f: %w: %s", err, out)
				}
				return nil
			}))
			if err := os.Remove(filepath.Join(live, "cp.bin")); err != nil {
				b.Fatal(err)
			}
			for i, v := range uploadVariants {
				got[i] = append(got[i], timed(func() error { return v.upload(ctx, a, w.ID, "up.bin", src) }))
				if err := a.DeleteFile(ctx, w.ID, "/up.bin"); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()

	mbps := func(d time.Duration) float64 { return float64(benchFileSize) / 1e6 / d.Seconds() }
	baseMed := median(base)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("\n1 GiB upload into a btrfs workspace (loop pool), %d interleaved rounds, medians\n", uploadRounds)
	_, _ = fmt.Fprintln(tw, "operation\tmedian\tMB/s\tof baseline\tgoal\t")
	_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t\t\t\n", "cp + sync -f (baseline)", baseMed.Round(time.Millisecond), mbps(baseMed))
	b.ReportMetric(mbps(baseMed), "cp-MB/s")
	for i, v := range uploadVariants {
		m := median(got[i])
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f%%\t≥ 90%%\t\n", v.name, m.Round(time.Millisecond), mbps(m), 100*baseMed.Seconds()/m.Seconds())
		b.ReportMetric(mbps(m), fmt.Sprintf("upload%d-MB/s", i))
	}
	b.ReportMetric(0, "ns/op")
	if err := tw.Flush(); err != nil {
		b.Fatal(err)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
