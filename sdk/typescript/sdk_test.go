// Package typescript holds berth's TypeScript SDK (an npm package: see
// README.md). Its Go test runs the SDK's own tests, so that `make test`
// covers it.
package typescript

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
)

// TestSDK installs the SDK's locked dependencies (npm ci) and runs its
// tests (npm test: build, type-check the examples, then node's test runner
// against a real berth serve built here, and Docker). Without npm the test
// is skipped, except in CI, where a missing npm is a failure.
func TestSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("the SDK tests start a server and sandboxes")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npm is not installed (CI=true: the TypeScript SDK tests must run)")
		}
		t.Skip("npm is not installed; skipping the TypeScript SDK tests")
	}
	ctx := testctx.Context(t)

	// One server binary for every test file, built from this checkout.
	bin := filepath.Join(t.TempDir(), "berth")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, npm, args...)
		cmd.Env = append(os.Environ(), "BERTH_BIN="+bin, "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
		out, err := cmd.CombinedOutput()
		t.Logf("npm %v:\n%s", args, out)
		if err != nil {
			t.Fatalf("npm %v: %v", args, err)
		}
	}
	run("ci", "--no-progress")
	run("test")
}
