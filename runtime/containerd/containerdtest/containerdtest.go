// Package containerdtest gives tests a containerd runtime that is known to
// answer, on the standalone containerd of .ci/containerd-up (or the one
// BERTH_CONTAINERD_ADDRESS names), in a namespace of their own choosing, and
// the base template's image in it.
package containerdtest

import (
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// Namespace is the containerd namespace of berth's tests: apart from a
// server's DefaultNamespace, so that tests never see its sandboxes.
const Namespace = "berth-test"

// Address is the containerd the tests use.
func Address() string {
	if a := os.Getenv("BERTH_CONTAINERD_ADDRESS"); a != "" {
		return a
	}
	return containerd.DefaultAddress
}

// New returns a runtime for the test containerd, closed when t ends. Without
// an answering containerd the test fails under CI=true and is skipped with a
// loud reason elsewhere.
func New(t testing.TB) *containerd.Containerd {
	t.Helper()
	c, err := containerd.New(Address(), Namespace)
	if err != nil {
		t.Fatalf("containerd runtime: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		msg := "NO CONTAINERD at " + Address() + ": " + err.Error() + " — start one with .ci/containerd-up"
		if runtimetest.InCI() {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, " + msg)
	}
	return c
}

var loaded struct {
	sync.Mutex
	ref string
}

// BaseImage makes the base template's image present in c and returns its
// reference. Until templates are built without Docker, the image is built
// with the Docker engine (runtimetest.BaseImage) and loaded from `docker
// save` through c.LoadImage.
func BaseImage(t testing.TB, c *containerd.Containerd) string {
	t.Helper()
	loaded.Lock()
	defer loaded.Unlock()
	ref := runtimetest.BaseImage(t, dockertest.New(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if ok, err := c.ImagePresent(ctx, ref); err != nil {
		t.Fatal(err)
	} else if ok {
		return ref
	}
	LoadFromDocker(t, c, ref)
	return ref
}

// LoadFromDocker copies image ref from the Docker engine into c.
func LoadFromDocker(t testing.TB, c *containerd.Containerd, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "save", ref)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr limited
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker save %s: %v", ref, err)
	}
	lerr := c.LoadImage(ctx, out, io.Discard)
	// Drain what LoadImage left so that docker save can end.
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if lerr != nil || werr != nil {
		t.Fatalf("load %s from docker save: %v; docker save: %v %s", ref, lerr, werr, stderr.b)
	}
}

type limited struct{ b []byte }

func (l *limited) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}
