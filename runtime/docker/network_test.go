package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// The isolated network and its firewall rule are made on first use, once,
// by several servers starting together; made again when the network is
// removed while berth runs; the rule is put back at the next start after a
// firewall reload removed it; and names resolve inside. The test uses a
// network of its own: the shared one must never be removed.
func TestIsolatedNetwork(t *testing.T) {
	live := dockertest.New(t)
	image := runtimetest.BaseImage(t, live)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	run := hex.EncodeToString(b)
	netName, bridge := "berth-test-"+run, "bt"+run
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		list, err := live.List(ctx, map[string]string{runtimetest.LabelTest: run})
		if err != nil {
			t.Errorf("cleanup: list: %v", err)
		}
		for _, c := range list {
			if err := live.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
				t.Errorf("cleanup: remove %s: %v", c.Name, err)
			}
		}
		if err := live.RemoveNetwork(ctx, netName); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("cleanup: remove network %s: %v", netName, err)
		}
		if err := docker.RemoveJump(bridge); err != nil {
			t.Errorf("cleanup: firewall rule of %s: %v", bridge, err)
		}
	})
	spec := func(i int) runtime.Spec {
		return runtime.Spec{Name: fmt.Sprintf("berth-nettest-%s-%d", run, i), Image: image,
			Network: runtime.NetworkBridge, Labels: map[string]string{runtimetest.LabelTest: run}}
	}
	wantSetup := func(when string) {
		t.Helper()
		if n, err := live.Networks(ctx, netName); err != nil || n != 1 {
			t.Fatalf("%s: %d networks named %s (%v), want 1", when, n, netName, err)
		}
		jumps, chain, err := docker.FirewallRules(bridge)
		if err != nil {
			t.Fatal(err)
		}
		if jumps != 1 {
			t.Errorf("%s: %d INPUT rules for %s, want 1", when, jumps, bridge)
		}
		if len(chain) < 2 || !strings.Contains(chain[0], "ESTABLISHED") || !strings.HasSuffix(chain[0], "-j ACCEPT") ||
			!strings.HasSuffix(chain[len(chain)-1], "-j DROP") {
			t.Errorf("%s: chain %s = %q, want replies accepted, then everything dropped", when, docker.IsolationChain, chain)
		}
	}

	// Several servers (one runtime each, as if separate processes) creating
	// their first bridge sandbox at the same moment.
	const servers = 6
	rts := make([]*docker.Docker, servers)
	ids := make([]string, servers)
	errs := make([]error, servers)
	for i := range rts {
		d, err := docker.NewWithIsolatedNetwork("", netName, bridge)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		rts[i] = d
	}
	var wg sync.WaitGroup
	for i := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = rts[i].Create(ctx, spec(i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("server %d: create: %v", i, err)
		}
	}
	wantSetup("after concurrent first use")

	// Names resolve through the engine's DNS server in the sandbox.
	d := rts[0]
	if err := d.Start(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	sh := func(id, script string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		code, err := d.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		return out.String(), code
	}
	if out, _ := sh(ids[0], "cat /etc/resolv.conf"); !strings.Contains(out, "nameserver 127.0.0.11") {
		t.Errorf("resolv.conf on the isolated network:\n%s\nwant the engine's DNS server 127.0.0.11", out)
	}
	const name = "deb.debian.org"
	if _, err := net.DefaultResolver.LookupHost(ctx, name); err == nil {
		if out, code := sh(ids[0], "nslookup "+name); code != 0 {
			t.Errorf("the host resolves %s but the sandbox cannot: %s", name, out)
		}
	} else {
		t.Logf("the host cannot resolve %s (%v): name resolution inside not checked", name, err)
	}

	// A firewall reload removed the rule: the next start puts it back.
	if err := docker.RemoveJump(bridge); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, ids[0], time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	wantSetup("after a firewall reload and a start")

	// The network was removed (by hand) while berth runs: a stopped
	// sandbox starts again, and a new one can be created.
	for _, id := range ids {
		if err := d.Stop(ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RemoveNetwork(ctx, netName); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, ids[1]); err != nil {
		t.Fatalf("start after the network was removed: %v", err)
	}
	wantSetup("after a start recreated the network")
	if err := d.Stop(ctx, ids[1], time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveNetwork(ctx, netName); err != nil {
		t.Fatal(err)
	}
	// (The engine checks the network at start, not at create.)
	id, err := rts[2].Create(ctx, spec(servers))
	if err != nil {
		t.Fatalf("create after the network was removed: %v", err)
	}
	if err := rts[2].Start(ctx, id); err != nil {
		t.Fatalf("start of a sandbox created after the network was removed: %v", err)
	}
	wantSetup("after a create and start recreated the network")

	// A bridge sandbox made before isolation existed (on the default
	// bridge) is moved to the isolated network at its next start, and
	// stays there.
	legacy, err := d.CreateAsBefore(ctx, fmt.Sprintf("berth-nettest-%s-legacy", run), image, map[string]string{runtimetest.LabelTest: run})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Start(ctx, legacy); err != nil {
			t.Fatalf("start of a sandbox from before isolation: %v", err)
		}
		if nets, err := d.ContainerNetworks(ctx, legacy); err != nil || len(nets) != 1 || nets[0] != netName {
			t.Errorf("a sandbox from before isolation is on %v (%v), want [%s]", nets, err, netName)
		}
		if c, err := d.Inspect(ctx, legacy); err != nil || c.IPAddress == "" {
			t.Errorf("a moved sandbox has no address: %+v, %v", c, err)
		}
		if err := d.Stop(ctx, legacy, time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// One server ending leaves both to the others.
	if err := rts[3].Close(); err != nil {
		t.Fatal(err)
	}
	wantSetup("after a server closed")
}
