package containerd_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := containerdtest.New(t)
	runtimetest.Run(t, rt, containerdtest.BaseImage(t, rt))
}

// An engine that is not there must neither stop New nor hang a call: every
// call answers Unavailable, so that the server starts without an engine.
func TestEngineDown(t *testing.T) {
	c, err := containerd.New(t.TempDir()+"/no-engine.sock", "berth-test")
	if err != nil {
		t.Fatalf("New with a dead socket: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t)
	checks := map[string]error{
		"ping":   c.Ping(ctx),
		"start":  c.Start(ctx, "x"),
		"remove": c.Remove(ctx, "x"),
	}
	_, checks["inspect"] = c.Inspect(ctx, "x")
	_, checks["list"] = c.List(ctx, nil)
	_, checks["create"] = c.Create(ctx, runtime.Spec{Image: "berth/base:1"})
	_, checks["exec"] = c.Exec(ctx, "x", runtime.ExecSpec{Cmd: []string{"true"}})
	_, checks["image"] = c.ImagePresent(ctx, "berth/base:1")
	for name, err := range checks {
		if !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("%s: %v (kind %s), want unavailable", name, err, berth.KindOf(err))
		}
	}
}

// A runtime made while containerd was unreachable works once it answers:
// the client's connection is retried, not remembered as failed.
func TestRecoversWhenEngineAppears(t *testing.T) {
	live := containerdtest.New(t)
	sock := t.TempDir() + "/containerd.sock"
	c, err := containerd.New(sock, containerdtest.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t)
	if err := c.Ping(ctx); !berth.IsKind(err, berth.Unavailable) {
		t.Fatalf("ping before the engine is there: %v", err)
	}
	stop := proxy(t, sock, live.Address())
	defer stop()
	// The client reconnects with a backoff (at most a few seconds).
	testctx.Eventually(t, "ping to answer once the engine is there", func() bool { return c.Ping(ctx) == nil })
	if _, err := c.List(ctx, nil); err != nil {
		t.Fatalf("list after the engine appeared: %v", err)
	}
}

func wantKind(t *testing.T, what string, err error, kind berth.Kind) {
	t.Helper()
	if !berth.IsKind(err, kind) {
		t.Errorf("%s: got error %v (kind %s), want kind %s", what, err, berth.KindOf(err), kind)
	}
}

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

// An address held for a container that has no task (its berth or
// containerd died before the teardown, or it was deleted behind berth's
// back) is released by the first bridge start of a new runtime.
func TestPrunesOrphanedAddresses(t *testing.T) {
	live := containerdtest.New(t)
	image := containerdtest.BaseImage(t, live)
	ctx := testctx.Context(t)
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	dir := filepath.Join("/var/lib/cni/networks", containerd.IsolatedNetwork)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ghost := filepath.Join(dir, fmt.Sprintf("10.213.255.%d", 1+time.Now().UnixNano()%250))
	if err := os.WriteFile(ghost, []byte(containerdtest.Namespace+"-berth-ghost-"+run+"\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(ghost) })

	c, err := containerd.New(containerdtest.Address(), containerdtest.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	id, err := c.Create(ctx, runtime.Spec{Name: "berth-prune-" + run, Image: image, Network: runtime.NetworkBridge,
		Labels: map[string]string{runtimetest.LabelTest: run}})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, c, id)
	if err := c.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ghost); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphaned lease %s is still there (%v)", ghost, err)
	}
	// The started container's own address is held, and released by Remove.
	info, err := c.Inspect(ctx, id)
	if err != nil || info.IPAddress == "" {
		t.Fatalf("inspect: %+v, %v", info, err)
	}
	lease := filepath.Join(dir, info.IPAddress)
	if _, err := os.Stat(lease); err != nil {
		t.Errorf("no lease for the running container: %v", err)
	}
	if err := c.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lease); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the removed container's lease %s is still there (%v)", lease, err)
	}
}

// A bridge start puts the firewall in place as documented, and its FORWARD
// jump back in first place when another rule went above it (as an engine
// starting does). The inserted rule matches no interface: the shared rules
// are never weakened by the test.
func TestFirewall(t *testing.T) {
	live := containerdtest.New(t)
	image := containerdtest.BaseImage(t, live)
	ctx := testctx.Context(t)
	ipt, err := iptables.New()
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	decoy := []string{"-i", "bnomatch" + run[len(run)-6:], "-j", "ACCEPT"}
	if err := ipt.Insert("filter", "FORWARD", 1, decoy...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ipt.DeleteIfExists("filter", "FORWARD", decoy...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	id, err := live.Create(ctx, runtime.Spec{Name: "berth-fw-" + run, Image: image, Network: runtime.NetworkBridge,
		Labels: map[string]string{runtimetest.LabelTest: run}})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, live, id)
	if err := live.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	forward, err := ipt.List("filter", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	if len(forward) < 2 || forward[1] != "-A FORWARD -j "+containerd.ForwardChain {
		t.Errorf("FORWARD does not start with the jump to %s: %q", containerd.ForwardChain, forward)
	}
	chain, err := ipt.List("filter", containerd.ForwardChain)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(chain, "\n")
	for _, want := range []string{
		"-A " + containerd.ForwardChain + " -o " + containerd.IsolatedBridge + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A " + containerd.ForwardChain + " -o " + containerd.IsolatedBridge + " -j DROP",
		"-A " + containerd.ForwardChain + " -i " + containerd.IsolatedBridge + " -j DROP",
		"-A " + containerd.ForwardChain + " -i " + containerd.SharedBridge + " -j ACCEPT",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("%s lacks %q:\n%s", containerd.ForwardChain, want, joined)
		}
	}
	if ok, err := ipt.Exists("filter", "INPUT", "-i", containerd.IsolatedBridge, "-j", containerd.InputChain); err != nil || !ok {
		t.Errorf("no INPUT jump from %s to %s (%v)", containerd.IsolatedBridge, containerd.InputChain, err)
	}
	if ok, err := ipt.Exists("nat", "POSTROUTING", "-s", containerd.IsolatedSubnet, "!", "-o", containerd.IsolatedBridge, "-j", "MASQUERADE"); err != nil || !ok {
		t.Errorf("no masquerading of %s (%v)", containerd.IsolatedSubnet, err)
	}
}
