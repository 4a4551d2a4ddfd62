package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/server"
)

func newServe() *cobra.Command { return newServeWith(serve) }

// serve runs the server with cfg until ctx ends.
func serve(ctx context.Context, cfg server.Config) error {
	log, err := server.NewLogger(cfg.LogFormat, os.Stderr)
	if err != nil {
		return err
	}
	s, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Serve(ctx)
}

// newServeWith is the serve command calling run with the parsed config.
func newServeWith(run func(context.Context, server.Config) error) *cobra.Command {
	cfg := server.Defaults()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the berth API server",
		Long: "Run the berth API server. Every flag has an environment twin: --addr BERTH_ADDR,\n" +
			"--data-dir BERTH_DATA_DIR, --http-idle-timeout BERTH_HTTP_IDLE_TIMEOUT, and so on.\n" +
			"BERTH_BOOTSTRAP_KEY presets the admin key of a fresh database.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			cfg.BootstrapKey = os.Getenv("BERTH_BOOTSTRAP_KEY")
			lowerDefaults(cmd.Flags(), &cfg.Sandbox.Limits)
			return run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (workspaces, SQLite database, admin.key)")
	f.StringVar(&cfg.Database, "database", "", "SQLite file or postgres:// DSN (default <data-dir>/berth.db)")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	f.StringVar(&cfg.DockerHost, "docker-host", cfg.DockerHost, "container engine address, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST, else the first local socket that answers)")
	f.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "container engine: docker or containerd")
	f.StringVar(&cfg.ContainerdAddress, "containerd-address", cfg.ContainerdAddress, "containerd socket (with --runtime containerd)")
	f.StringVar(&cfg.ContainerdNamespace, "containerd-namespace", cfg.ContainerdNamespace, "containerd namespace of berth's containers and images (with --runtime containerd)")
	f.StringVar(&cfg.Supervisor, "supervisor", "auto", "in-sandbox supervisor (fast exec, terminals): auto (berth-supervisor next to this executable, else built from source with the Go toolchain), off (engine init and exec), or the path of a static berth-supervisor binary")
	f.IntVar(&cfg.MaxWatchesPerUser, "max-watches-per-user", cfg.MaxWatchesPerUser, "watch streams one user may hold at once (429 past it)")
	f.IntVar(&cfg.MaxWatchedWorkspacesPerOrg, "max-watched-workspaces-per-org", cfg.MaxWatchedWorkspacesPerOrg, "workspaces one organization's watch streams may keep open (429 past it)")
	f.IntVar(&cfg.MaxWatchedWorkspaces, "max-watched-workspaces", cfg.MaxWatchedWorkspaces, "workspaces all watch streams may keep open together (503 past it); keep it below 64, the inotify instances berth uses, so that other workspaces keep theirs")
	f.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "how long a dashboard sign-in lasts (at least 1m; never longer than the key signed in with)")
	f.StringVar(&cfg.Storage, "storage", cfg.Storage, "workspace storage driver: dir (quota on API writes), btrfs (one subvolume per workspace: kernel-enforced quotas, snapshots, clones) or auto (btrfs when the data directory is on btrfs or holds a pool file, else dir)")
	f.Var((*byteSize)(&cfg.StoragePoolSize), "storage-pool-size", "size of the sparse btrfs pool file made under a data directory that is not on btrfs (--storage btrfs; an existing pool keeps its size)")
	f.BoolVar(&cfg.Replicas, "replicas", false, "share the PostgreSQL database with other servers started with --replicas (each with its own --data-dir, all with the same --workspaces-dir); without it a server refuses to share its database")
	f.StringVar(&cfg.WorkspacesDir, "workspaces-dir", "", "directory holding the workspaces (default <data-dir>/workspaces); with --replicas, a directory shared by every replica at the same path")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", server.DefaultLeaseTTL, "with --replicas: how long a replica's leases (sandbox operations, leader) outlive it; another replica takes over this long after one dies (at least 3s)")
	f.DurationVar(&cfg.Sandbox.ReconcileInterval, "reconcile-interval", 10*time.Second, "how often the database is reconciled with the container engine (by the leader, with --replicas)")
	f.IntVar(&cfg.Archives.Max, "max-archives", 4, "directory downloads (zip, tar.gz) made at once, server-wide")
	f.DurationVar(&cfg.Archives.Wait, "archive-wait", 15*time.Second, "how long a directory download waits for a turn before 503 with Retry-After")
	l := &cfg.Sandbox.Limits
	f.Float64Var(&l.DefaultVCPUs, "sandbox-default-vcpus", l.DefaultVCPUs, "vCPUs of a sandbox whose request and template name none")
	f.Float64Var(&l.MaxVCPUs, "sandbox-max-vcpus", l.MaxVCPUs, "most vCPUs a sandbox may have; by default this host's CPUs")
	f.Var((*byteSize)(&l.DefaultMemory), "sandbox-default-memory", "memory of a sandbox whose request and template name none")
	f.Var((*byteSize)(&l.MaxMemory), "sandbox-max-memory", "most memory a sandbox may have; by default this host's RAM")
	f.Var((*byteSize)(&l.DefaultDisk), "sandbox-default-disk", "disk of a sandbox whose request and template name none (applied only where the engine can enforce it: overlay2 on xfs with pquota, btrfs, zfs, devicemapper)")
	f.Var((*byteSize)(&l.MaxDisk), "sandbox-max-disk", "most disk a sandbox may ask for; by default the size of this host's root filesystem")
	f.Int64Var(&l.DefaultPids, "sandbox-default-pids", l.DefaultPids, "process limit of a sandbox whose request and template name none")
	f.Int64Var(&l.MaxPids, "sandbox-max-pids", l.MaxPids, "highest process limit a sandbox may have")
	f.DurationVar(&l.MaxIdleTimeout, "sandbox-max-idle-timeout", l.MaxIdleTimeout, "longest idleTimeout a sandbox may have (0, never pause, is always allowed)")
	h := &cfg.HTTP
	f.DurationVar(&h.ReadHeaderTimeout, "http-read-header-timeout", h.ReadHeaderTimeout, "time a client has to send a request's headers (0: no limit)")
	f.DurationVar(&h.IdleTimeout, "http-idle-timeout", h.IdleTimeout, "close keep-alive connections idle this long (0: never)")
	f.Int64Var(&h.BodyMinRate, "http-body-min-rate", h.BodyMinRate, "minimum request body rate in bytes/s, over --http-body-window")
	f.DurationVar(&h.BodyWindow, "http-body-window", h.BodyWindow, "a request body must be complete, or deliver --http-body-min-rate × this, within every such period (0: no limit)")
	f.DurationVar(&h.WriteStall, "http-write-stall", h.WriteStall, "drop a response the client has read nothing of for this long; streams that make progress are not limited (0: no limit)")
	f.IntVar(&h.MaxConns, "http-max-conns", h.MaxConns, "concurrent connections; more wait to be accepted (0: no limit)")
	return cmd
}

// applyEnv sets every flag not given on the command line from its BERTH_*
// twin (--data-dir ← BERTH_DATA_DIR). A value the flag rejects is an error,
// not silently the default.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// lowerDefaults brings each resource default that was not set down to a
// ceiling that was set below it (--sandbox-max-memory 512MiB alone is
// enough); defaults set explicitly are checked, not changed.
func lowerDefaults(fs *pflag.FlagSet, l *sandbox.Limits) {
	if !fs.Changed("sandbox-default-vcpus") {
		l.DefaultVCPUs = min(l.DefaultVCPUs, l.MaxVCPUs)
	}
	if !fs.Changed("sandbox-default-memory") {
		l.DefaultMemory = min(l.DefaultMemory, l.MaxMemory)
	}
	if !fs.Changed("sandbox-default-disk") {
		l.DefaultDisk = min(l.DefaultDisk, l.MaxDisk)
	}
	if !fs.Changed("sandbox-default-pids") {
		l.DefaultPids = min(l.DefaultPids, l.MaxPids)
	}
}

// byteSize is a flag holding a number of bytes, written "512MiB", "2GB"
// or "1073741824".
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return err
	}
	if n > math.MaxInt64 {
		return fmt.Errorf("%s is too large", s)
	}
	*b = byteSize(n)
	return nil
}

func envName(flag string) string {
	b := []byte("BERTH_")
	for _, c := range []byte(flag) {
		switch {
		case c == '-':
			b = append(b, '_')
		case c >= 'a' && c <= 'z':
			b = append(b, c-'a'+'A')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
