package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/runtime/containerd/containerdbench"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// BenchmarkContainerdVsDocker measures berth's sandbox operations through
// its HTTP API on the containerd runtime, next to berth on the Docker
// runtime and to the same operations made with the containerd client alone
// on an equally hardened container, in one run on one machine, interleaved,
// and prints the table (p50 and p95). Run it with -benchtime 1x (make bench).
func BenchmarkContainerdVsDocker(b *testing.B) {
	onCtr := servertest.StartRuntime(b, "", server.RuntimeContainerd)
	onDocker := servertest.Start(b, "")
	runtimetest.Require(b, onDocker.Sandboxes.Runtime())
	runtimetest.BaseImage(b, onDocker.Sandboxes.Runtime())
	c := containerdtest.New(b)
	img := containerdtest.BaseImage(b, c)
	raw, err := containerdbench.New(containerdtest.Address(), containerdtest.Namespace)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := raw.Close(); err != nil {
			b.Errorf("close the raw containerd client: %v", err)
		}
	})
	ctx := context.Background()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	labels := map[string]string{"berth.bench": run}
	runtimetest.RemoveLabelledOnCleanup(b, c, labels)
	req := client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "256MiB"}}
	const memory, pids = 256 << 20, 512

	sides := []string{"berth/containerd", "berth/docker", "raw containerd"}
	order := []string{"create → running", "exec `true`", "pause", "resume", "destroy"}
	times := map[string]map[string][]time.Duration{}
	for _, o := range order {
		times[o] = map[string][]time.Duration{}
	}
	timed := func(op, side string, fn func() error) {
		b.Helper()
		start := time.Now()
		if err := fn(); err != nil {
			b.Fatalf("%s on %s: %v", op, side, err)
		}
		times[op][side] = append(times[op][side], time.Since(start))
	}
	n := 0
	rawID := func() string { n++; return fmt.Sprintf("berth-rawbench-%s-%d", run, n) }

	for i := 0; i < b.N; i++ {
		// Warm every path once.
		for _, a := range []*client.Client{onCtr.Admin, onDocker.Admin} {
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
		}
		id := rawID()
		if err := raw.CreateStart(ctx, img, id, labels, memory, pids); err != nil {
			b.Fatal(err)
		}
		if err := raw.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}

		var ctrSbx, dockerSbx, raws []string
		for range benchCreates {
			timed(order[0], sides[0], func() error {
				s, err := onCtr.Admin.CreateSandbox(ctx, req, false)
				if err == nil {
					ctrSbx = append(ctrSbx, s.ID)
				}
				return err
			})
			timed(order[0], sides[1], func() error {
				s, err := onDocker.Admin.CreateSandbox(ctx, req, false)
				if err == nil {
					dockerSbx = append(dockerSbx, s.ID)
				}
				return err
			})
			id := rawID()
			timed(order[0], sides[2], func() error {
				raws = append(raws, id)
				return raw.CreateStart(ctx, img, id, labels, memory, pids)
			})
		}
		apiExec := func(a *client.Client, id string) func() error {
			return func() error {
				r, err := a.Exec(ctx, id, client.ExecRequest{Command: []string{"true"}})
				if err == nil && r.ExitCode != 0 {
					err = fmt.Errorf("exit %d", r.ExitCode)
				}
				return err
			}
		}
		for j := range benchExecs {
			timed(order[1], sides[0], apiExec(onCtr.Admin, ctrSbx[0]))
			timed(order[1], sides[1], apiExec(onDocker.Admin, dockerSbx[0]))
			timed(order[1], sides[2], func() error {
				code, err := raw.Exec(ctx, raws[0], []string{"true"}, fmt.Sprintf("bench-%d", j))
				if err == nil && code != 0 {
					err = fmt.Errorf("exit %d", code)
				}
				return err
			})
		}
		action := func(a *client.Client, id, what string) func() error {
			return func() error { _, err := a.SandboxAction(ctx, id, what); return err }
		}
		for j := range benchPauses {
			cs, ds, r := ctrSbx[j%len(ctrSbx)], dockerSbx[j%len(dockerSbx)], raws[j%len(raws)]
			timed(order[2], sides[0], action(onCtr.Admin, cs, "pause"))
			timed(order[2], sides[1], action(onDocker.Admin, ds, "pause"))
			timed(order[2], sides[2], func() error { return raw.Pause(ctx, r) })
			timed(order[3], sides[0], action(onCtr.Admin, cs, "resume"))
			timed(order[3], sides[1], action(onDocker.Admin, ds, "resume"))
			timed(order[3], sides[2], func() error { return raw.Unpause(ctx, r) })
		}
		for j := range ctrSbx {
			timed(order[4], sides[0], func() error { return onCtr.Admin.DestroySandbox(ctx, ctrSbx[j]) })
			timed(order[4], sides[1], func() error { return onDocker.Admin.DestroySandbox(ctx, dockerSbx[j]) })
			timed(order[4], sides[2], func() error { return raw.Remove(ctx, raws[j]) })
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nberth on containerd vs berth on Docker (HTTP API, Go client, SQLite) vs the raw containerd client, same machine, same run\n")
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "operation\tn\tctr p50\tdocker p50\traw p50\tctr−raw p50\tctr/docker p50\tctr p95\tdocker p95\traw p95\tctr−raw p95\t")
	for _, name := range order {
		t := times[name]
		c50, d50, r50 := pct(t[sides[0]], 50), pct(t[sides[1]], 50), pct(t[sides[2]], 50)
		c95, d95, r95 := pct(t[sides[0]], 95), pct(t[sides[1]], 95), pct(t[sides[2]], 95)
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%s\t%s\t%s\t\n", name, len(t[sides[0]]),
			ms(c50), ms(d50), ms(r50), ms(c50-r50), 100*float64(c50)/float64(d50), ms(c95), ms(d95), ms(r95), ms(c95-r95))
		key := strings.NewReplacer(" → ", "-", " ", "-", "`", "").Replace(name)
		b.ReportMetric(float64(c50.Microseconds())/1000, key+"-containerd-p50-ms")
		b.ReportMetric(float64(d50.Microseconds())/1000, key+"-docker-p50-ms")
		b.ReportMetric(float64(r50.Microseconds())/1000, key+"-raw-p50-ms")
	}
	if err := tw.Flush(); err != nil {
		b.Fatal(err)
	}
	if _, err := fmt.Fprint(os.Stdout, out.String()); err != nil {
		b.Fatal(err)
	}
}
