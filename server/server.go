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
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/supervisor"
	"github.com/berth-dev/berth/workspace"
	"github.com/berth-dev/berth/workspace/files"
	"github.com/berth-dev/berth/workspace/storage"
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

	// Runtime is the container engine: RuntimeDocker ("" too) or
	// RuntimeContainerd, at ContainerdAddress in ContainerdNamespace ("" =
	// the containerd package's defaults).
	Runtime             string
	ContainerdAddress   string
	ContainerdNamespace string
	// Supervisor is the in-sandbox supervisor (fast exec, terminals):
	// "auto" (or "") finds or builds it (supervisor.Install) and runs
	// without it, logged, when it cannot; "off" runs sandboxes under the
	// engine's init; anything else is the path of the static binary.
	Supervisor string
	// Replicas lets several servers share one PostgreSQL database (each
	// with a data directory of its own, all with the same WorkspacesDir):
	// sandbox operations take leases in the database, and one leader runs
	// the singleton loops. A server without it refuses to share.
	Replicas bool
	// WorkspacesDir holds the workspaces instead of <DataDir>/workspaces;
	// required with Replicas, where it must be the same shared directory
	// (same path) on every replica.
	WorkspacesDir string
	// LeaseTTL is how long a replica's leases outlive its last renewal
	// (default DefaultLeaseTTL): how long the others wait before taking
	// over from one that died.
	LeaseTTL time.Duration

	// Watch stream limits: streams one user may hold at once and
	// workspaces one organization's streams may keep open (429 past them),
	// and workspaces all streams may keep open together (503), below the
	// process-wide inotify budget. Zero means the default.
	MaxWatchesPerUser          int
	MaxWatchedWorkspacesPerOrg int
	MaxWatchedWorkspaces       int

	Sandbox sandbox.Options // background loop intervals, resource defaults and ceilings

	Archives workspace.ArchiveLimits // concurrent directory downloads

	// Storage is the workspace storage driver: "dir", "btrfs" or "auto"
	// (btrfs when the data directory is on btrfs or already holds a pool
	// file, else dir). StoragePoolSize is the size of the sparse pool file
	// btrfs makes under a data directory that is not on btrfs.
	Storage         string
	StoragePoolSize int64

	// SessionTTL is how long a dashboard sign-in lasts (at least a minute;
	// never longer than its key).
	SessionTTL time.Duration

	HTTP HTTPConfig
}

// HTTPConfig bounds what one client can hold of the HTTP server. Zero
// disables a limit.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds the time to send a request's headers.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// BodyMinRate (bytes/s) over BodyWindow: a request body must deliver
	// BodyMinRate×BodyWindow bytes in every BodyWindow (or be complete
	// within it). A large upload at any useful speed is never cut.
	BodyMinRate int64
	BodyWindow  time.Duration
	// WriteStall fails a response write that cannot hand anything to the
	// client for this long; streams that make progress live on.
	WriteStall time.Duration
	// MaxConns caps concurrent connections; more wait to be accepted.
	MaxConns int
}

// Defaults returns the documented defaults.
// Container engines of Config.Runtime.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
)

func Defaults() Config {
	return Config{Addr: "127.0.0.1:8080", DataDir: "./berth-data", LogFormat: "text",
		Runtime: RuntimeDocker, ContainerdAddress: containerd.DefaultAddress, ContainerdNamespace: containerd.DefaultNamespace,
		MaxWatchesPerUser: workspace.DefaultWatchesPerUser, MaxWatchedWorkspacesPerOrg: workspace.DefaultWatchedWorkspacesPerOrg,
		MaxWatchedWorkspaces: workspace.DefaultWatchedWorkspaces,
		SessionTTL:           auth.DefaultSessionTTL,
		Storage:              storage.ChoiceAuto, StoragePoolSize: storage.DefaultPoolSize,
		Sandbox: sandbox.Options{Limits: sandbox.HostLimits()},
		HTTP: HTTPConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			BodyMinRate: 1024, BodyWindow: 30 * time.Second, WriteStall: time.Minute, MaxConns: 1024}}
}

func (h HTTPConfig) validate() error {
	if h.ReadHeaderTimeout < 0 || h.IdleTimeout < 0 || h.BodyWindow < 0 || h.WriteStall < 0 {
		return errors.New("HTTP timeouts must not be negative (0 disables one)")
	}
	if h.BodyMinRate < 0 || h.MaxConns < 0 {
		return errors.New("--http-body-min-rate and --http-max-conns must not be negative (0 disables one)")
	}
	return nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	dbv := c.Database
	if db.IsPostgres(dbv) {
		dbv = maskDSN(dbv)
	}
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("dataDir", c.DataDir),
		slog.String("database", dbv), slog.String("logFormat", c.LogFormat), slog.String("supervisor", c.Supervisor),
		slog.Bool("bootstrapKeySet", c.BootstrapKey != ""),
		slog.Int("maxWatchesPerUser", c.MaxWatchesPerUser), slog.Int("maxWatchedWorkspacesPerOrg", c.MaxWatchedWorkspacesPerOrg),
		slog.Int("maxWatchedWorkspaces", c.MaxWatchedWorkspaces), slog.Duration("sessionTTL", c.SessionTTL),
		slog.Any("http", c.HTTP), slog.Any("sandboxLimits", c.Sandbox.Limits),
		slog.String("storage", c.Storage), slog.Int64("storagePoolSize", c.StoragePoolSize),
		slog.Bool("replicas", c.Replicas), slog.String("workspacesDir", c.WorkspacesDir), slog.Duration("leaseTTL", c.LeaseTTL))
}

// Server is a running berth.
type Server struct {
	Config    Config
	DB        *db.DB
	API       *api.Server
	Sandboxes *sandbox.Manager
	Agents    *agent.Service
	Log       *slog.Logger
	// Storage is the workspace storage driver in use, and why it was chosen.
	Storage     storage.Driver
	StoragePlan storage.Plan
	// Instance is this process's instance id, random at every start (the
	// holder of its leases with --replicas; /healthz shows it).
	Instance string
	elector  *elector // replicas
	listener net.Listener
	http     *http.Server
	dbLock   *db.Lock
	closers  []func()
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
	// Before anything is written: a server that cannot start makes no
	// data directory and mints no key.
	if err := cfg.HTTP.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Sandbox.Limits.Validate(); err != nil {
		return nil, err
	}
	// Workspace directories are bind-mounted into containers, and the engine
	// takes only absolute host paths: a relative --data-dir is resolved now.
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	cfg.DataDir = abs
	if cfg.Database == "" {
		cfg.Database = filepath.Join(cfg.DataDir, "berth.db")
	}
	if cfg.Replicas {
		if !db.IsPostgres(cfg.Database) {
			return nil, errors.New("--replicas needs PostgreSQL (--database postgres://...): a SQLite database serves one server only")
		}
		if cfg.WorkspacesDir == "" {
			return nil, errors.New("--replicas needs --workspaces-dir: the directory, shared by every replica at the same path, that holds the workspaces")
		}
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < 3*time.Second {
		return nil, fmt.Errorf("--lease-ttl must be at least 3s, not %v", cfg.LeaseTTL)
	}
	wsDir := filepath.Join(cfg.DataDir, "workspaces")
	if cfg.WorkspacesDir != "" {
		if wsDir, err = filepath.Abs(cfg.WorkspacesDir); err != nil {
			return nil, fmt.Errorf("workspaces directory: %w", err)
		}
		cfg.WorkspacesDir = wsDir
	}
	// Lines that services log with a request's context carry its id.
	log = slog.New(berth.RequestIDHandler(log.Handler()))
	if err := privateDirs(cfg.DataDir, wsDir); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if cfg.MaxWatchesPerUser < 0 || cfg.MaxWatchedWorkspacesPerOrg < 0 || cfg.MaxWatchedWorkspaces < 0 {
		return nil, errors.New("--max-watches-per-user, --max-watched-workspaces-per-org and --max-watched-workspaces must not be negative (0: the default)")
	}
	if cfg.SessionTTL < time.Minute {
		return nil, fmt.Errorf("--session-ttl must be at least 1m, not %v", cfg.SessionTTL)
	}
	if cfg.BootstrapKey != "" {
		if err := auth.ValidBootstrapKey(cfg.BootstrapKey); err != nil {
			return nil, err
		}
	}
	// One server per data directory and per database: two would remove
	// each other's containers, fail each other's runs and sweep each
	// other's uploads. Both locks die with the process.
	host, err := os.Hostname()
	if err != nil {
		host = "" // the holder is still named by pid and time
	}
	self := db.Holder{Host: host, PID: os.Getpid(), Since: time.Now().UTC().Truncate(time.Second)}
	s := &Server{Config: cfg, Log: log, Instance: db.NewID("srv")}
	log.Info("berth starting", "instance", s.Instance, "replicas", cfg.Replicas)
	dirLock, err := db.LockFile(filepath.Join(cfg.DataDir, "server.lock"), "data directory "+cfg.DataDir, self)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.logClose("data directory lock", dirLock.Close()) })
	// Under the data directory's lock: one server mounts its pool.
	drv, plan, err := storage.Open(ctx, storage.Config{Driver: cfg.Storage, DataDir: cfg.DataDir, PoolSize: cfg.StoragePoolSize,
		WorkspacesDir: cfg.WorkspacesDir})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Storage, s.StoragePlan = drv, plan
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.logClose("workspace storage", drv.Close(ctx))
	})
	// A freshly mounted pool's root is the filesystem's (0755).
	if err := privateDirs(plan.Root); err != nil {
		s.Close()
		return nil, fmt.Errorf("workspace storage: %w", err)
	}
	log.Info("workspace storage", "driver", drv.Name(), "why", plan.Why, "root", plan.Root,
		"poolFile", plan.PoolFile, "poolSize", plan.PoolSize, "caps", drv.Caps())
	d, err := db.Connect(ctx, cfg.Database)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.DB = d
	s.closers = append(s.closers, func() { s.logClose("database", d.Close()) })
	dbLock, err := d.LockServer(ctx, self, cfg.Replicas)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.dbLock = dbLock
	s.closers = append(s.closers, func() { s.logClose("database lock", dbLock.Close()) })
	// Only the holder changes the schema; replicas starting together
	// take turns to migrate and bootstrap.
	access := &berth.AccessFeed{}
	authSvc := auth.New(d, access, log)
	if err := d.Exclusive(ctx, func() error {
		if err := d.Migrate(ctx); err != nil {
			return err
		}
		return s.bootstrap(ctx, authSvc)
	}); err != nil {
		s.Close()
		return nil, err
	}
	var leases *db.Leases
	var leader func() bool
	if cfg.Replicas {
		leases = d.NewLeases(s.Instance, cfg.LeaseTTL)
		e, err := newElector(ctx, leases, log)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("replica leases: %w", err)
		}
		s.elector = e
		leader = e.Leader
		s.closers = append(s.closers, func() { s.logClose("replica leases", e.Close()) })
		cfg.Sandbox.Leases, cfg.Sandbox.Leader = leases, leader
	}

	// Access changes (grants, roles, removals) reach the sandbox manager
	// through one feed (access, above), subscribed below before anything
	// is served.
	ws := workspace.New(d, cfg.DataDir, access, log)
	ws.SetStorage(drv)
	s.API = api.New(log, authSvc, ws)
	s.API.SessionTTL = cfg.SessionTTL
	s.API.Instance, s.API.Leader = s.Instance, leader
	s.API.Checks["database"] = func(ctx context.Context) error {
		return berth.Wrap(berth.Unavailable, d.PingContext(ctx), "database unreachable")
	}

	// The engine may be down: the client connects lazily, the server still
	// serves workspaces, and /readyz says the runtime is down. Which engine
	// it is (the one given, DOCKER_HOST, or the first local socket that
	// answers: rootless, Docker Desktop, system) is logged either way.
	rt, err := s.newRuntime(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	cfg.Sandbox.Supervisor = s.supervisor(ctx)
	mgr, err := sandbox.New(ctx, d, rt, ws, log, cfg.Sandbox)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Sandboxes = mgr
	ws.SetRestarter(mgr)
	access.Subscribe(mgr.AccessLost)
	s.API.Sandboxes = mgr
	// File API access in a workspace is activity of the sandboxes mounting it.
	fopts := files.Options{}
	if cfg.Replicas {
		// Another replica's upload in flight is a temporary entry this one
		// does not know: only leftovers a day old are swept.
		fopts.SweepMinAge = 24 * time.Hour
	}
	wf := workspace.NewFiles(ws, workspace.FilesOptions{Logger: log, OnAccess: mgr.TouchWorkspace, Archives: cfg.Archives, Open: fopts,
		WatchesPerUser: cfg.MaxWatchesPerUser, WatchedWorkspacesPerOrg: cfg.MaxWatchedWorkspacesPerOrg, WatchedWorkspaces: cfg.MaxWatchedWorkspaces})
	s.closers = append(s.closers, func() { s.logClose("workspace files", wf.Close()) })
	s.API.Files = wf
	s.API.Checks["runtime"] = rt.Ping
	// Runs a previous process left in flight are marked interrupted here.
	agents, err := agent.New(ctx, d, mgr, ws, log, agent.Options{Leases: leases, Leader: leader, RecoverInterval: cfg.Sandbox.ReconcileInterval})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.closers = append(s.closers, agents.Close)
	s.Agents = agents
	s.API.Agents = agents
	return s, nil
}

// engineRuntime is a runtime.Runtime the server closes when it ends.
type engineRuntime interface {
	runtime.Runtime
	Close() error
}

// newRuntime makes the runtime Config.Runtime names. It does not need the
// engine to answer.
func (s *Server) newRuntime(ctx context.Context) (runtime.Runtime, error) {
	var rt engineRuntime
	switch s.Config.Runtime {
	case "", RuntimeDocker:
		d, err := docker.New(s.engineHost(ctx))
		if err != nil {
			return nil, fmt.Errorf("docker runtime: %w", err)
		}
		rt = d
	case RuntimeContainerd:
		c, err := containerd.New(s.Config.ContainerdAddress, s.Config.ContainerdNamespace)
		if err != nil {
			return nil, fmt.Errorf("containerd runtime: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := c.Ping(pctx); err != nil {
			s.Log.Warn("containerd does not answer: sandboxes and agent runs fail until it does",
				"address", c.Address(), "err", err)
		} else {
			s.Log.Info("container engine", "runtime", RuntimeContainerd, "address", c.Address(), "namespace", c.Namespace())
		}
		rt = c
	default:
		return nil, berth.Errorf(berth.Invalid, "unknown runtime %q (want %q or %q)", s.Config.Runtime, RuntimeDocker, RuntimeContainerd)
	}
	s.closers = append(s.closers, func() { s.logClose(s.Config.Runtime+" client", rt.Close()) })
	return rt, nil
}

// supervisor installs the sandbox supervisor into the data directory and
// returns its path; "" (sandboxes under the engine's init, exec through the
// engine) when it is off or cannot be had with "auto".
func (s *Server) supervisor(ctx context.Context) string {
	mode := s.Config.Supervisor
	if mode == "off" {
		return ""
	}
	bin := ""
	if mode != "" && mode != "auto" {
		bin = mode
	}
	path, err := supervisor.Install(ctx, filepath.Join(s.Config.DataDir, "supervisor"), bin)
	if err != nil {
		s.Log.Warn("no sandbox supervisor: new sandboxes run under the engine's init, and exec and terminals go through the engine", "err", err)
		return ""
	}
	s.Log.Info("sandbox supervisor", "binary", path)
	return path
}

// engineHost finds the container engine and says in the log which one it
// is, or that sandboxes will fail until one answers.
func (s *Server) engineHost(ctx context.Context) string {
	det := docker.Detect(ctx, s.Config.DockerHost, docker.ProcessEnv(), 5*time.Second)
	e := det.Found
	if e == nil {
		s.Log.Warn("no container engine answers: sandboxes and agent runs fail until one does (berth doctor says more)",
			"tried", det.Summary(), "fix", det.Advice())
		return s.Config.DockerHost
	}
	s.Log.Info("container engine", "host", e.Host, "found", e.Source, "version", e.Version, "apiVersion", e.APIVersion)
	return e.Host
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
	if s.Config.HTTP.MaxConns > 0 {
		l = newLimitListener(l, s.Config.HTTP.MaxConns)
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
	h := s.Config.HTTP
	// No ReadTimeout or WriteTimeout: they bound whole requests and
	// responses, and would cut long uploads, downloads and streams.
	// Deadlines enforce a minimum of progress instead.
	s.http = &http.Server{
		Handler:           api.Deadlines{BodyMinRate: h.BodyMinRate, BodyWindow: h.BodyWindow, WriteStall: h.WriteStall}.Wrap(s.API.Handler()),
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		IdleTimeout:       h.IdleTimeout,
	}
	// Interrupt runs in flight, so that their streams end and Shutdown need not wait.
	s.http.RegisterOnShutdown(s.Agents.Close)
	s.http.RegisterOnShutdown(s.API.Files.Shutdown) // end watch streams
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.listener) }()
	s.Log.Info("berth serving", "url", s.URL(), "config", s.Config)
	var lost error
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-s.dbLock.Lost():
		lost = fmt.Errorf("lost the database lock: %w", s.dbLock.Err())
		s.Log.Error("stopping: another server took the database", "err", lost)
	}
	s.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	if err != nil {
		s.Log.Warn("shutdown", "err", err)
	}
	return lost
}

// Close releases everything New opened.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// logClose logs a failure to release what; Close has no caller to return it to.
func (s *Server) logClose(what string, err error) {
	if err != nil {
		s.Log.Warn("close "+what, "err", err)
	}
}

func maskDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparseable)"
	}
	return u.Redacted()
}
