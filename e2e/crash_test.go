// Package e2e holds end-to-end tests that run the berth binary itself as a
// separate process, for what an in-process server cannot show: a server
// killed mid-operation and started again on the same data directory.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/sandbox"
)

// berth is a `berth serve` process on a data directory.
type berth struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	log  *os.File
	args []string // more serve flags
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// start runs the server and returns once it answers: by then its startup
// reconcile has run (Serve reconciles before it serves).
func (b *berth) start() {
	t := b.t
	t.Helper()
	b.addr = freeAddr(t)
	b.cmd = exec.Command(b.bin, append([]string{"serve", "--data-dir", b.dir, "--addr", b.addr}, b.args...)...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Polled until the test's deadline: a loaded machine starts slowly.
	testctx.Eventually(t, "berth to come up (log in "+b.log.Name()+")", func() bool {
		resp, err := http.Get("http://" + b.addr + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close() // only the status matters
		return resp.StatusCode == 200
	})
}

func (b *berth) kill() {
	if b.cmd != nil && b.cmd.Process != nil {
		if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			b.t.Errorf("kill berth: %v", err)
		}
		// Wait reports the kill itself ("signal: killed"): only the
		// reaping matters here.
		_ = b.cmd.Wait()
		b.cmd = nil
	}
}

func (b *berth) client() *client.Client {
	key, err := os.ReadFile(filepath.Join(b.dir, "admin.key"))
	if err != nil {
		b.t.Fatal(err)
	}
	return client.New("http://"+b.addr, strings.TrimSpace(string(key)))
}

// TestCrashMidCreate kills the server (SIGKILL) while an async create is in
// flight, in two windows: right after the 202 (the container usually not
// made yet, or being made by the engine for a caller that is gone), and as
// soon as the container shows up on the engine. After a restart on the same
// data directory the sandbox must not be stuck creating and, unless the
// create got all the way to running, no container of it may remain.
func TestCrashMidCreate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the berth binary")
	}
	rt := dockertest.New(t)
	runtimetest.BaseImage(t, rt)
	log, err := os.Create(filepath.Join(t.TempDir(), "berth.log"))
	if err != nil {
		t.Fatal(err)
	}
	b := &berth{t: t, bin: buildBinary(t), dir: t.TempDir(), log: log}
	t.Cleanup(b.kill)
	ctx := context.Background()

	b.start()
	d, err := db.Open(ctx, filepath.Join(b.dir, "berth.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close the database: %v", err)
		}
	})
	var inst string
	if err := d.Get(&inst, `SELECT id FROM instance`); err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveLabelledOnCleanup(t, rt, map[string]string{sandbox.LabelInstance: inst})
	of := func(id string) []runtime.Container {
		cs, err := rt.List(ctx, map[string]string{sandbox.LabelSandbox: id})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	for _, window := range []string{"after the 202", "once the container exists"} {
		t.Run(strings.ReplaceAll(window, " ", "_"), func(t *testing.T) {
			c := b.client()
			s, err := c.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, true)
			if err != nil {
				t.Fatalf("async create: %v", err)
			}
			if window == "once the container exists" {
				for deadline := time.Now().Add(30 * time.Second); len(of(s.ID)) == 0; {
					if time.Now().After(deadline) {
						t.Fatal("the container never appeared")
					}
				}
			}
			b.kill()
			var landed string
			if err := d.Get(&landed, d.Rebind(`SELECT status FROM sandboxes WHERE id = ?`), s.ID); err != nil {
				t.Fatal(err)
			}
			t.Logf("killed with the sandbox %s and %d container(s)", landed, len(of(s.ID)))

			b.start()
			c = b.client()
			got, err := c.Sandbox(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch got.Status {
			case "running":
				// The create finished before the kill: a healthy sandbox.
				if cs := of(s.ID); len(cs) != 1 || cs[0].State != runtime.StateRunning {
					t.Errorf("running sandbox with containers %+v", cs)
				}
				if r, err := c.Exec(ctx, s.ID, client.ExecRequest{Command: "true"}); err != nil || r.ExitCode != 0 {
					t.Errorf("exec: %v %+v", err, r)
				}
			case "error":
				if got.StatusReason == "" {
					t.Errorf("error without a reason")
				}
				// A create the engine was still making when the server died
				// may land after the startup reconcile; the next reconcile
				// (every 10 s) removes it.
				testctx.Eventually(t, "the interrupted sandbox's orphan container to be removed", func() bool {
					return len(of(s.ID)) == 0
				})
			default:
				t.Fatalf("after restart the sandbox is %s (%s)", got.Status, got.StatusReason)
			}
			if err := c.DestroySandbox(ctx, s.ID); err != nil {
				t.Errorf("destroy after restart: %v", err)
			}
			if cs := of(s.ID); len(cs) != 0 {
				t.Errorf("containers after destroy: %d", len(cs))
			}
			if _, err := fmt.Fprintf(b.log, "--- end of window %q\n", window); err != nil {
				t.Errorf("write the server log: %v", err)
			}
		})
	}
}
