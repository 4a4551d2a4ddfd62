package docker_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/docker"
)

// fakeEngine answers /_ping and /version on a unix socket at path, as an
// engine of version would: enough to test detection, not the engine.
func fakeEngine(t *testing.T, path, version string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			_, _ = w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/version"):
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"Version":"` + version + `","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux"}`))
		default:
			http.NotFound(w, r)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }() // ends with Close below
	t.Cleanup(func() { _ = srv.Close() })
}

// layout is a fake machine: a runtime dir, a home and a system socket
// path, all under one short temp dir (unix socket paths are limited to
// 108 bytes).
type layout struct{ xdg, home, system string }

func newLayout(t *testing.T) layout {
	t.Helper()
	dir, err := os.MkdirTemp("", "bd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l := layout{xdg: filepath.Join(dir, "run"), home: filepath.Join(dir, "home"), system: filepath.Join(dir, "docker.sock")}
	for _, d := range []string{l.xdg, filepath.Join(l.home, ".docker", "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := docker.SystemSocket
	docker.SystemSocket = l.system
	t.Cleanup(func() { docker.SystemSocket = old })
	return l
}

func (l layout) env(vars map[string]string) docker.Env {
	return docker.Env{Home: l.home, Getenv: func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			if v, ok := vars[k]; ok {
				return v
			}
			return l.xdg
		}
		return vars[k]
	}}
}

func detect(t *testing.T, explicit string, env docker.Env) docker.Detection {
	t.Helper()
	return docker.Detect(testctx.Context(t), explicit, env, time.Minute)
}

func TestDetectOrder(t *testing.T) {
	l := newLayout(t)
	desktop := filepath.Join(l.home, ".docker", "run", "docker.sock")
	rootless := filepath.Join(l.xdg, "docker.sock")

	fakeEngine(t, l.system, "1.0-system")
	det := detect(t, "", l.env(nil))
	if det.Found == nil || det.Found.Version != "1.0-system" || det.Found.APIVersion != "1.41" || det.Found.Host != "unix://"+l.system {
		t.Fatalf("system socket only: %+v (%s)", det.Found, det.Summary())
	}
	if len(det.Tried) != 3 {
		t.Errorf("tried %d candidates, want rootless, desktop, system: %+v", len(det.Tried), det.Tried)
	}

	fakeEngine(t, desktop, "2.0-desktop")
	if det := detect(t, "", l.env(nil)); det.Found == nil || det.Found.Version != "2.0-desktop" || !strings.Contains(det.Found.Source, "Docker Desktop") {
		t.Fatalf("Docker Desktop before the system engine: %+v", det.Found)
	}

	fakeEngine(t, rootless, "3.0-rootless")
	if det := detect(t, "", l.env(nil)); det.Found == nil || det.Found.Version != "3.0-rootless" || !strings.Contains(det.Found.Source, "rootless") {
		t.Fatalf("rootless first: %+v", det.Found)
	}

	// No XDG_RUNTIME_DIR: rootless is not looked for.
	if det := detect(t, "", l.env(map[string]string{"XDG_RUNTIME_DIR": ""})); det.Found == nil || det.Found.Version != "2.0-desktop" {
		t.Fatalf("without XDG_RUNTIME_DIR: %+v", det.Found)
	}
}

func TestDetectExplicitOnly(t *testing.T) {
	l := newLayout(t)
	fakeEngine(t, l.system, "1.0-system")
	other := filepath.Join(l.home, "other.sock")
	fakeEngine(t, other, "4.0-other")

	// DOCKER_HOST is the user's choice: used, and nothing else is tried.
	det := detect(t, "", l.env(map[string]string{"DOCKER_HOST": "unix://" + other}))
	if det.Found == nil || det.Found.Version != "4.0-other" || det.Found.Source != "DOCKER_HOST" {
		t.Fatalf("DOCKER_HOST: %+v", det.Found)
	}
	det = detect(t, "", l.env(map[string]string{"DOCKER_HOST": "unix://" + filepath.Join(l.home, "gone.sock")}))
	if det.Found != nil || len(det.Tried) != 1 {
		t.Fatalf("a DOCKER_HOST without an engine fell back: %+v, tried %+v", det.Found, det.Tried)
	}
	if a := det.Advice(); !strings.Contains(a, "unset DOCKER_HOST") {
		t.Errorf("advice for a dead DOCKER_HOST: %q", a)
	}

	// --docker-host wins over DOCKER_HOST.
	det = detect(t, "unix://"+l.system, l.env(map[string]string{"DOCKER_HOST": "unix://" + other}))
	if det.Found == nil || det.Found.Version != "1.0-system" || det.Found.Source != "--docker-host" {
		t.Fatalf("--docker-host: %+v", det.Found)
	}
}

func TestDetectNothing(t *testing.T) {
	l := newLayout(t)
	det := detect(t, "", l.env(nil))
	if det.Found != nil {
		t.Fatalf("found %+v on an empty machine", det.Found)
	}
	for _, want := range []string{l.xdg, l.home, l.system} {
		if !strings.Contains(det.Summary(), want) {
			t.Errorf("summary %q does not name %s", det.Summary(), want)
		}
	}
	if a := det.Advice(); !strings.Contains(a, "install") || !strings.Contains(a, ".ci/docker-up") {
		t.Errorf("advice on a machine without an engine: %q", a)
	}

	// A socket file nobody answers on (a stopped engine leaves one).
	ln, err := net.Listen("unix", l.system)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	det = detect(t, "", l.env(nil))
	if det.Found != nil {
		t.Fatalf("found %+v on a dead socket", det.Found)
	}
	if a := det.Advice(); !strings.Contains(a, "nothing answers") || !strings.Contains(a, l.system) {
		t.Errorf("advice for a dead socket: %q", a)
	}
}

// The real engine of the test machine is found where it is.
func TestDetectRealEngine(t *testing.T) {
	if _, err := os.Stat(docker.SystemSocket); err != nil {
		t.Skip("no system engine socket")
	}
	det := docker.Detect(testctx.Context(t), "", docker.Env{Getenv: func(string) string { return "" }}, time.Minute)
	if det.Found == nil || det.Found.Version == "" || det.Found.APIVersion == "" {
		t.Fatalf("real engine: %+v (%s)", det.Found, det.Summary())
	}
}
