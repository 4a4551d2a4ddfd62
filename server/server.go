// Package server wires berth's parts into a running process: configuration,
// database, bootstrap, services and the HTTP server. cmd/berth calls it; the
// end-to-end tests start it in-process the same way.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/agent"
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/workspace"
)

// Config is the server's configuration; every field has a flag and a
// BERTH_* environment twin in cmd/berth.
type Config struct {
	Addr         string // listen address
	DataDir      string // workspaces, SQLite file, admin.key
	Database     string // SQLite path or postgres:// DSN; default <DataDir>/berth.db
	LogFormat    string // text or json
	BootstrapKey string // preset admin key for a fresh database (secret)
	DockerHost   string // Docker engine address; "" = DOCKER_HOST or the local socket

	Sandbox sandbox.Options // background loop intervals
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{Addr: "127.0.0.1:8080", DataDir: "./berth-data", LogFormat: "text"}
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	dbv := c.Database
	if db.IsPostgres(dbv) {
		dbv = maskDSN(dbv)
	}
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("dataDir", c.DataDir),
		slog.String("database", dbv), slog.String("logFormat", c.LogFormat),
		slog.Bool("bootstrapKeySet", c.BootstrapKey != ""))
}

// Server is a running berth.
type Server struct {
	Config    Config
	DB        *db.DB
	API       *api.Server
	Sandboxes *sandbox.Manager
	Agents    *agent.Service
	Log       *slog.Logger
	listener  net.Listener
	http      *http.Server
	closers   []func()
}

// NewLogger builds the process logger for format "text" or "json".
func NewLogger(format string, w *os.File) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// New opens the database, migrates, bootstraps and builds the services. It
// does not listen yet.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	// Workspace directories are bind-mounted into containers, and the engine
	// takes only absolute host paths: a relative --data-dir is resolved now.
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	cfg.DataDir = abs
	// Lines that services log with a request's context carry its id.
	log = slog.New(berth.RequestIDHandler(log.Handler()))
	if err := privateDirs(cfg.DataDir, filepath.Join(cfg.DataDir, "workspaces")); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if cfg.Database == "" {
		cfg.Database = filepath.Join(cfg.DataDir, "berth.db")
	}
	if cfg.BootstrapKey != "" {
		if err := auth.ValidBootstrapKey(cfg.BootstrapKey); err != nil {
			return nil, err
		}
	}
	d, err := db.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	s := &Server{Config: cfg, DB: d, Log: log}
	s.closers = append(s.closers, func() { d.Close() })

	authSvc := auth.New(d)
	if err := s.bootstrap(ctx, authSvc); err != nil {
		s.Close()
		return nil, err
	}
	ws := workspace.New(d, cfg.DataDir)
	s.API = api.New(log, authSvc, ws)
	s.API.Checks["database"] = func(ctx context.Context) error {
		return berth.Wrap(berth.Unavailable, d.PingContext(ctx), "database unreachable")
	}

	// The engine may be down: the client connects lazily, the server still
	// serves workspaces, and /readyz says the runtime is down.
	rt, err := docker.New(cfg.DockerHost)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("docker runtime: %w", err)
	}
	s.closers = append(s.closers, func() { rt.Close() })
	mgr, err := sandbox.New(ctx, d, rt, ws, log, cfg.Sandbox)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Sandboxes = mgr
	s.API.Sandboxes = mgr
	// File API access in a workspace is activity of the sandboxes mounting it.
	wf := workspace.NewFiles(ws, workspace.FilesOptions{Logger: log, OnAccess: mgr.TouchWorkspace})
	s.closers = append(s.closers, func() { wf.Close() })
	s.API.Files = wf
	s.API.Checks["runtime"] = rt.Ping
	// Runs a previous process left in flight are marked interrupted here.
	agents, err := agent.New(ctx, d, mgr, ws, log)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.closers = append(s.closers, agents.Close)
	s.Agents = agents
	s.API.Agents = agents
	return s, nil
}

// privateDirs creates dirs (in order) and takes away every group and other
// permission from them. The data directory holds the SQLite database (agent
// env values, run output) and the workspaces, in which root inside a sandbox
// can leave set-uid-root binaries and world-writable files: no other host user
// may enter it. The engine bind-mounts workspaces as root, so sandboxes are
// not affected.
func privateDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(d, perm&^0o077); err != nil {
				return err
			}
		}
	}
	return nil
}

// bootstrap creates org, admin and key on an empty database and writes the
// key to <data-dir>/admin.key (0600). It runs once per database: later
// starts find the org and mint nothing.
func (s *Server) bootstrap(ctx context.Context, a *auth.Service) error {
	key, created, err := a.Bootstrap(ctx, s.Config.BootstrapKey)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		return nil
	}
	path := filepath.Join(s.Config.DataDir, "admin.key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// WriteFile keeps the mode of an existing file; make sure it is 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	s.Log.Info("bootstrapped organization \"default\" with admin user \"admin\"; the admin API key is shown once here and kept in the key file",
		"keyFile", path, "key", key)
	return nil
}

// Listen binds the configured address (":0" picks a free port).
func (s *Server) Listen() error {
	l, err := net.Listen("tcp", s.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Config.Addr, err)
	}
	s.listener = l
	return nil
}

// URL is the base URL the server listens on.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// Serve answers requests until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	if s.listener == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.Sandboxes.Run(ctx)
	s.closers = append(s.closers, s.Sandboxes.Close)
	s.http = &http.Server{Handler: s.API.Handler(), ReadHeaderTimeout: 10 * time.Second}
	// Interrupt runs in flight, so that their streams end and Shutdown need not wait.
	s.http.RegisterOnShutdown(s.Agents.Close)
	s.http.RegisterOnShutdown(s.API.Files.Shutdown) // end watch streams
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	s.Log.Info("berth serving", "url", s.URL(), "config", s.Config)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.http.Close()
	}
	return nil
}

// Close releases everything New opened.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func maskDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparseable)"
	}
	return u.Redacted()
}
