package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime/docker/dockerbench"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server/servertest"
)

// Sample sizes of the comparison.
const (
	benchCreates = 20
	benchExecs   = 100
	benchPauses  = 20
)

// BenchmarkSandboxVsEngine measures berth's sandbox operations through its
// HTTP API (Go client, in-process server, SQLite) next to the same
// operations made directly on the engine's API, in one run on one machine,
// and prints the table. Run it with -benchtime 1x (make bench): each
// operation is repeated enough times inside for percentiles.
func BenchmarkSandboxVsEngine(b *testing.B) {
	env := servertest.Start(b, "")
	rt := env.Sandboxes.Runtime()
	runtimetest.Require(b, rt)
	img := runtimetest.BaseImage(b, rt)
	raw, err := dockerbench.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := raw.Close(); err != nil {
			b.Errorf("close the raw engine client: %v", err)
		}
	})
	ctx := context.Background()
	a := env.Admin
	// Not this instance's label: its reconciler would remove them.
	labels := map[string]string{"berth.bench": env.Sandboxes.Instance()}
	runtimetest.RemoveLabelledOnCleanup(b, rt, labels)
	req := client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "256MiB"}}
	const memory, pids = 256 << 20, 512

	type op struct{ berth, raw []time.Duration }
	ops := map[string]*op{}
	order := []string{"create → running", "exec `true`", "pause", "resume", "destroy"}
	for _, name := range order {
		ops[name] = &op{}
	}
	timed := func(d *[]time.Duration, fn func() error) {
		b.Helper()
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		*d = append(*d, time.Since(start))
	}

	for i := 0; i < b.N; i++ {
		// Warm both paths once (connections, image cache, page cache).
		s, err := a.CreateSandbox(ctx, req, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Exec(ctx, s.ID, client.ExecRequest{Command: []string{"true"}}); err != nil {
			b.Fatal(err)
		}
		if err := a.DestroySandbox(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
		id, err := raw.CreateStart(ctx, img, "", labels, memory, pids)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := raw.Exec(ctx, id, []string{"true"}); err != nil {
			b.Fatal(err)
		}
		if err := raw.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}

		// Interleaved, so that drift of the machine hits both sides alike.
		var sbx, ctr []string
		for range benchCreates {
			var s *client.Sandbox
			timed(&ops["create → running"].berth, func() (err error) {
				s, err = a.CreateSandbox(ctx, req, false)
				return err
			})
			sbx = append(sbx, s.ID)
			var id string
			timed(&ops["create → running"].raw, func() (err error) {
				id, err = raw.CreateStart(ctx, img, "", labels, memory, pids)
				return err
			})
			ctr = append(ctr, id)
		}
		for range benchExecs {
			timed(&ops["exec `true`"].berth, func() error {
				r, err := a.Exec(ctx, sbx[0], client.ExecRequest{Command: []string{"true"}})
				if err == nil && r.ExitCode != 0 {
					err = fmt.Errorf("exit %d", r.ExitCode)
				}
				return err
			})
			timed(&ops["exec `true`"].raw, func() error {
				code, err := raw.Exec(ctx, ctr[0], []string{"true"})
				if err == nil && code != 0 {
					err = fmt.Errorf("exit %d", code)
				}
				return err
			})
		}
		for j := range benchPauses {
			s, c := sbx[j%len(sbx)], ctr[j%len(ctr)]
			timed(&ops["pause"].berth, func() error { _, err := a.SandboxAction(ctx, s, "pause"); return err })
			timed(&ops["pause"].raw, func() error { return raw.Pause(ctx, c) })
			timed(&ops["resume"].berth, func() error { _, err := a.SandboxAction(ctx, s, "resume"); return err })
			timed(&ops["resume"].raw, func() error { return raw.Unpause(ctx, c) })
		}
		for j := range sbx {
			timed(&ops["destroy"].berth, func() error { return a.DestroySandbox(ctx, sbx[j]) })
			timed(&ops["destroy"].raw, func() error { return raw.Remove(ctx, ctr[j]) })
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nberth (HTTP API, Go client, SQLite) vs the raw Docker Engine API, same machine, same run\n")
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "operation\tn\tberth p50\traw p50\tΔ p50\tberth p95\traw p95\tΔ p95\t")
	for _, name := range order {
		o := ops[name]
		bp50, rp50 := pct(o.berth, 50), pct(o.raw, 50)
		bp95, rp95 := pct(o.berth, 95), pct(o.raw, 95)
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s (%+.0f%%)\t%s\t%s\t%s\t\n", name, len(o.berth), ms(bp50), ms(rp50), ms(bp50-rp50),
			100*float64(bp50-rp50)/float64(rp50), ms(bp95), ms(rp95), ms(bp95-rp95))
		key := strings.NewReplacer(" → ", "-", " ", "-", "`", "").Replace(name)
		b.ReportMetric(float64(bp50.Microseconds())/1000, key+"-berth-p50-ms")
		b.ReportMetric(float64(rp50.Microseconds())/1000, key+"-raw-p50-ms")
	}
	// Everything above went into a strings.Builder through the tabwriter,
	// which cannot fail; the table is printed whole.
	if err := tw.Flush(); err != nil {
		b.Fatal(err)
	}
	if _, err := fmt.Fprint(os.Stdout, out.String()); err != nil {
		b.Fatal(err)
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
