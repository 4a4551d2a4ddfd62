package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestBuiltBinaryExec runs exec through the real binary, where main decides
// from the process's own stdin whether to pass it: `echo hi | berth sandbox
// exec s -- cat` prints hi, and the command's exit code is the process's.
func TestBuiltBinaryExec(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	needEngine(t)
	ctx := testctx.Context(t)
	bin := filepath.Join(t.TempDir(), "berth")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := servertest.Start(t, "")
	berth := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(),
			"BERTH_URL=" + srv.URL, "BERTH_API_KEY=" + srv.AdminKey}
		cmd.Dir = t.TempDir()
		cmd.Stdin = strings.NewReader(stdin) // a pipe, not a terminal
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", args, err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	if out, errs, code := berth("", "sandbox", "create", "--name", "s", "--network", "none", "-q"); code != 0 || !strings.HasPrefix(out, "sbx_") {
		t.Fatalf("create: exit %d %q %q", code, out, errs)
	}
	if out, errs, code := berth("hi\n", "sandbox", "exec", "s", "--", "cat"); code != 0 || out != "hi\n" {
		t.Errorf("echo hi | berth sandbox exec s -- cat: exit %d %q %q", code, out, errs)
	}
	if out, errs, code := berth("", "sandbox", "exec", "s", "--", "sh", "-c", "echo bye; exit 42"); code != 42 || out != "bye\n" || errs != "" {
		t.Errorf("exit code through the process: exit %d %q %q", code, out, errs)
	}
	if _, errs, code := berth("", "sandbox", "exec", "gone", "--", "true"); code != 1 || !strings.Contains(errs, "(request req_") {
		t.Errorf("unknown sandbox: exit %d %q", code, errs)
	}
}
