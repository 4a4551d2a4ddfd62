// Package dockertest gives tests a Docker runtime that is known to answer:
// any package whose tests need a real engine (sandbox, api, ...) starts with
// rt := dockertest.New(t) and image := runtimetest.BaseImage(t, rt).
package dockertest

import (
	"testing"

	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// New returns a runtime for the engine named by DOCKER_HOST (or the default
// local socket), closed when t ends. Without an answering engine the test
// fails under CI=true and is skipped with a loud reason elsewhere.
func New(t testing.TB) *docker.Docker {
	t.Helper()
	d, err := docker.New("")
	if err != nil {
		t.Fatalf("docker runtime: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	runtimetest.Require(t, d)
	return d
}
