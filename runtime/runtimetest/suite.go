package runtimetest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/templates"
)

// Run runs the conformance suite against rt. image must be present and
// provide /bin/sh with the BusyBox (or coreutils) tools; BaseImage gives one.
// Every container the suite makes is removed when it ends, even on failure.
func Run(t *testing.T, rt runtime.Runtime, image string) {
	Require(t, rt)
	s := &suite{rt: rt, image: image, run: randomID()}
	t.Cleanup(func() { s.cleanup(t) })

	t.Run("Lifecycle", s.testLifecycle)
	t.Run("NameConflict", s.testNameConflict)
	t.Run("NotFound", s.testNotFound)
	t.Run("ListByLabel", s.testList)
	t.Run("Hardening", s.testHardening)
	t.Run("Network", s.testNetwork)
	t.Run("Mounts", s.testMounts)
	t.Run("Exec", s.testExec)
	t.Run("ExecCancel", s.testExecCancel)
	t.Run("Images", s.testImages)
}

type suite struct {
	rt    runtime.Runtime
	image string
	run   string // unique per Run: container names and the LabelTest value
}

func (s *suite) cleanup(t *testing.T) {
	ctx, cancel := testctx.Cleanup()
	defer cancel()
	list, err := s.rt.List(ctx, map[string]string{LabelTest: s.run})
	if err != nil {
		t.Errorf("cleanup: list: %v", err)
		return
	}
	for _, c := range list {
		if err := s.rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
			t.Errorf("cleanup: remove %s: %v", c.Name, err)
		}
	}
}

func (s *suite) name(t *testing.T) string {
	n := strings.NewReplacer("/", "-", "_", "-").Replace(strings.ToLower(t.Name()))
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return "berth-rt-" + s.run + "-" + strings.Trim(n, "-")
}

// spec is a container spec for t with the suite's label and image.
func (s *suite) spec(t *testing.T) runtime.Spec {
	return runtime.Spec{
		Name:   s.name(t),
		Image:  s.image,
		Labels: map[string]string{LabelTest: s.run},
		Env:    map[string]string{"BERTH_SUITE": "1"},
	}
}

// start creates and starts a container from spec and returns its id.
func (s *suite) start(t *testing.T, spec runtime.Spec) string {
	t.Helper()
	ctx := testctx.Context(t)
	id, err := s.rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		// A test may have removed it already.
		if err := s.rt.Remove(ctx, id); err != nil && !berth.IsKind(err, berth.NotFound) {
			t.Errorf("remove container %s: %v", id, err)
		}
	})
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

type result struct {
	stdout, stderr string
	code           int
}

// sh runs script with /bin/sh -c and fails the test if Exec errs.
func (s *suite) sh(t *testing.T, id, script string, opt ...func(*runtime.ExecSpec)) result {
	t.Helper()
	var out, errb bytes.Buffer
	spec := runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &errb}
	for _, o := range opt {
		o(&spec)
	}
	code, err := s.rt.Exec(testctx.Context(t), id, spec)
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return result{out.String(), errb.String(), code}
}

func wantKind(t *testing.T, what string, err error, kind berth.Kind) {
	t.Helper()
	if !berth.IsKind(err, kind) {
		t.Errorf("%s: got error %v (kind %s), want kind %s", what, err, berth.KindOf(err), kind)
	}
}

func (s *suite) wantState(t *testing.T, id string, want runtime.State) runtime.Container {
	t.Helper()
	c, err := s.rt.Inspect(testctx.Context(t), id)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if c.State != want {
		t.Fatalf("state = %q, want %q", c.State, want)
	}
	return c
}

func (s *suite) testLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testctx.Context(t)
	spec := s.spec(t)
	spec.Labels["extra"] = "x"
	id, err := s.rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	c := s.wantState(t, id, runtime.StateCreated)
	if c.ID != id || c.Name != spec.Name || c.Image != s.image {
		t.Errorf("inspect = %+v, want id %s name %s image %s", c, id, spec.Name, s.image)
	}
	if c.Labels["extra"] != "x" || c.Labels[runtime.ManagedLabel] == "" {
		t.Errorf("labels = %v, want extra=x and %s", c.Labels, runtime.ManagedLabel)
	}
	// Also by name.
	if byName, err := s.rt.Inspect(ctx, spec.Name); err != nil || byName.ID != id {
		t.Errorf("inspect by name: %v, %v", byName.ID, err)
	}

	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := s.rt.Start(ctx, id); err != nil {
		t.Errorf("start of a running container: %v, want nil", err)
	}
	c = s.wantState(t, id, runtime.StateRunning)
	if c.StartedAt.IsZero() {
		t.Error("StartedAt is zero for a running container")
	}
	if r := s.sh(t, id, "echo kept > /root/state"); r.code != 0 {
		t.Fatalf("write state: %+v", r)
	}

	if err := s.rt.Pause(ctx, id); err != nil {
		t.Fatalf("pause: %v", err)
	}
	s.wantState(t, id, runtime.StatePaused)
	if err := s.rt.Pause(ctx, id); err == nil {
		t.Error("pause of a paused container: nil error")
	}
	_, err = s.rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"true"}})
	wantKind(t, "exec in a paused container", err, berth.Conflict)
	if err := s.rt.Unpause(ctx, id); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	s.wantState(t, id, runtime.StateRunning)

	// The idle main process must end on SIGTERM: a stop that waits for
	// the timeout and then kills would make every stop take that long.
	// The grace is long (a loaded machine stops slowly) and the bound is
	// half of it: only a stop that waited for the kill exceeds it.
	start := time.Now()
	if err := s.rt.Stop(ctx, id, 2*time.Minute); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("stop took %v: the main process ignores SIGTERM", d)
	}
	s.wantState(t, id, runtime.StateExited)
	if err := s.rt.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("stop of a stopped container: %v, want nil", err)
	}
	_, err = s.rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"true"}})
	wantKind(t, "exec in a stopped container", err, berth.Conflict)
	err = s.rt.Pause(ctx, id)
	wantKind(t, "pause of a stopped container", err, berth.Conflict)

	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if r := s.sh(t, id, "cat /root/state"); r.stdout != "kept\n" {
		t.Errorf("after stop/start the container's own file reads %q, want %q", r.stdout, "kept\n")
	}

	// Stop of a paused container stops it.
	if err := s.rt.Pause(ctx, id); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if err := s.rt.Stop(ctx, id, 5*time.Second); err != nil {
		t.Fatalf("stop of a paused container: %v", err)
	}
	s.wantState(t, id, runtime.StateExited)

	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatalf("remove of a running container: %v", err)
	}
	_, err = s.rt.Inspect(ctx, id)
	wantKind(t, "inspect after remove", err, berth.NotFound)
	wantKind(t, "remove after remove", s.rt.Remove(ctx, id), berth.NotFound)
}

func (s *suite) testNameConflict(t *testing.T) {
	t.Parallel()
	ctx := testctx.Context(t)
	spec := s.spec(t)
	id, err := s.rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	RemoveOnCleanup(t, s.rt, id)
	_, err = s.rt.Create(ctx, spec)
	wantKind(t, "create with a taken name", err, berth.Conflict)
}

func (s *suite) testNotFound(t *testing.T) {
	t.Parallel()
	ctx := testctx.Context(t)
	missing := "berth-rt-" + s.run + "-missing"
	_, err := s.rt.Inspect(ctx, missing)
	wantKind(t, "inspect", err, berth.NotFound)
	wantKind(t, "start", s.rt.Start(ctx, missing), berth.NotFound)
	wantKind(t, "stop", s.rt.Stop(ctx, missing, time.Second), berth.NotFound)
	wantKind(t, "pause", s.rt.Pause(ctx, missing), berth.NotFound)
	wantKind(t, "unpause", s.rt.Unpause(ctx, missing), berth.NotFound)
	wantKind(t, "remove", s.rt.Remove(ctx, missing), berth.NotFound)
	_, err = s.rt.Exec(ctx, missing, runtime.ExecSpec{Cmd: []string{"true"}})
	wantKind(t, "exec", err, berth.NotFound)

	spec := s.spec(t)
	spec.Image = "berth/no-such-image-" + s.run + ":0"
	_, err = s.rt.Create(ctx, spec)
	wantKind(t, "create from a missing image", err, berth.NotFound)
	if ok, err := s.rt.ImagePresent(ctx, spec.Image); ok || err != nil {
		t.Errorf("ImagePresent(missing) = %v, %v; want false, nil", ok, err)
	}
	wantKind(t, "remove image", s.rt.RemoveImage(ctx, spec.Image), berth.NotFound)
}

func (s *suite) testList(t *testing.T) {
	t.Parallel()
	ctx := testctx.Context(t)
	group := randomID()
	ids := map[string]string{}
	for _, k := range []string{"a", "b"} {
		spec := s.spec(t)
		spec.Name += "-" + k
		spec.Labels["group"] = group
		spec.Labels["member"] = k
		id, err := s.rt.Create(ctx, spec)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.rt.Remove(ctx, id); err != nil && !berth.IsKind(err, berth.NotFound) {
				t.Errorf("cleanup: remove %s: %v", id, err)
			}
		})
		ids[k] = id
	}
	if err := s.rt.Start(ctx, ids["a"]); err != nil {
		t.Fatal(err)
	}

	all, err := s.rt.List(ctx, map[string]string{"group": group})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all) != 2 {
		t.Fatalf("list by group = %d containers, want 2: %+v", len(all), all)
	}
	states := map[string]runtime.State{}
	for _, c := range all {
		states[c.ID] = c.State
		if c.Labels["group"] != group || c.Name == "" {
			t.Errorf("listed container %+v lacks its labels or name", c)
		}
	}
	if states[ids["a"]] != runtime.StateRunning || states[ids["b"]] != runtime.StateCreated {
		t.Errorf("listed states = %v, want a running and b created", states)
	}

	one, err := s.rt.List(ctx, map[string]string{"group": group, "member": "b"})
	if err != nil || len(one) != 1 || one[0].ID != ids["b"] {
		t.Errorf("list by group and member=b = %+v, %v; want just b", one, err)
	}
	anyMember, err := s.rt.List(ctx, map[string]string{"group": group, "member": ""})
	if err != nil || len(anyMember) != 2 {
		t.Errorf("list with an empty label value = %d, %v; want 2", len(anyMember), err)
	}
	none, err := s.rt.List(ctx, map[string]string{"group": group + "-other"})
	if err != nil || len(none) != 0 {
		t.Errorf("list of another group = %+v, %v; want none", none, err)
	}
	managed, err := s.rt.List(ctx, nil)
	if err != nil {
		t.Fatalf("list managed: %v", err)
	}
	found := 0
	for _, c := range managed {
		if c.Labels["group"] == group {
			found++
		}
	}
	if found != 2 {
		t.Errorf("list(nil) found %d of the 2 managed containers", found)
	}
}

// capMask is the capability bit set of SafeCapabilities.
func capMask() uint64 {
	bits := map[string]uint{"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5,
		"SETGID": 6, "SETUID": 7, "NET_BIND_SERVICE": 10}
	var m uint64
	for _, c := range runtime.SafeCapabilities {
		b, ok := bits[c]
		if !ok {
			panic("runtimetest: unknown capability " + c)
		}
		m |= 1 << b
	}
	return m
}

func (s *suite) testHardening(t *testing.T) {
	t.Parallel()
	spec := s.spec(t)
	spec.Resources = runtime.Resources{NanoCPUs: 500_000_000, MemoryBytes: 256 << 20, PidsLimit: 64}
	id := s.start(t, spec)

	r := s.sh(t, id, "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		k, v, _ := strings.Cut(line, ":")
		fields[k] = strings.TrimSpace(v)
	}
	if fields["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", fields["NoNewPrivs"])
	}
	for _, k := range []string{"CapEff", "CapBnd"} {
		got, err := strconv.ParseUint(fields[k], 16, 64)
		if err != nil || got != capMask() {
			t.Errorf("%s = %q, want %016x (SafeCapabilities only)", k, fields[k], capMask())
		}
	}
	// NET_RAW and MKNOD are gone even for root.
	if r := s.sh(t, id, "mknod /tmp/null c 1 3"); r.code == 0 {
		t.Error("mknod succeeded: CAP_MKNOD was not dropped")
	}

	// Limits as the kernel sees them (cgroup v2 or v1 layout).
	limits := []struct{ name, script, want string }{
		{"pids", "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max", "64"},
		{"memory", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes", strconv.Itoa(256 << 20)},
		{"cpu", "cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)", "50000 100000"},
	}
	for _, l := range limits {
		if r := s.sh(t, id, l.script); strings.TrimSpace(r.stdout) != l.want {
			t.Errorf("%s limit = %q (%s), want %q", l.name, strings.TrimSpace(r.stdout), r.stderr, l.want)
		}
	}
}

func (s *suite) testNetwork(t *testing.T) {
	t.Run("None", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t)
		spec.Network = runtime.NetworkNone
		id := s.start(t, spec)
		if r := s.sh(t, id, "ls /sys/class/net"); strings.Fields(r.stdout)[0] != "lo" || len(strings.Fields(r.stdout)) != 1 {
			t.Errorf("interfaces with network none: %q, want just lo", r.stdout)
		}
		if c := s.wantState(t, id, runtime.StateRunning); c.IPAddress != "" {
			t.Errorf("IPAddress with network none = %q, want empty", c.IPAddress)
		}
	})
	t.Run("Bridge", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t)
		spec.Network = runtime.NetworkBridge
		id := s.start(t, spec)
		c := s.wantState(t, id, runtime.StateRunning)
		if c.IPAddress == "" {
			t.Fatal("no IPAddress on the bridge network")
		}
		if r := s.sh(t, id, "grep -c . /proc/net/dev; ip -4 addr 2>/dev/null || true"); !strings.Contains(r.stdout, c.IPAddress) {
			t.Errorf("container does not have its reported address %s:\n%s", c.IPAddress, r.stdout)
		}
	})
	t.Run("Isolation", s.testIsolation)
	t.Run("HostIsolation", s.testHostIsolation)
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		spec := s.spec(t)
		spec.Network = "host"
		_, err := s.rt.Create(testctx.Context(t), spec)
		wantKind(t, "create with network host", err, berth.Invalid)
	})
}

// startOn starts a container named after t and suffix on network mode.
func (s *suite) startOn(t *testing.T, suffix, mode string) (id, ip string) {
	t.Helper()
	spec := s.spec(t)
	spec.Name += "-" + suffix
	spec.Network = mode
	id = s.start(t, spec)
	c := s.wantState(t, id, runtime.StateRunning)
	if c.IPAddress == "" {
		t.Fatalf("%s: no IPAddress on network %s", suffix, mode)
	}
	return id, c.IPAddress
}

// httpd starts BusyBox's web server in container id on port 8080 and checks
// that it answers from inside the container (so that a failed fetch from
// elsewhere means blocked, not down), returning its host:port. It binds
// before it daemonizes, so the check needs no wait.
func (s *suite) httpd(t *testing.T, id, ip string) string {
	t.Helper()
	addr := net.JoinHostPort(ip, "8080")
	r := s.sh(t, id, "mkdir -p /tmp/www && echo berth-httpd > /tmp/www/index.html && httpd -p 8080 -h /tmp/www && "+fetch(addr))
	if r.code != 0 {
		t.Fatalf("httpd in the container does not answer itself at %s: %+v", addr, r)
	}
	return addr
}

// fetch is a shell command that GETs / from addr (host:port) and succeeds
// if the answer has a line starting "berth-". BusyBox's nc rather than its
// wget, which crashes in Debian's static build; -w 3 bounds the connection
// attempt (a dropped packet) and the wait for the answer.
func fetch(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s %s 2>/dev/null | grep -q '^berth-'`, host, port)
}

// reached tries every addr (host:port) from container id at once and
// returns the ones that answered.
func (s *suite) reached(t *testing.T, id string, addrs []string) []string {
	t.Helper()
	var script strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&script, "(%s && echo %s) &\n", fetch(a), a)
	}
	script.WriteString("wait\n")
	return strings.Fields(s.sh(t, id, script.String()).stdout)
}

// Sandboxes on the isolated network reach neither each other nor sandboxes
// on the shared network (and the other way round); sandboxes that opted
// into the shared network reach each other, which is also the control that
// the method would see a reachable server.
func (s *suite) testIsolation(t *testing.T) {
	t.Parallel()
	isoServer, isoIP := s.startOn(t, "iso-server", runtime.NetworkBridge)
	isoClient, _ := s.startOn(t, "iso-client", runtime.NetworkBridge)
	sharedServer, sharedIP := s.startOn(t, "shared-server", runtime.NetworkShared)
	sharedClient, _ := s.startOn(t, "shared-client", runtime.NetworkShared)
	isoURL := s.httpd(t, isoServer, isoIP)
	sharedURL := s.httpd(t, sharedServer, sharedIP)

	if got := s.reached(t, isoClient, []string{isoURL, sharedURL}); len(got) != 0 {
		t.Errorf("a bridge sandbox reached %v (another bridge sandbox at %s, a shared one at %s)", got, isoURL, sharedURL)
	}
	got := s.reached(t, sharedClient, []string{isoURL, sharedURL})
	if !slices.Contains(got, sharedURL) {
		t.Errorf("a shared sandbox could not reach another shared one at %s (reached %v)", sharedURL, got)
	}
	if slices.Contains(got, isoURL) {
		t.Errorf("a shared sandbox reached a bridge sandbox at %s", isoURL)
	}
}

// A bridge sandbox reaches no service listening on the host, on any of the
// host's addresses nor its gateway; a shared sandbox reaches it through its
// gateway (the opt-out, and the control).
func (s *suite) testHostIsolation(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "berth-host\n")
	}))
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	hostURLs := func(addrs []string) []string {
		var urls []string
		for _, a := range addrs {
			urls = append(urls, net.JoinHostPort(a, port))
		}
		return urls
	}

	var addrs []string
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			addrs = append(addrs, n.IP.String())
		}
	}
	gateway := func(id string) string {
		t.Helper()
		gw := strings.TrimSpace(s.sh(t, id, "ip route | awk '/^default/ {print $3}'").stdout)
		if net.ParseIP(gw) == nil {
			t.Fatalf("no default gateway in the container: %q", gw)
		}
		return gw
	}

	iso, _ := s.startOn(t, "iso", runtime.NetworkBridge)
	addrs = append(addrs, gateway(iso))
	slices.Sort(addrs)
	isoURLs := hostURLs(slices.Compact(addrs))
	if got := s.reached(t, iso, isoURLs); len(got) != 0 {
		t.Errorf("a bridge sandbox reached the host's server at %v (tried %v)", got, isoURLs)
	}

	shared, _ := s.startOn(t, "shared", runtime.NetworkShared)
	sharedURLs := hostURLs([]string{gateway(shared)})
	if got := s.reached(t, shared, sharedURLs); len(got) != 1 {
		t.Errorf("a shared sandbox could not reach the host's server at %v", sharedURLs)
	}
}

func (s *suite) testMounts(t *testing.T) {
	t.Parallel()
	rw, ro, nested := t.TempDir(), t.TempDir(), t.TempDir()
	// The container runs as root and other users; let all of them write.
	for _, d := range []string{rw, ro, nested} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "seed.txt"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := s.spec(t)
	spec.Mounts = []runtime.Mount{
		{Source: rw, Target: "/workspace"},
		{Source: ro, Target: "/workspace/ro", ReadOnly: true},
		{Source: nested, Target: "/workspace/data"},
	}
	id := s.start(t, spec)

	if r := s.sh(t, id, "echo hello > /workspace/out.txt && echo deep > /workspace/data/in-nested.txt"); r.code != 0 {
		t.Fatalf("write to rw mounts: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("host sees %q, %v; want %q", b, err, "hello\n")
	}
	if b, err := os.ReadFile(filepath.Join(nested, "in-nested.txt")); err != nil || string(b) != "deep\n" {
		t.Errorf("nested mount: host sees %q, %v; want %q", b, err, "deep\n")
	}
	if _, err := os.Stat(filepath.Join(rw, "data", "in-nested.txt")); err == nil {
		t.Error("a file written under the nested mount landed in the outer mount's directory")
	}
	if r := s.sh(t, id, "cat /workspace/ro/seed.txt"); r.stdout != "from host\n" {
		t.Errorf("read-only mount reads %q, want %q", r.stdout, "from host\n")
	}
	r := s.sh(t, id, "echo nope > /workspace/ro/new.txt")
	if r.code == 0 {
		t.Error("write into a read-only mount succeeded")
	}
	if !strings.Contains(strings.ToLower(r.stderr), "read-only") {
		t.Errorf("write into a read-only mount: stderr %q, want it to say read-only", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); err == nil {
		t.Error("a write into the read-only mount reached the host")
	}
	// A host-side write shows inside at once: no copy, a real bind mount.
	if err := os.WriteFile(filepath.Join(rw, "later.txt"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.sh(t, id, "cat /workspace/later.txt"); r.stdout != "late\n" {
		t.Errorf("host write seen inside as %q", r.stdout)
	}

	spec = s.spec(t)
	spec.Name += "-missing"
	spec.Mounts = []runtime.Mount{{Source: filepath.Join(rw, "does-not-exist"), Target: "/workspace"}}
	if _, err := s.rt.Create(testctx.Context(t), spec); err == nil {
		t.Error("create with a missing mount source succeeded")
	}
}

func (s *suite) testExec(t *testing.T) {
	spec := s.spec(t)
	spec.Env = map[string]string{"FROM_SPEC": "spec-value"}
	id := s.start(t, spec)

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			script string
			want   int
		}{{"true", 0}, {"exit 3", 3}, {"kill -9 $$", 137}, {"no-such-command-xyz", 127}} {
			if r := s.sh(t, id, tc.script); r.code != tc.want {
				t.Errorf("%q: exit code %d, want %d", tc.script, r.code, tc.want)
			}
		}
		// An argv whose program does not exist is not an Exec error.
		code, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{Cmd: []string{"/no/such/binary"}})
		if err != nil || (code != 126 && code != 127) {
			t.Errorf("missing binary: code %d, err %v; want 126 or 127 and no error", code, err)
		}
	})
	t.Run("Streams", func(t *testing.T) {
		t.Parallel()
		r := s.sh(t, id, "echo out; echo err >&2; echo out2")
		if r.stdout != "out\nout2\n" || r.stderr != "err\n" {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		t.Parallel()
		r := s.sh(t, id, "cat; echo; wc -c", func(e *runtime.ExecSpec) {
			e.Stdin = strings.NewReader("hello from stdin")
		})
		if r.stdout != "hello from stdin\n0\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		r = s.sh(t, id, "wc -c", func(e *runtime.ExecSpec) { e.Stdin = bytes.NewReader(big) })
		if strings.TrimSpace(r.stdout) != strconv.Itoa(len(big)) {
			t.Errorf("wc -c of 1 MiB stdin = %q", r.stdout)
		}
		// No stdin: reading gives EOF at once instead of hanging.
		if r := s.sh(t, id, "cat; echo done"); r.stdout != "done\n" {
			t.Errorf("without stdin: %q", r.stdout)
		}
	})
	t.Run("EnvDirUser", func(t *testing.T) {
		t.Parallel()
		r := s.sh(t, id, `echo "$FROM_SPEC $FROM_EXEC"; pwd; id -u`, func(e *runtime.ExecSpec) {
			e.Env = map[string]string{"FROM_EXEC": "exec value"}
			e.Dir = "/tmp"
			e.User = "1000"
		})
		if r.stdout != "spec-value exec value\n/tmp\n1000\n" {
			t.Errorf("stdout %q, want env, cwd and uid", r.stdout)
		}
	})
	t.Run("LargeOutput", func(t *testing.T) {
		t.Parallel()
		const n = 8 << 20
		var out, errb countWriter
		code, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{
			Cmd:    []string{"/bin/sh", "-c", fmt.Sprintf("head -c %d /dev/zero; head -c %d /dev/zero >&2", n, n/2)},
			Stdout: &out, Stderr: &errb,
		})
		if err != nil || code != 0 || out.n != n || errb.n != n/2 {
			t.Errorf("got code %d err %v, %d bytes out, %d err; want %d and %d", code, err, out.n, errb.n, n, n/2)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var out bytes.Buffer
				code, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{
					Cmd: []string{"/bin/sh", "-c", fmt.Sprintf("sleep 0.2; echo %d", i)}, Stdout: &out})
				if err != nil || code != 0 || out.String() != fmt.Sprintf("%d\n", i) {
					t.Errorf("exec %d: %q code %d err %v", i, out.String(), code, err)
				}
			}()
		}
		wg.Wait()
	})
	t.Run("WriterError", func(t *testing.T) {
		t.Parallel()
		// A consumer that goes away must not leave the command running.
		_, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{
			Cmd:    []string{"/bin/sh", "-c", "while :; do echo 4242-writer; sleep 0.01; done"},
			Stdout: failWriter{},
		})
		if err == nil {
			t.Fatal("exec with a failing writer returned no error")
		}
		s.waitGone(t, id, "4242-writer")
	})
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("consumer gone") }

// procsMatching is a script printing the command lines (one a line) of
// every process whose command line contains its first argument.
const procsMatching = `for d in /proc/[0-9]*; do c=$(tr '\0' ' ' < $d/cmdline 2>/dev/null); case "$c" in *"$1"*) echo "${d#/proc/}: $c";; esac; done`

// waitGone fails t unless, before the test's deadline, no process of
// container id has mark in its command line, as seen from a fresh exec.
// (Polled: the kill is asynchronous with no event to wait on, and a fixed
// limit fails on a busy machine.)
func (s *suite) waitGone(t *testing.T, id, mark string) {
	t.Helper()
	var left string
	// Eventually ends the test at its deadline; say what was still there.
	defer func() {
		if t.Failed() && left != "" {
			t.Logf("processes still running:\n%s", left)
		}
	}()
	testctx.Eventually(t, "the exec's processes ("+mark+") to be gone", func() bool {
		var out bytes.Buffer
		_, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{
			Cmd: []string{"/bin/sh", "-c", procsMatching, "sh", mark}, Stdout: &out})
		if err != nil {
			t.Fatalf("exec ps: %v", err)
		}
		// The checking shell's own command line holds the mark too.
		left = ""
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if line != "" && !strings.Contains(line, "/proc/[0-9]*") {
				left += line + "\n"
			}
		}
		return left == ""
	})
}

func (s *suite) testExecCancel(t *testing.T) {
	id := s.start(t, s.spec(t))
	// The command leaves three kinds of descendants: a plain child, one in
	// a new session (setsid) and one with a cleared environment (env -i).
	const script = `sleep 4711 & setsid sleep 4712 & env -i /bin/sleep 4713 & echo started; sleep 4714`
	// Cancel ends the exec once its output shows it runs (an event, not a
	// timer: on a busy machine the exec may take seconds to start); Deadline
	// cannot wait for an event, so its output may or may not have come.
	for _, tc := range []struct {
		name   string
		ctx    func(c context.Context, started <-chan struct{}) (context.Context, context.CancelFunc)
		want   error
		output []string
	}{
		{"Deadline", func(c context.Context, _ <-chan struct{}) (context.Context, context.CancelFunc) {
			return context.WithTimeout(c, 700*time.Millisecond)
		}, context.DeadlineExceeded, []string{"", "started\n"}},
		{"Cancel", func(c context.Context, started <-chan struct{}) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(c)
			go func() {
				select {
				case <-started:
					cancel()
				case <-ctx.Done():
				}
			}()
			return ctx, cancel
		}, context.Canceled, []string{"started\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &signalWriter{mark: "started\n", seen: make(chan struct{})}
			ctx, cancel := tc.ctx(testctx.Context(t), out.seen)
			defer cancel()
			start := time.Now()
			code, err := s.rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: out})
			took := time.Since(start)
			if !errors.Is(err, tc.want) || code != -1 {
				t.Errorf("got code %d, err %v; want -1 and %v", code, err, tc.want)
			}
			// The command runs for 4714 s: a minute is prompt on any machine.
			if took > time.Minute {
				t.Errorf("Exec returned %v after the cancellation, want promptly", took)
			}
			if got := out.String(); !slices.Contains(tc.output, got) {
				t.Errorf("output before cancellation %q, want one of %q", got, tc.output)
			}
			s.waitGone(t, id, "sleep 471")
		})
	}
	t.Run("NoOtherExecKilled", func(t *testing.T) {
		// Cancelling one exec leaves the container's other processes be:
		// the cancelled exec starts once the other runs, and ends while
		// it still waits for its second line.
		bgOut := &signalWriter{mark: "up\n", seen: make(chan struct{})}
		release := make(chan struct{})
		bg := make(chan result, 1)
		go func() {
			code, err := s.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{
				Cmd: []string{"/bin/sh", "-c", "echo up; read line; echo survived"}, Stdin: &chanReader{release: release}, Stdout: bgOut})
			if err != nil {
				t.Errorf("the other exec: %v", err)
			}
			bg <- result{stdout: bgOut.String(), code: code}
		}()
		select {
		case <-bgOut.seen:
		case r := <-bg:
			t.Fatalf("the other exec ended early: %+v", r)
		}
		mine := &signalWriter{mark: "x\n", seen: make(chan struct{})}
		ctx, cancel := context.WithCancel(testctx.Context(t))
		go func() {
			<-mine.seen
			cancel()
		}()
		_, err := s.rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"sh", "-c", "echo x; sleep 4721"}, Stdout: mine})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled exec: %v, want context.Canceled", err)
		}
		close(release)
		if r := <-bg; r.stdout != "up\nsurvived\n" || r.code != 0 {
			t.Errorf("an unrelated exec was hit: %+v", r)
		}
		s.wantState(t, id, runtime.StateRunning)
	})
}

// signalWriter collects output and closes seen once it contains mark.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark string
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.mark)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.mark) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// chanReader gives one line once release is closed, then EOF.
type chanReader struct {
	release chan struct{}
	done    bool
}

func (r *chanReader) Read(p []byte) (int, error) {
	if r.done || len(p) == 0 {
		return 0, io.EOF
	}
	<-r.release
	r.done = true
	p[0] = '\n'
	return 1, nil
}

func (s *suite) testImages(t *testing.T) {
	t.Parallel()
	ctx := testctx.Context(t)
	if ok, err := s.rt.ImagePresent(ctx, s.image); !ok || err != nil {
		t.Fatalf("ImagePresent(%s) = %v, %v; want true", s.image, ok, err)
	}
	tag := "berth-rt-test/" + s.run + ":1"
	t.Cleanup(func() {
		// Normally gone already: the test removes it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.rt.RemoveImage(ctx, tag); err != nil && !berth.IsKind(err, berth.NotFound) {
			t.Errorf("cleanup: remove image %s: %v", tag, err)
		}
	})

	// An image assembled here, as templates are: the base template's layer
	// and one more holding /built, loaded from a docker-archive tarball.
	var progress bytes.Buffer
	if err := s.rt.LoadImage(ctx, bytes.NewReader(imageArchive(t, tag, "built-"+s.run)), &progress); err != nil {
		t.Fatalf("load: %v\n%s", err, progress.String())
	}
	if ok, err := s.rt.ImagePresent(ctx, tag); !ok || err != nil {
		t.Fatalf("loaded image not present: %v, %v\n%s", ok, err, progress.String())
	}
	spec := s.spec(t)
	spec.Image = tag
	id := s.start(t, spec)
	if r := s.sh(t, id, "cat /built; stat -c '%a %u' /built"); r.stdout != "built-"+s.run+"\n640 0\n" {
		t.Errorf("loaded image content %q", r.stdout)
	}
	// Loading another image under the tag moves it to a new image id. The
	// old image either stays, addressable by its id, until removed (Docker)
	// or goes with its name (containerd keeps images by name): either way
	// a container made from it keeps its filesystem.
	oldID, err := s.rt.ImageID(ctx, tag)
	if err != nil || oldID == "" {
		t.Fatalf("ImageID(%s) = %q, %v", tag, oldID, err)
	}
	_, err = s.rt.ImageID(ctx, "berth-rt-test/absent:"+s.run)
	wantKind(t, "ImageID of an absent image", err, berth.NotFound)
	if err := s.rt.LoadImage(ctx, bytes.NewReader(imageArchive(t, tag, "rebuilt-"+s.run)), nil); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if newID, err := s.rt.ImageID(ctx, tag); err != nil || newID == oldID {
		t.Fatalf("after a reload the tag is on %q (%v), the old id was %q", newID, err, oldID)
	}
	if r := s.sh(t, id, "cat /built"); r.stdout != "built-"+s.run+"\n" {
		t.Errorf("after a reload, a container of the old image reads %q", r.stdout)
	}
	if err := s.rt.RemoveImage(ctx, oldID); !berth.IsKind(err, berth.Conflict) && !berth.IsKind(err, berth.NotFound) {
		t.Errorf("remove the old image while a container uses it: %v, want Conflict (kept) or NotFound (gone with its name)", err)
	}
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.rt.RemoveImage(ctx, oldID); err != nil && !berth.IsKind(err, berth.NotFound) {
		t.Errorf("remove the old image by id: %v", err)
	}
	id = s.start(t, spec)
	if r := s.sh(t, id, "cat /built"); r.stdout != "rebuilt-"+s.run+"\n" {
		t.Errorf("reloaded image content %q", r.stdout)
	}
	wantKind(t, "remove an image in use", s.rt.RemoveImage(ctx, tag), berth.Conflict)
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.rt.RemoveImage(ctx, tag); err != nil {
		t.Errorf("remove image: %v", err)
	}
	if ok, _ := s.rt.ImagePresent(ctx, tag); ok {
		t.Error("image still present after RemoveImage")
	}

	// An archive the engine cannot read is Invalid, and tags nothing.
	good := imageArchive(t, tag, "never-"+s.run)
	for _, bad := range []struct {
		what string
		data []byte
	}{
		{"not a tar", []byte("this is not an image archive\n")},
		{"cut short", good[:len(good)/2]},
		{"no manifest", tarOf(t, map[string]string{"hello.txt": "hi"}).(*bytes.Buffer).Bytes()},
	} {
		err := s.rt.LoadImage(ctx, bytes.NewReader(bad.data), nil)
		wantKind(t, "load of an archive "+bad.what, err, berth.Invalid)
	}
	if ok, _ := s.rt.ImagePresent(ctx, tag); ok {
		t.Error("a failed load left the tag present")
	}

	// Port 1 on loopback: a registry that refuses connections at once.
	err = s.rt.PullImage(ctx, "127.0.0.1:1/berth/none:1", &progress)
	wantKind(t, "pull from an unreachable registry", err, berth.Unavailable)
}

// imageArchive is a docker-archive tarball of an image tagged tag: the base
// template's layer (uncompressed, as templates make it) and a gzipped layer
// holding /built, mode 0640, that says content.
func imageArchive(t *testing.T, tag, content string) []byte {
	t.Helper()
	tmpl, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	base, release, err := templates.Image(testctx.Context(t), tmpl, nil)
	if err != nil {
		t.Fatalf("base image: %v", err)
	}
	defer release()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := content + "\n"
	if err := tw.WriteHeader(&tar.Header{Name: "built", Mode: 0o640, Size: int64(len(body)), ModTime: templates.Epoch}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tarball.Write(ref, img, &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// tarOf makes a tar stream of files (name → contents).
func tarOf(t *testing.T, files map[string]string) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}
