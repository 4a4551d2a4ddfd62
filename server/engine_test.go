package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startLog starts a server on dockerHost and returns what it logged.
func startLog(t *testing.T, dockerHost string) string {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.DockerHost = dockerHost
	var buf syncBuffer
	s, err := server.New(testctx.Context(t), cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return buf.String()
}

// The start-up log says which engine berth uses, or that there is none and
// what sandboxes will do about it.
func TestServeLogsEngine(t *testing.T) {
	log := startLog(t, "")
	for _, want := range []string{`msg="container engine"`, "host=", "version=", "apiVersion=1."} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, log)
		}
	}

	log = startLog(t, "unix:///nonexistent/docker.sock")
	for _, want := range []string{"level=WARN", "no container engine answers", "sandboxes and agent runs fail", "/nonexistent/docker.sock", "fix="} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log without an engine lacks %q:\n%s", want, log)
		}
	}
}
