package api_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// BenchmarkPortProxy: a 1 MiB answer of a server in a sandbox through the
// port proxy (through the supervisor) against the same answer fetched
// directly from the container's address, in interleaved pairs; it reports
// the medians and the proxy's overhead (goal: at most 2 ms).
// BERTH_BENCH_PAIRS sets the number of pairs (default 50).
func BenchmarkPortProxy(b *testing.B) {
	env := servertest.Start(b, "")
	needEngine(b, env)
	p := plainClient(env, env.AdminKey)
	s := startPortEcho(b, env.Admin, p, client.SandboxRequest{Network: "bridge"}, "0.0.0.0")
	sb, err := env.Admin.Sandbox(b.Context(), s.ID)
	if err != nil || sb.IP == "" {
		b.Fatalf("sandbox address: %v %q", err, sb.IP)
	}
	pairs := 50
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_PAIRS")); err == nil && n > 0 {
		pairs = n
	}
	direct := &http.Client{}
	directURL := "http://" + sb.IP + ":8081/big"
	proxied := env.URL + client.PortPath(s.ID, 8081, "/big")
	get := func(c *http.Client, url string) time.Duration {
		req, err := http.NewRequestWithContext(b.Context(), "GET", url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-API-Key", env.AdminKey)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || n != 1<<20 {
			b.Fatalf("GET %s: %d, %d bytes, %v", url, resp.StatusCode, n, err)
		}
		return time.Since(start)
	}
	// Warm both paths (connections, caches).
	get(direct, directURL)
	get(p.HTTP, proxied)
	var base, berth, over []time.Duration
	b.ResetTimer()
	for range b.N {
		for range pairs {
			d := get(direct, directURL)
			x := get(p.HTTP, proxied)
			base, berth, over = append(base, d), append(berth, x), append(over, x-d)
		}
	}
	b.StopTimer()
	med := func(ds []time.Duration) time.Duration { slices.Sort(ds); return ds[len(ds)/2] }
	b.ReportMetric(float64(med(base).Microseconds())/1000, "direct-ms")
	b.ReportMetric(float64(med(berth).Microseconds())/1000, "proxy-ms")
	b.ReportMetric(float64(med(over).Microseconds())/1000, "overhead-ms")
	fmt.Printf("\nport proxy, 1 MiB answer (median of %d interleaved pairs): direct %v, through berth %v, overhead %v (goal ≤ 2ms)\n",
		len(over), med(base), med(berth), med(over))
}
