package docker_test

import (
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	rt := dockertest.New(t)
	runtimetest.Run(t, rt, runtimetest.BaseImage(t, rt))
}

// An engine that is not there must neither stop New nor hang a call: every
// call answers Unavailable, so that the server starts without an engine.
func TestEngineDown(t *testing.T) {
	d, err := docker.New("unix://" + t.TempDir() + "/no-engine.sock")
	if err != nil {
		t.Fatalf("New with a dead socket: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t) // the test's deadline: slow is not wrong

	checks := map[string]error{
		"ping":   d.Ping(ctx),
		"start":  d.Start(ctx, "x"),
		"remove": d.Remove(ctx, "x"),
	}
	_, checks["inspect"] = d.Inspect(ctx, "x")
	_, checks["list"] = d.List(ctx, nil)
	_, checks["create"] = d.Create(ctx, runtime.Spec{Image: "berth/base:1"})
	_, checks["exec"] = d.Exec(ctx, "x", runtime.ExecSpec{Cmd: []string{"true"}})
	_, checks["image"] = d.ImagePresent(ctx, "berth/base:1")
	for name, err := range checks {
		if !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("%s: %v (kind %s), want unavailable", name, err, berth.KindOf(err))
		}
	}
}

// A runtime made while the engine was unreachable works once it answers:
// negotiation is retried, not remembered as failed.
func TestRecoversWhenEngineAppears(t *testing.T) {
	live := dockertest.New(t)
	sock := t.TempDir() + "/engine.sock"
	d, err := docker.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ctx := testctx.Context(t) // the test's deadline: slow is not wrong
	if err := d.Ping(ctx); !berth.IsKind(err, berth.Unavailable) {
		t.Fatalf("ping before the engine is there: %v", err)
	}
	stop := proxy(t, sock, live.Host())
	defer stop()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping after the engine appeared: %v", err)
	}
	if _, err := d.List(ctx, nil); err != nil {
		t.Fatalf("list after the engine appeared: %v", err)
	}
}

// The engine client and the YAML parser are the maintained modules, not
// their end-of-line predecessors (github.com/docker/docker, last of its
// +incompatible line, and the archived gopkg.in/yaml.v3), only the Docker
// backend imports the engine's SDK, only the containerd backend containerd's
// client and go-cni, and only templates and the CLI (its -o yaml and agent
// files) the YAML parser.
func TestMaintainedModules(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(goruntime.GOROOT(), "bin", "go")
	}
	const format = `{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`
	cmd := exec.Command(gotool, "list", "-f", format, "./...")
	cmd.Dir = "../.." // the module root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const self = "github.com/berth-dev/berth/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := f[0]
		for _, imp := range f[1:] {
			switch {
			case strings.HasPrefix(imp, "github.com/docker/docker/"), imp == "gopkg.in/yaml.v3":
				t.Errorf("%s imports %s: end of line", pkg, imp)
			case strings.HasPrefix(imp, "github.com/moby/moby/") && !strings.HasPrefix(pkg, self+"runtime/docker"):
				t.Errorf("%s imports the engine SDK (%s): only runtime/docker may", pkg, imp)
			case (strings.HasPrefix(imp, "github.com/containerd/containerd/") || strings.HasPrefix(imp, "github.com/containerd/go-cni")) &&
				!strings.HasPrefix(pkg, self+"runtime/containerd"):
				t.Errorf("%s imports containerd's client (%s): only runtime/containerd may", pkg, imp)
			case imp == "go.yaml.in/yaml/v3" && pkg != self+"templates" && pkg != self+"cmd/berth":
				t.Errorf("%s imports %s: only templates and cmd/berth may", pkg, imp)
			}
		}
	}
}
