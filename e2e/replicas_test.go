package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/sandbox"
)

// Replicas: two `berth serve --replicas` processes on one PostgreSQL
// database. Both drive this host's Docker engine, which stands in here for
// an engine shared by the replicas (a cluster): what is tested is that the
// servers coordinate through the database, not how they reach the engine.
// They share one workspaces directory (--workspaces-dir), as replicas on
// several hosts share one network filesystem; each has a data directory of
// its own.

// replicaSet is one database, one workspaces directory and the servers on them.
type replicaSet struct {
	t       *testing.T
	bin     string
	dsn     string
	wsDir   string
	key     string
	d       *db.DB
	servers []*berth
}

// leaseTTL is the replicas' lease TTL: short, so that a killed replica is
// taken over within the test, long enough for a loaded machine to renew.
const leaseTTL = "3s"

func newReplicaSet(t *testing.T, bin string) *replicaSet {
	t.Helper()
	if os.Getenv("BERTH_TEST_POSTGRES") == "" && os.Getenv("CI") == "true" {
		t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
	}
	rs := &replicaSet{t: t, bin: bin, dsn: dbtest.PostgresDSN(t), wsDir: t.TempDir()}
	ctx := testctx.Context(t)
	rs.start("a")
	d, err := db.Connect(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	rs.d = d
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close the database: %v", err)
		}
	})
	var inst string
	if err := d.Get(&inst, `SELECT id FROM instance`); err != nil {
		t.Fatal(err)
	}
	rt := dockertest.New(t)
	runtimetest.RemoveLabelledOnCleanup(t, rt, map[string]string{sandbox.LabelInstance: inst})
	key, err := os.ReadFile(filepath.Join(rs.servers[0].dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	rs.key = strings.TrimSpace(string(key))
	rs.start("b")
	return rs
}

// start runs one more replica with a data directory of its own.
func (rs *replicaSet) start(name string) *berth {
	t := rs.t
	log, err := os.Create(filepath.Join(t.TempDir(), "berth-"+name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	b := &berth{t: t, bin: rs.bin, dir: t.TempDir(), log: log,
		args: []string{"--database", rs.dsn, "--replicas", "--workspaces-dir", rs.wsDir,
			"--lease-ttl", leaseTTL, "--reconcile-interval", "1s"}}
	t.Cleanup(b.kill)
	b.start()
	rs.servers = append(rs.servers, b)
	return b
}

func (rs *replicaSet) client(b *berth) *client.Client {
	return client.New("http://"+b.addr, rs.key)
}

// health is a replica's /healthz.
func health(t *testing.T, b *berth) (instance string, leader bool) {
	t.Helper()
	resp, err := http.Get("http://" + b.addr + "/healthz")
	if err != nil {
		return "", false
	}
	defer func() { _ = resp.Body.Close() }()
	var h struct {
		Data struct {
			Instance string `json:"instance"`
			Leader   bool   `json:"leader"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.Data.Instance, h.Data.Leader
}

func containersOf(t *testing.T, rt runtime.Runtime, id string) []runtime.Container {
	t.Helper()
	cs, err := rt.List(testctx.Context(t), map[string]string{sandbox.LabelSandbox: id})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the berth binary")
	}
	rt := dockertest.New(t)
	runtimetest.BaseImage(t, rt)
	bin := buildBinary(t)

	// A sandbox created through one replica is paused, exec'd (which
	// resumes it) and destroyed through the other.
	t.Run("lifecycle_across_replicas", func(t *testing.T) {
		rs := newReplicaSet(t, bin)
		ctx := testctx.Context(t)
		a, b := rs.client(rs.servers[0]), rs.client(rs.servers[1])
		ia, _ := health(t, rs.servers[0])
		ib, _ := health(t, rs.servers[1])
		if ia == "" || ia == ib {
			t.Fatalf("instance ids %q and %q, want distinct", ia, ib)
		}
		// The workspace made on one replica, written through the other,
		// is the same bytes in a sandbox of the first: one shared directory.
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "shared"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.WriteFile(ctx, w.ID, "hello.txt", "same bytes"); err != nil {
			t.Fatal(err)
		}
		s, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"},
			Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace/shared"}}}, false)
		if err != nil {
			t.Fatal(err)
		}
		p, err := b.PauseSandbox(ctx, s.ID)
		if err != nil || p.Status != "paused" {
			t.Fatalf("pause through the other replica: %v %+v", err, p)
		}
		if got, err := a.Sandbox(ctx, s.ID); err != nil || got.Status != "paused" {
			t.Fatalf("the creating replica sees %v %+v, want paused", err, got)
		}
		r, err := b.Exec(ctx, s.ID, client.ExecRequest{Command: []string{"cat", "/workspace/shared/hello.txt"}})
		if err != nil || r.ExitCode != 0 || r.Stdout != "same bytes" {
			t.Fatalf("exec through the other replica: %v %+v", err, r)
		}
		if err := b.DestroySandbox(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Sandbox(ctx, s.ID); err != nil || got.Status != "destroyed" {
			t.Fatalf("the creating replica sees %v %+v, want destroyed", err, got)
		}
		if cs := containersOf(t, rt, s.ID); len(cs) != 0 {
			t.Errorf("containers after destroy: %+v", cs)
		}
	})

	// A replica killed right after accepting an async create: once its
	// lease expires the other (leader by then) settles the sandbox, and no
	// container of it is left unless it runs.
	t.Run("killed_mid_create", func(t *testing.T) {
		rs := newReplicaSet(t, bin)
		ctx := testctx.Context(t)
		a, b := rs.client(rs.servers[0]), rs.client(rs.servers[1])
		s, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		rs.servers[0].kill()
		var got *client.Sandbox
		testctx.Eventually(t, "the other replica to settle the interrupted create", func() bool {
			got, err = b.Sandbox(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status != "creating"
		})
		testctx.Eventually(t, "the other replica to become leader", func() bool {
			_, leader := health(t, rs.servers[1])
			return leader
		})
		switch got.Status {
		case "running":
			// The create finished before the kill.
			if r, err := b.Exec(ctx, s.ID, client.ExecRequest{Command: "true"}); err != nil || r.ExitCode != 0 {
				t.Errorf("exec: %v %+v", err, r)
			}
		case "error":
			if got.StatusReason == "" {
				t.Error("error without a reason")
			}
			testctx.Eventually(t, "the interrupted sandbox's containers to be removed", func() bool {
				return len(containersOf(t, rt, s.ID)) == 0
			})
		default:
			t.Fatalf("after the kill the sandbox is %s (%s)", got.Status, got.StatusReason)
		}
		if err := b.DestroySandbox(ctx, s.ID); err != nil {
			t.Fatalf("destroy through the survivor: %v", err)
		}
		if cs := containersOf(t, rt, s.ID); len(cs) != 0 {
			t.Errorf("containers after destroy: %+v", cs)
		}
	})

	// A run started on one replica streams its live events to clients of
	// both: the second line is printed only after both streams got the
	// first, so it can only reach them live.
	t.Run("live_stream_on_both", func(t *testing.T) {
		rs := newReplicaSet(t, bin)
		ctx := testctx.Context(t)
		a, b := rs.client(rs.servers[0]), rs.client(rs.servers[1])
		s, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.UpsertAgent(ctx, client.AgentRequest{Slug: "gated", ExecutionMode: "in_sandbox", Sandbox: s.ID,
			Command: []string{"sh", "-c", "echo first; while [ ! -e /tmp/go ]; do sleep 1; done; echo second"}}); err != nil {
			t.Fatal(err)
		}
		type stream struct {
			mu    sync.Mutex
			out   string
			runID string
			done  chan error
		}
		collect := func(st *stream) func(e client.Event) error {
			return func(e client.Event) error {
				st.mu.Lock()
				defer st.mu.Unlock()
				switch e.Name {
				case "stdout":
					st.out += e.Data
				case "status":
					var d struct {
						RunID string `json:"runId"`
					}
					if err := json.Unmarshal([]byte(e.Data), &d); err == nil && st.runID == "" {
						st.runID = d.RunID
					}
				}
				return nil
			}
		}
		// The run starts on a, streamed to a's client ...
		sa := &stream{done: make(chan error, 1)}
		go func() { sa.done <- a.RunAgentStream(ctx, "gated", client.RunRequest{Prompt: "go"}, collect(sa)) }()
		var runID string
		testctx.Eventually(t, "the run to start", func() bool {
			sa.mu.Lock()
			defer sa.mu.Unlock()
			runID = sa.runID
			return runID != ""
		})
		// ... and followed through b.
		sb := &stream{done: make(chan error, 1)}
		go func() { sb.done <- b.FollowRun(ctx, runID, "", collect(sb)) }()
		has := func(st *stream, s string) bool {
			st.mu.Lock()
			defer st.mu.Unlock()
			return strings.Contains(st.out, s)
		}
		testctx.Eventually(t, "both streams to get the first line", func() bool { return has(sa, "first") && has(sb, "first") })
		if has(sa, "second") || has(sb, "second") {
			t.Fatal("second line before the gate opened")
		}
		// A replica starting meanwhile does not fail the run in flight on a
		// (its start-up recovery leaves live replicas' runs alone).
		c := rs.client(rs.start("c"))
		if got, err := c.GetRun(ctx, runID); err != nil || got.Status != "running" {
			t.Fatalf("run after a third replica started: %v %+v, want running", err, got)
		}
		if r, err := b.Exec(ctx, s.ID, client.ExecRequest{Command: []string{"touch", "/tmp/go"}}); err != nil || r.ExitCode != 0 {
			t.Fatalf("open the gate: %v %+v", err, r)
		}
		for name, st := range map[string]*stream{"a": sa, "b": sb} {
			select {
			case err := <-st.done:
				if err != nil {
					t.Fatalf("stream on %s: %v", name, err)
				}
			case <-ctx.Done():
				t.Fatalf("stream on %s did not end", name)
			}
			if !has(st, "second") {
				t.Errorf("stream on %s got %q, want the second line", name, st.out)
			}
		}
		if got, err := b.GetRun(ctx, runID); err != nil || got.Status != "completed" {
			t.Fatalf("run seen from the other replica: %v %+v", err, got)
		}
	})

	// Killing the leader hands reconcile to the other replica: a container
	// removed behind berth's back is then noticed by the survivor.
	t.Run("leader_killed", func(t *testing.T) {
		rs := newReplicaSet(t, bin)
		ctx := testctx.Context(t)
		var leader, other *berth
		testctx.Eventually(t, "one leader", func() bool {
			_, la := health(t, rs.servers[0])
			_, lb := health(t, rs.servers[1])
			switch {
			case la && !lb:
				leader, other = rs.servers[0], rs.servers[1]
			case lb && !la:
				leader, other = rs.servers[1], rs.servers[0]
			default:
				return false
			}
			return true
		})
		c := rs.client(other)
		// Synchronous: the container exists before the leader goes.
		s, err := c.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Resources: &client.Resources{Memory: "64MiB"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status != "running" {
			t.Fatalf("created sandbox is %s (%s), want running", s.Status, s.StatusReason)
		}
		leader.kill()
		testctx.Eventually(t, "the survivor to become leader", func() bool {
			_, l := health(t, other)
			return l
		})
		cs := containersOf(t, rt, s.ID)
		if len(cs) != 1 {
			t.Fatalf("containers of the sandbox: %+v", cs)
		}
		if out, err := exec.CommandContext(ctx, "docker", "rm", "-f", cs[0].ID).CombinedOutput(); err != nil {
			t.Fatalf("docker rm: %v\n%s", err, out)
		}
		testctx.Eventually(t, "the new leader to reconcile the removed container", func() bool {
			got, err := c.Sandbox(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status == "error" && strings.Contains(got.StatusReason, "removed outside berth")
		})
		if err := c.DestroySandbox(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	})
}
