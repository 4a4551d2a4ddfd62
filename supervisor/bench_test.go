package supervisor_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
)

// BenchmarkExecSupervisorVsEngine runs `true` in one container through its
// supervisor and through the engine's exec, in interleaved pairs in one run
// (drift of the machine hits both alike), and prints the medians and p95s
// and the median of the pairs' differences. Run it with -benchtime 1x (make
// bench): the pairs inside give the percentiles. The goal is a supervisor
// p50 of 10 ms or less.
func BenchmarkExecSupervisorVsEngine(b *testing.B) {
	const pairs = 200
	engine := dockertest.New(b)
	e := newEnv(b, engine)
	id := e.start(b, "bench")
	ctx := b.Context()
	spec := runtime.ExecSpec{Cmd: []string{"true"}}
	var sup, eng, diff []time.Duration
	for i := 0; i < b.N; i++ {
		// Warm both paths (connections, page cache).
		for _, rt := range []runtime.Runtime{e.rt, engine} {
			if code, err := rt.Exec(ctx, id, spec); err != nil || code != 0 {
				b.Fatalf("warm-up exec: %d, %v", code, err)
			}
		}
		for range pairs {
			d := make([]time.Duration, 2)
			for j, rt := range []runtime.Runtime{e.rt, engine} {
				start := time.Now()
				code, err := rt.Exec(ctx, id, spec)
				d[j] = time.Since(start)
				if err != nil || code != 0 {
					b.Fatalf("exec: %d, %v", code, err)
				}
			}
			sup, eng, diff = append(sup, d[0]), append(eng, d[1]), append(diff, d[1]-d[0])
		}
	}
	if out := e.log.String(); out != "" {
		b.Fatalf("the supervisor path logged (fell back?):\n%s", out)
	}
	_, err := fmt.Fprintf(os.Stdout, "\nexec `true`, %d interleaved pairs: supervisor p50 %s p95 %s; engine exec p50 %s p95 %s; median pair saving %s\n",
		len(sup), ms(pct(sup, 50)), ms(pct(sup, 95)), ms(pct(eng, 50)), ms(pct(eng, 95)), ms(pct(diff, 50)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(pct(sup, 50).Microseconds())/1000, "supervisor-p50-ms")
	b.ReportMetric(float64(pct(eng, 50).Microseconds())/1000, "engine-p50-ms")
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
