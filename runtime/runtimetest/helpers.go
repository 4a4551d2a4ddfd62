// Package runtimetest is the conformance suite of runtime.Runtime: Run holds
// every behaviour berth relies on, and every backend runs it against a real
// engine in its own tests. It also has the helpers other packages' tests use
// to get an engine and an image: Require and BaseImage.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/templates"
)

// Require checks that rt's engine answers. When it does not, the test fails
// under CI (CI=true: the engine is part of the test environment there, so its
// absence is a broken setup) and is skipped with a loud reason elsewhere.
func Require(t testing.TB, rt runtime.Runtime) {
	t.Helper()
	// A minute: an engine that answers slowly on a busy machine is there.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		msg := "NO CONTAINER ENGINE: " + err.Error() + " — start one with .ci/docker-up"
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, " + msg)
	}
}

// InCI reports whether the tests run in CI, where a missing engine is a
// failure rather than a reason to skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Build once per test binary: Ensure is cheap when the image is there, but
// parallel tests would still wait on each other's inspects.
var base struct {
	sync.Mutex
	ready map[runtime.Runtime]string
}

// BaseImage makes the built-in "base" template's image present on rt
// (building it locally from the host's busybox if needed, a few seconds) and
// returns its reference. A failure fails the test.
func BaseImage(t testing.TB, rt runtime.Runtime) string {
	t.Helper()
	base.Lock()
	defer base.Unlock()
	if ref, ok := base.ready[rt]; ok {
		return ref
	}
	tmpl, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	if err := templates.Ensure(ctx, rt, tmpl, &log); err != nil {
		t.Fatalf("base image: %v\n%s", err, log.String())
	}
	if base.ready == nil {
		base.ready = map[runtime.Runtime]string{}
	}
	base.ready[rt] = tmpl.Image
	return tmpl.Image
}

// LabelTest marks every container the suite creates, with a value unique to
// one Run, so that its cleanup removes exactly what it made.
const LabelTest = "berth.test"

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RemoveOnCleanup removes container id when t ends (with its own deadline,
// as the test's context has ended by then), and fails t if that fails for
// any reason other than the container being gone already.
func RemoveOnCleanup(t testing.TB, rt runtime.Runtime, id string) {
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		if err := rt.Remove(ctx, id); err != nil && !berth.IsKind(err, berth.NotFound) {
			t.Errorf("remove container %s: %v", id, err)
		}
	})
}

// RemoveLabelledOnCleanup removes every container with labels when t ends,
// failing t if one cannot be removed.
func RemoveLabelledOnCleanup(t testing.TB, rt runtime.Runtime, labels map[string]string) {
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		cs, err := rt.List(ctx, labels)
		if err != nil {
			t.Errorf("list containers %v to remove them: %v", labels, err)
			return
		}
		for _, c := range cs {
			if err := rt.Remove(ctx, c.ID); err != nil && !berth.IsKind(err, berth.NotFound) {
				t.Errorf("remove container %s: %v", c.ID, err)
			}
		}
	})
}
