package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/server"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "berth",
		Short:         "berth: sandboxes and durable workspaces for AI agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe())
	addClientCommands(root)
	addSandboxCommands(root)
	return root
}

func newServe() *cobra.Command {
	cfg := server.Defaults()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the berth API server",
		Long: "Run the berth API server. Every flag has an environment twin: --addr BERTH_ADDR,\n" +
			"--data-dir BERTH_DATA_DIR, --database BERTH_DATABASE, --log-format BERTH_LOG_FORMAT.\n" +
			"BERTH_BOOTSTRAP_KEY presets the admin key of a fresh database.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			cfg.BootstrapKey = os.Getenv("BERTH_BOOTSTRAP_KEY")
			log, err := server.NewLogger(cfg.LogFormat, os.Stderr)
			if err != nil {
				return err
			}
			s, err := server.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Serve(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (workspaces, SQLite database, admin.key)")
	f.StringVar(&cfg.Database, "database", "", "SQLite file or postgres:// DSN (default <data-dir>/berth.db)")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: text or json")
	f.IntVar(&cfg.MaxWatchesPerUser, "max-watches-per-user", cfg.MaxWatchesPerUser, "watch streams one user may hold at once (429 past it)")
	f.IntVar(&cfg.MaxWatchedWorkspacesPerOrg, "max-watched-workspaces-per-org", cfg.MaxWatchedWorkspacesPerOrg, "workspaces one organization's watch streams may keep open (429 past it)")
	f.IntVar(&cfg.MaxWatchedWorkspaces, "max-watched-workspaces", cfg.MaxWatchedWorkspaces, "workspaces all watch streams may keep open together (503 past it); keep it below 64, the inotify instances berth uses, so that other workspaces keep theirs")
	f.IntVar(&cfg.Archives.Max, "max-archives", 4, "directory downloads (zip, tar.gz) made at once, server-wide")
	f.DurationVar(&cfg.Archives.Wait, "archive-wait", 15*time.Second, "how long a directory download waits for a turn before 503 with Retry-After")
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
