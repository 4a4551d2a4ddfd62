// Package servertest starts a real berth server in-process, on a loopback
// port and a fresh data directory and database, for end-to-end tests that
// drive it through the Go client.
package servertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/api/openapitest"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/workspace"
)

// Env is a running server with its admin client.
type Env struct {
	*server.Server
	URL      string
	AdminKey string
	// Admin and the clients made from it (WithKey, Member, Client) share
	// one HTTP client, which notes 5xx answers for the failure report.
	Admin *client.Client
	book  *logBook

	stop func(t testing.TB)
}

// Stop shuts the server down as a signal would and releases its database and
// data directory, for a next server on them; its containers stay until the
// test ends.
func (e *Env) Stop(t testing.TB) { e.stop(t) }

// Engines runs fn against a server on SQLite and, when BERTH_TEST_POSTGRES
// is set, on PostgreSQL.
func Engines(t *testing.T, fn func(t *testing.T, env *Env)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, Start(t, "")) })
	if os.Getenv("BERTH_TEST_POSTGRES") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
		}
		t.Log("BERTH_TEST_POSTGRES not set: skipping the PostgreSQL run")
		return
	}
	t.Run("postgres", func(t *testing.T) { fn(t, Start(t, dbtest.PostgresDSN(t))) })
}

// EnginesAndRuntimes is Engines, on the Docker runtime, and then the same on
// SQLite with sandboxes on containerd: for the sandbox manager's end-to-end
// tests, which must hold on both container engines.
func EnginesAndRuntimes(t *testing.T, fn func(t *testing.T, env *Env)) {
	t.Helper()
	Engines(t, fn)
	t.Run("containerd", func(t *testing.T) { fn(t, StartRuntime(t, "", server.RuntimeContainerd)) })
}

// Start runs a server on database (SQLite in the data dir when empty) until
// the test ends.
func Start(t testing.TB, database string) *Env {
	t.Helper()
	return StartConfig(t, Config(t, database))
}

// BtrfsPoolSize is the size of the sparse pool file of StartBtrfs.
const BtrfsPoolSize = 1 << 30

// StartBtrfs runs a server like Start whose workspaces are on the btrfs
// storage driver: a sparse pool file of its own under its fresh data
// directory, loop-mounted at start and unmounted when the server stops
// (needs root and btrfs-progs, as .ci/run provides). A second server
// started with the same config (env.Config) remounts the same pool.
func StartBtrfs(t testing.TB, database string) *Env {
	t.Helper()
	cfg := Config(t, database)
	cfg.Storage, cfg.StoragePoolSize = "btrfs", BtrfsPoolSize
	return StartConfig(t, cfg)
}

// BtrfsEngines is Engines with servers on the btrfs storage driver.
func BtrfsEngines(t *testing.T, fn func(t *testing.T, env *Env)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, StartBtrfs(t, "")) })
	if os.Getenv("BERTH_TEST_POSTGRES") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
		}
		t.Log("BERTH_TEST_POSTGRES not set: skipping the PostgreSQL run")
		return
	}
	t.Run("postgres", func(t *testing.T) { fn(t, StartBtrfs(t, dbtest.PostgresDSN(t))) })
}

// Config is the configuration Start uses: a fresh data directory, database
// (SQLite in the data dir when empty), a free loopback port.
func Config(t testing.TB, database string) server.Config {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Database = database
	// Tests run reconcile passes themselves and check what a pass did. A
	// pass skips a sandbox whose lock another holds, so a background pass
	// working on a sandbox would make the test's own pass skip it.
	// For the same reason the reconciler does not follow the engine's
	// events here: tests of that path start their own server.
	cfg.Sandbox.ReconcileInterval = time.Hour
	cfg.Sandbox.IgnoreEngineEvents = true
	return cfg
}

// Runtimes are the container engines a server can run sandboxes on, for
// tests that are a table over them.
var Runtimes = []string{server.RuntimeDocker, server.RuntimeContainerd}

// StartRuntime is Start with sandboxes on runtime (server.RuntimeDocker or
// server.RuntimeContainerd). A containerd server uses the test containerd
// (containerdtest.Address) in the tests' namespace, with the base template's
// image loaded into it.
func StartRuntime(t testing.TB, database, runtime string) *Env {
	t.Helper()
	cfg := Config(t, database)
	UseRuntime(t, &cfg, runtime)
	return StartConfig(t, cfg)
}

// UseRuntime sets cfg to run sandboxes on runtime, as StartRuntime does.
func UseRuntime(t testing.TB, cfg *server.Config, runtime string) {
	t.Helper()
	cfg.Runtime = runtime
	if runtime == server.RuntimeContainerd {
		c := containerdtest.New(t)
		containerdtest.BaseImage(t, c)
		cfg.ContainerdAddress = containerdtest.Address()
		cfg.ContainerdNamespace = containerdtest.Namespace
	}
}

// StartConfig runs a server with cfg until the test ends.
func StartConfig(t testing.TB, cfg server.Config) *Env {
	t.Helper()
	// The server's log is kept (bounded) and, when the test fails, the
	// lines of every request that got a 5xx are printed: a failure in CI
	// is diagnosable from its output alone. BERTH_TEST_LOG also streams
	// the whole log to stderr.
	book := &logBook{}
	var h slog.Handler = newHandler(book)
	if os.Getenv("BERTH_TEST_LOG") != "" {
		h = slog.NewMultiHandler(h, slog.NewTextHandler(os.Stderr, nil))
	}
	log := slog.New(h)
	printOnFailure(t, book)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	if err := s.Listen(); err != nil {
		cancel()
		s.Close()
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var once sync.Once
	stop := func(t testing.TB) {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(testctx.Hang):
				// Only a hang gets here: a slow machine shuts down slowly.
				t.Errorf("server did not shut down in %v", testctx.Hang)
			}
			s.Close()
		})
	}
	instance := s.Sandboxes.Instance()
	t.Cleanup(func() {
		stop(t)
		removeContainers(t, cfg, instance)
		// Mount points stay pinned (immutable) while their sandboxes exist;
		// a test that never destroyed them would leave a data directory
		// nobody can remove.
		if err := unpinWorkspaces(cfg.DataDir); err != nil {
			t.Errorf("unpin the data directory: %v", err)
		}
	})
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin.key"))
	if err != nil {
		t.Fatalf("read admin.key: %v", err)
	}
	key := strings.TrimSpace(string(b))
	admin := client.New(s.URL(), key)
	check, err := validator(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	checkMismatches(t, book)
	admin.HTTP.Transport = transport{base: admin.HTTP.Transport, book: book, check: check}
	return &Env{Server: s, URL: s.URL(), AdminKey: key, Admin: admin, book: book, stop: stop}
}

// validator loads the server's OpenAPI document, which every answer of the
// env's clients is then checked against.
func validator(url string) (*openapitest.Validator, error) {
	req, err := http.NewRequest("GET", url+"/v1/openapi.json", nil)
	if err != nil {
		return nil, err
	}
	// Closed after the answer: a kept-alive idle connection would hold one
	// of the server's connection slots, which some tests count.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get the OpenAPI document: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get the OpenAPI document: status %d, %v: %s", resp.StatusCode, err, b)
	}
	return openapitest.New(b)
}

// HTTP is the HTTP client of the env's Go clients, for raw requests: the
// 5xx answers it gets are reported with the server's log lines when the
// test fails, like those of the Go clients.
func (e *Env) HTTP() *http.Client { return e.Admin.HTTP }

// Client returns a Go client of the server using key, whose 5xx answers
// are reported like those of Admin.
func (e *Env) Client(key string) *client.Client { return e.Admin.WithKey(key) }

// Member adds a member with role and returns a client using a new key of
// theirs with scopes (all scopes when none are given).
func (e *Env) Member(t testing.TB, name, role string, scopes ...string) (*client.Member, *client.Client) {
	t.Helper()
	ctx := context.Background()
	m, err := e.Admin.AddMember(ctx, name, "", role)
	if err != nil {
		t.Fatalf("add member %s: %v", name, err)
	}
	k, err := e.Admin.CreateAPIKey(ctx, client.KeyRequest{Name: name + "-key", Scopes: scopes, UserID: m.ID})
	if err != nil {
		t.Fatalf("create key for %s: %v", name, err)
	}
	return m, e.Admin.WithKey(k.Key)
}

// removeContainers removes every container of a server's instance, so that
// no test leaks sandboxes whatever it forgot to destroy. An engine that is
// down (or never was) has nothing to remove.
func removeContainers(t testing.TB, cfg server.Config, instance string) {
	var rt interface {
		runtime.Runtime
		Close() error
	}
	var err error
	if cfg.Runtime == server.RuntimeContainerd {
		rt, err = containerd.New(cfg.ContainerdAddress, cfg.ContainerdNamespace)
	} else {
		rt, err = docker.New(cfg.DockerHost)
	}
	if err != nil {
		t.Logf("remove test containers: %v", err)
		return
	}
	defer func() { _ = rt.Close() }()
	ctx, cancel := testctx.Cleanup()
	defer cancel()
	cs, err := rt.List(ctx, map[string]string{sandbox.LabelInstance: instance})
	if err != nil {
		t.Logf("list the server's containers to remove them: %v", err)
		return
	}
	for _, c := range cs {
		if err := rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
			t.Errorf("remove container %s left by the test: %v", c.ID, err)
		}
	}
}

// unpinWorkspaces clears the pins of every workspace directory of dataDir.
func unpinWorkspaces(dataDir string) error {
	dir := filepath.Join(dataDir, "workspaces")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, workspace.UnpinTree(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
