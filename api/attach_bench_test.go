package api_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// BenchmarkAttach times attaching a workspace to a running sandbox (and
// detaching it) through the API, next to the cold create of a sandbox
// with the same mount, which is what a client without attach would do.
// Medians of interleaved pairs (BERTH_BENCH_PAIRS, default 9).
func BenchmarkAttach(b *testing.B) {
	env := servertest.Start(b, "")
	needEngine(b, env)
	ctx := context.Background()
	a := client.New(env.URL, env.AdminKey) // plain: no OpenAPI checks on the clock
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "bench-attach"})
	if err != nil {
		b.Fatal(err)
	}
	s := newSandbox(b, a, client.SandboxRequest{})
	pairs := 9
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_PAIRS")); err == nil && n > 0 {
		pairs = n
	}
	timed := func(fn func() error) time.Duration {
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	for i := 0; i < b.N; i++ {
		var attach, detach, create []time.Duration
		for j := range pairs {
			p := fmt.Sprintf("/workspace/b%d", j)
			attach = append(attach, timed(func() error {
				_, err := a.AttachMount(ctx, s.ID, client.Mount{WorkspaceID: w.ID, Path: p})
				return err
			}))
			detach = append(detach, timed(func() error {
				_, err := a.DetachMount(ctx, s.ID, p)
				return err
			}))
			var id string
			create = append(create, timed(func() error {
				c, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"},
					Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}}, false)
				if err == nil {
					id = c.ID
				}
				return err
			}))
			if err := a.DestroySandbox(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("median of %d pairs: attach %v, detach %v; cold create with the mount %v", pairs, median(attach), median(detach), median(create))
		b.ReportMetric(float64(median(attach).Microseconds())/1000, "attach-ms")
		b.ReportMetric(float64(median(detach).Microseconds())/1000, "detach-ms")
		b.ReportMetric(float64(median(create).Microseconds())/1000, "create-ms")
	}
}
