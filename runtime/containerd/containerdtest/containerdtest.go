// Package containerdtest gives tests a containerd runtime that is known to
// answer, on the standalone containerd of .ci/containerd-up (or the one
// BERTH_CONTAINERD_ADDRESS names), in a namespace of their own choosing, and
// the base template's image in it.
package containerdtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/berth-dev/berth/runtime/containerd"
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

// BaseImage makes the base template's image present in c (built in Go and
// loaded through c.LoadImage, as a server on containerd does it) and
// returns its reference.
func BaseImage(t testing.TB, c *containerd.Containerd) string {
	t.Helper()
	return runtimetest.BaseImage(t, c)
}
