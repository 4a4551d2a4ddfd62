package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Engine detection.
//
// berth talks to one engine. When it is not told which (no --docker-host,
// no DOCKER_HOST), it looks where the usual installations put their socket:
// rootless Docker under $XDG_RUNTIME_DIR, Docker Desktop under the user's
// home, and the system engine's /var/run/docker.sock, and takes the first
// that answers. The server logs what it found; `berth doctor` prints it.

// Candidate is an engine address to try and why it is tried.
type Candidate struct {
	Host   string `json:"host"`   // unix:///path or tcp://host:port
	Source string `json:"source"` // "--docker-host", "DOCKER_HOST", "rootless Docker", ...
}

// Attempt is a candidate tried and what went wrong; Err is nil for the one
// that answered.
type Attempt struct {
	Candidate
	Err error `json:"-"`
}

// EngineInfo describes an engine that answered.
type EngineInfo struct {
	Candidate
	Version    string `json:"version"`    // the engine's version, e.g. "20.10.24+dfsg1"
	APIVersion string `json:"apiVersion"` // the highest API version it speaks
	Platform   string `json:"platform,omitempty"`
}

// Detection is the outcome of Detect: the engine found (nil when none
// answered) and every candidate tried, in order.
type Detection struct {
	Found *EngineInfo
	Tried []Attempt
}

// Env is what detection reads of the process environment; tests give
// their own.
type Env struct {
	Getenv func(string) string
	Home   string
}

// ProcessEnv is the environment of this process.
func ProcessEnv() Env {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "" // no home: no Docker Desktop socket to look for
	}
	return Env{Getenv: os.Getenv, Home: home}
}

// SystemSocket is the system engine's socket, the client's default.
var SystemSocket = "/var/run/docker.sock"

// Candidates lists the addresses Detect tries, in order. An explicit host
// (--docker-host) or DOCKER_HOST is the only candidate: the user chose it,
// and silently using another engine would hide their mistake.
func Candidates(explicit string, env Env) []Candidate {
	if explicit != "" {
		return []Candidate{{Host: explicit, Source: "--docker-host"}}
	}
	if h := env.Getenv("DOCKER_HOST"); h != "" {
		return []Candidate{{Host: h, Source: "DOCKER_HOST"}}
	}
	var out []Candidate
	if d := env.Getenv("XDG_RUNTIME_DIR"); d != "" {
		out = append(out, Candidate{Host: "unix://" + filepath.Join(d, "docker.sock"), Source: "rootless Docker ($XDG_RUNTIME_DIR/docker.sock)"})
	}
	if env.Home != "" {
		out = append(out, Candidate{Host: "unix://" + filepath.Join(env.Home, ".docker", "run", "docker.sock"), Source: "Docker Desktop (~/.docker/run/docker.sock)"})
	}
	return append(out, Candidate{Host: "unix://" + SystemSocket, Source: "system engine (" + SystemSocket + ")"})
}

// errNoSocket marks a unix socket candidate whose file does not exist.
var errNoSocket = errors.New("no socket there")

// Detect tries the candidates in order, each for at most perTry, and
// returns the first engine that answers.
func Detect(ctx context.Context, explicit string, env Env, perTry time.Duration) Detection {
	var det Detection
	for _, c := range Candidates(explicit, env) {
		if path, ok := strings.CutPrefix(c.Host, "unix://"); ok {
			if _, err := os.Stat(path); err != nil {
				det.Tried = append(det.Tried, Attempt{Candidate: c, Err: errNoSocket})
				continue
			}
		}
		tctx, cancel := context.WithTimeout(ctx, perTry)
		info, err := Probe(tctx, c.Host)
		cancel()
		det.Tried = append(det.Tried, Attempt{Candidate: c, Err: err})
		if err == nil {
			info.Candidate = c
			det.Found = &info
			return det
		}
	}
	return det
}

// Probe asks the engine at host for its version. TLS settings come from
// the environment (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) as for every client.
func Probe(ctx context.Context, host string) (EngineInfo, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return EngineInfo{}, fmt.Errorf("bad engine address %q: %w", host, err)
	}
	defer func() { _ = cli.Close() }() // idle connections only
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return EngineInfo{}, err
	}
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return EngineInfo{}, err
	}
	return EngineInfo{Candidate: Candidate{Host: host}, Version: v.Version, APIVersion: v.APIVersion, Platform: v.Platform.Name}, nil
}

// Summary says in one line what was tried and why each failed.
func (d Detection) Summary() string {
	parts := make([]string, 0, len(d.Tried))
	for _, a := range d.Tried {
		if a.Err == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s: %v", a.Source, a.Host, a.Err))
	}
	return strings.Join(parts, "; ")
}

// Advice says how to get an engine, given what was tried.
func (d Detection) Advice() string {
	for _, a := range d.Tried {
		if a.Source == "--docker-host" || a.Source == "DOCKER_HOST" {
			return "start the engine at " + a.Host + ", or unset " + a.Source + " to use a local one"
		}
		if a.Err != nil && !errors.Is(a.Err, errNoSocket) {
			if errors.Is(a.Err, os.ErrPermission) || strings.Contains(a.Err.Error(), "permission denied") {
				return "a socket exists at " + a.Host + " but this user may not use it: run as root, or add the user to the docker group (usermod -aG docker $USER, then log in again)"
			}
			return "a socket exists at " + a.Host + " but nothing answers: start the engine (systemctl start docker, or as root on Debian: bash .ci/docker-up)"
		}
	}
	return "install and start Docker: as root on Debian run `make run` or `bash .ci/docker-up` (installs docker.io and starts dockerd); " +
		"elsewhere start Docker Desktop, rootless Docker (systemctl --user start docker) or the system engine, or set DOCKER_HOST"
}
