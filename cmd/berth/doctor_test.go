package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/doctor"
	"github.com/berth-dev/berth/server/servertest"
)

// TestDoctorProcess is the berth binary when BERTH_TEST_DOCTOR_ARGS is set:
// main itself runs, exit code included. The other tests start it.
func TestDoctorProcess(t *testing.T) {
	args := os.Getenv("BERTH_TEST_DOCTOR_ARGS")
	if args == "" {
		t.Skip("helper process")
	}
	os.Args = append([]string{"berth"}, strings.Split(args, "\x1f")...)
	main()
	os.Exit(0)
}

// berthDoctor runs `berth doctor args...` as a process and returns its
// stdout, stderr and exit code.
func berthDoctor(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDoctorProcess$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_DOCTOR_ARGS="+strings.Join(append([]string{"doctor"}, args...), "\x1f"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("run berth doctor: %v", err)
	return "", "", -1
}

func TestDoctorCommand(t *testing.T) {
	env := servertest.Start(t, "")
	good := []string{"--addr", strings.TrimPrefix(env.URL, "http://"), "--data-dir", env.Config.DataDir}

	out, stderr, code := berthDoctor(t, good...)
	if code != 0 {
		t.Fatalf("against a running berth: exit %d\n%s%s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 9 {
		t.Errorf("%d lines, want one a check:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "ok ") && !strings.HasPrefix(l, "warn ") {
			t.Errorf("not ok: %q", l)
		}
	}

	// The same flags through BERTH_* variables; a bad engine fails, in JSON.
	t.Setenv("BERTH_DATA_DIR", env.Config.DataDir)
	out, stderr, code = berthDoctor(t, "--docker-host", "unix:///nonexistent/docker.sock", "-o", "json")
	if code != 1 {
		t.Errorf("bad engine: exit %d, want 1\n%s%s", code, out, stderr)
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	failed := map[string]bool{}
	for _, c := range r.Checks {
		if c.Status == doctor.Fail {
			failed[c.Name] = true
		}
		if c.Name == "data dir" && !strings.Contains(c.Message, env.Config.DataDir) {
			t.Errorf("BERTH_DATA_DIR not used: %q", c.Message)
		}
	}
	if r.OK || !failed["engine"] || len(failed) != 1 {
		t.Errorf("failed %v, want the engine alone", failed)
	}
	if !strings.Contains(stderr, "checks failed: 1 of") {
		t.Errorf("stderr %q does not count the failures", stderr)
	}

	if _, stderr, code := berthDoctor(t, "-o", "yaml"); code != 1 || !strings.Contains(stderr, "text or json") {
		t.Errorf("-o yaml: exit %d, %q", code, stderr)
	}
}

// scripts/ensure-engine, which `make run` runs before serving, passes when
// an engine answers and stops make with what to do when the one named is
// not there (a DOCKER_HOST the user set is never replaced by an installed
// engine, so this holds as root on Debian too).
func TestEnsureEngineScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the berth binary")
	}
	bin := t.TempDir() + "/berth"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script := "../../scripts/ensure-engine"

	cmd := exec.Command(script, bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok    engine ") {
		t.Errorf("with the engine up: %v\n%s", err, out)
	}

	cmd = exec.Command(script, bin)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent/docker.sock")
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("with a DOCKER_HOST nobody answers: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"FAIL  engine ", "unset DOCKER_HOST", "make run: stopping"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "docker-up") {
		t.Errorf("tried to set up an engine although DOCKER_HOST names one:\n%s", out)
	}
}
