package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// BenchmarkReconcilerIdle measures what the server costs while N sandboxes
// sit idle (default 300; BERTH_BENCH_SANDBOXES), following the engine's
// events, next to the periodic pass every 10 s (the reconciler before
// events, and the fallback of a runtime that cannot report them), on the
// same sandboxes in the same run. Each mode restarts the server on the same
// database; the CPU time of the whole test process (getrusage) is taken
// over a window (default 60 s; BERTH_BENCH_WINDOW) after the startup pass,
// in interleaved pairs (BERTH_BENCH_PAIRS, default 2), and the median
// printed, with dockerd's CPU over the same window (shared with whatever
// else uses the engine, so only indicative). Run with -benchtime 1x.
func BenchmarkReconcilerIdle(b *testing.B) {
	n := benchEnv("BERTH_BENCH_SANDBOXES", 300)
	window := time.Duration(benchEnv("BERTH_BENCH_WINDOW", 60)) * time.Second
	pairs := benchEnv("BERTH_BENCH_PAIRS", 2)
	dataDir := b.TempDir()
	start := func(events bool) *servertest.Env {
		cfg := server.Defaults()
		cfg.Addr = "127.0.0.1:0"
		cfg.DataDir = dataDir
		cfg.Sandbox.IgnoreEngineEvents = !events // default intervals otherwise
		return servertest.StartConfig(b, cfg)
	}
	env := start(true)
	needEngine(b, env)
	createIdle(b, env.Admin, n)

	type sample struct{ cpu, dockerd time.Duration }
	results := map[bool][]sample{}
	for i := 0; i < b.N; i++ {
		for range pairs {
			for _, events := range []bool{false, true} {
				env.Stop(b)
				env = start(events)
				m := env.Sandboxes
				// Past the startup pass (and, following events, the pass at
				// the stream's connect).
				testctx.Eventually(b, "the startup passes", func() bool {
					return m.FullPasses() >= 1 && (!events || (m.EventConnects() >= 1 && m.FullPasses() >= 2))
				})
				c0, d0, t0 := processCPU(), dockerdCPU(), time.Now()
				<-time.After(window) // the window measured: nothing to wait for
				el := time.Since(t0)
				cpu, dcpu := processCPU()-c0, dockerdCPU()-d0
				results[events] = append(results[events], sample{
					time.Duration(float64(cpu) * float64(time.Second) / float64(el)),
					time.Duration(float64(dcpu) * float64(time.Second) / float64(el)),
				})
			}
		}
	}
	median := func(ss []sample) sample {
		cpus := make([]time.Duration, len(ss))
		ds := make([]time.Duration, len(ss))
		for i, s := range ss {
			cpus[i], ds[i] = s.cpu, s.dockerd
		}
		slices.Sort(cpus)
		slices.Sort(ds)
		return sample{cpus[len(ss)/2], ds[len(ss)/2]}
	}
	pct := func(d time.Duration) string { return fmt.Sprintf("%.2f%% of a core", 100*d.Seconds()) }
	ev, per := median(results[true]), median(results[false])
	fmt.Printf("\nreconciler, %d idle sandboxes, %v windows, median of %d pairs\n", n, window, pairs)
	fmt.Printf("  events + full pass every 5 min: berth %s, dockerd %s\n", pct(ev.cpu), pct(ev.dockerd))
	fmt.Printf("  periodic pass every 10 s:       berth %s, dockerd %s\n", pct(per.cpu), pct(per.dockerd))
	fmt.Printf("  (berth: the whole server process, idle-pause loop and HTTP server included; dockerd: shared with every other engine user)\n")
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// createIdle creates n small sandboxes, a few at a time.
func createIdle(b *testing.B, c *client.Client, n int) {
	b.Helper()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := c.CreateSandbox(context.Background(), client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "16MiB"}}, false)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("create sandbox: %v", firstErr)
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dockerdCPU is dockerd's CPU time so far (0 when it cannot be read).
func dockerdCPU() time.Duration {
	out, err := exec.Command("pidof", "dockerd").Output()
	if err != nil {
		return 0
	}
	pid := strings.Fields(string(out))
	if len(pid) == 0 {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + pid[0] + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}
