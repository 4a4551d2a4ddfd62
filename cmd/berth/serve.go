package main

import (
	"errors"
	"fmt"
	"os"

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
	return cmd
}

// applyEnv sets every flag not given on the command line from its BERTH_*
// twin (--data-dir ← BERTH_DATA_DIR). A value the flag refuses is an
// error naming the variable, not a silently kept default.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
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
