package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/server"
)

// parseServe runs `berth serve args...` up to the point where the server
// would start and returns its config.
func parseServe(t *testing.T, args ...string) (server.Config, error) {
	t.Helper()
	var got server.Config
	cmd := newServeWith(func(_ context.Context, cfg server.Config) error {
		got = cfg
		return nil
	})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return got, err
}

func TestServeHTTPFlags(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != server.Defaults().HTTP {
		t.Errorf("no flags: %+v, want the defaults %+v", cfg.HTTP, server.Defaults().HTTP)
	}

	t.Setenv("BERTH_HTTP_IDLE_TIMEOUT", "45s")
	t.Setenv("BERTH_HTTP_MAX_CONNS", "7")
	cfg, err = parseServe(t, "--http-read-header-timeout=3s", "--http-body-min-rate=2048", "--http-body-window=10s",
		"--http-write-stall=90s", "--http-max-conns=9")
	if err != nil {
		t.Fatal(err)
	}
	want := server.HTTPConfig{ReadHeaderTimeout: 3 * time.Second, IdleTimeout: 45 * time.Second, BodyMinRate: 2048,
		BodyWindow: 10 * time.Second, WriteStall: 90 * time.Second, MaxConns: 9} // the flag wins over its twin
	if cfg.HTTP != want {
		t.Errorf("flags and env: %+v, want %+v", cfg.HTTP, want)
	}

	t.Setenv("BERTH_HTTP_IDLE_TIMEOUT", "soon")
	if _, err := parseServe(t); err == nil || !strings.Contains(err.Error(), "BERTH_HTTP_IDLE_TIMEOUT") {
		t.Errorf("a bad BERTH_HTTP_IDLE_TIMEOUT: err %v, want one naming it", err)
	}
}

func TestServeSandboxLimitFlags(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sandbox.Limits != sandbox.HostLimits() {
		t.Errorf("no flags: %+v, want the host's %+v", cfg.Sandbox.Limits, sandbox.HostLimits())
	}

	t.Setenv("BERTH_SANDBOX_MAX_MEMORY", "2GiB")
	t.Setenv("BERTH_SANDBOX_MAX_PIDS", "300")
	cfg, err = parseServe(t, "--sandbox-default-vcpus=0.5", "--sandbox-max-vcpus=1.5", "--sandbox-default-memory=256MiB",
		"--sandbox-default-disk=1GB", "--sandbox-max-disk=20GB", "--sandbox-default-pids=128", "--sandbox-max-idle-timeout=2h")
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.Limits{DefaultVCPUs: 0.5, MaxVCPUs: 1.5, DefaultMemory: 256 << 20, MaxMemory: 2 << 30,
		DefaultDisk: 1e9, MaxDisk: 20e9, DefaultPids: 128, MaxPids: 300, MaxIdleTimeout: 2 * time.Hour}
	if cfg.Sandbox.Limits != want {
		t.Errorf("flags and env: %+v, want %+v", cfg.Sandbox.Limits, want)
	}

	// A ceiling alone lowers the default it is below.
	cfg, err = parseServe(t, "--sandbox-max-memory=512MiB", "--sandbox-max-vcpus=0.25")
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Sandbox.Limits; l.DefaultMemory != 512<<20 || l.DefaultVCPUs != 0.25 {
		t.Errorf("defaults under lowered ceilings: memory %d, vcpus %v", l.DefaultMemory, l.DefaultVCPUs)
	}

	for _, bad := range []string{"--sandbox-max-memory=lots", "--sandbox-default-disk=-1GB", "--sandbox-max-vcpus=many"} {
		if _, err := parseServe(t, bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestServeSessionTTLFlag(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SessionTTL != 12*time.Hour {
		t.Errorf("no flag: session TTL %v, want 12h", cfg.SessionTTL)
	}
	t.Setenv("BERTH_SESSION_TTL", "2h")
	if cfg, err = parseServe(t); err != nil || cfg.SessionTTL != 2*time.Hour {
		t.Errorf("BERTH_SESSION_TTL=2h: %v, %v", cfg.SessionTTL, err)
	}
	if cfg, err = parseServe(t, "--session-ttl=45m"); err != nil || cfg.SessionTTL != 45*time.Minute {
		t.Errorf("--session-ttl=45m: %v, %v", cfg.SessionTTL, err)
	}
}

// The engine address: the flag, else BERTH_DOCKER_HOST, else detection
// (an empty address: DOCKER_HOST, then the local sockets).
func TestServeDockerHostFlag(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil || cfg.DockerHost != "" {
		t.Errorf("no flag: docker host %q, %v; want empty (detected)", cfg.DockerHost, err)
	}
	t.Setenv("BERTH_DOCKER_HOST", "unix:///run/env.sock")
	if cfg, err = parseServe(t); err != nil || cfg.DockerHost != "unix:///run/env.sock" {
		t.Errorf("BERTH_DOCKER_HOST: %q, %v", cfg.DockerHost, err)
	}
	if cfg, err = parseServe(t, "--docker-host=tcp://127.0.0.1:2375"); err != nil || cfg.DockerHost != "tcp://127.0.0.1:2375" {
		t.Errorf("--docker-host: %q, %v", cfg.DockerHost, err)
	}
}
