package dashboard

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
)

// TestDistIsCurrent rebuilds the bundle from web/ into a temporary directory
// and fails when it differs from the committed dist/: the binary must embed
// exactly what the sources build (`make dashboard` refreshes dist/).
func TestDistIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dashboard with npm")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but npm is not installed: cannot check that dashboard/dist is current")
		}
		t.Skip("npm not installed")
	}
	ctx := testctx.Context(t)
	if _, err := os.Stat(filepath.Join("web", "node_modules")); err != nil {
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = "web"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, npm, "run", "build")
	cmd.Dir = "web"
	cmd.Env = append(os.Environ(), "OUTDIR="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm run build: %v\n%s", err, b)
	}
	want := tree(t, out)
	got := tree(t, "dist")
	for name, b := range want {
		c, ok := got[name]
		switch {
		case !ok:
			t.Errorf("dist/%s is missing: run make dashboard and commit dist/", name)
		case !bytes.Equal(b, c):
			t.Errorf("dist/%s is stale: run make dashboard and commit dist/", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("dist/%s is not built from the sources any more: run make dashboard and commit dist/", name)
		}
	}
}

func tree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		m[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
