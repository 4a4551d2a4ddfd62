package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestBuiltBinary runs the real binary, built with a version stamped in,
// for what only main wires: the process's exit codes, its streams (stderr
// a pipe, not a terminal: no progress bar) and -ldflags.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx := testctx.Context(t)
	bin := filepath.Join(t.TempDir(), "berth")
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X github.com/berth-dev/berth.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := servertest.Start(t, "")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(),
		"BERTH_URL=" + srv.URL, "BERTH_API_KEY=" + srv.AdminKey}
	berth := func(extraEnv []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(append([]string{}, env...), extraEnv...)
		cmd.Dir = t.TempDir()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}

	out, _, code := berth(nil, "version")
	if code != 0 || !strings.Contains(out, "client: v9.9.9-test") || !strings.Contains(out, "at "+srv.URL) {
		t.Errorf("version: exit %d %q", code, out)
	}

	out, stderr, code := berth(nil, "workspace", "create", "bin", "--slug", "bin")
	if code != 0 || !strings.HasPrefix(out, "workspace bin created (") || stderr != "" {
		t.Errorf("create: exit %d %q %q", code, out, stderr)
	}
	local := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(local, bytes.Repeat([]byte("z"), 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = berth(nil, "files", "put", local, "bin:/")
	if code != 0 || stderr != "" || !strings.Contains(out, "uploaded") {
		t.Errorf("put with stderr a pipe: exit %d, stdout %q, stderr %q (want no progress bar)", code, out, stderr)
	}
	_, stderr, code = berth(nil, "workspace", "get", "missing")
	if code != 1 || !strings.HasPrefix(stderr, `berth: workspace "missing" not found (request req_`) {
		t.Errorf("not found: exit %d %q", code, stderr)
	}
	_, _, code = berth(nil, "no-such-command")
	if code != 1 {
		t.Errorf("unknown command: exit %d", code)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = berth([]string{"BERTH_URL=" + dead}, "workspace", "list")
	if code != 1 || !strings.Contains(stderr, "cannot reach the server at "+dead+": is it running? start it with `berth serve`") {
		t.Errorf("refused: exit %d %q", code, stderr)
	}
}
