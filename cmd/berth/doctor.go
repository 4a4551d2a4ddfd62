package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/doctor"
	"github.com/berth-dev/berth/server"
)

// errChecksFailed makes `berth doctor` exit non-zero after printing its report.
var errChecksFailed = errors.New("checks failed")

func newDoctor() *cobra.Command {
	d := server.Defaults()
	cfg := doctor.Config{Addr: d.Addr, DataDir: d.DataDir, Storage: d.Storage, StoragePoolSize: d.StoragePoolSize}
	var output, only string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can run berth",
		Long: "Check what `berth serve` needs, with the same flags and BERTH_* variables: the container\n" +
			"engine (reachable, runs the base template, isolated network), storage (data directory\n" +
			"writable, free space, filesystem), the database (reachable, schema) and the listen address.\n" +
			"One line a check: ok, warn or FAIL with what to do. Exits 1 when a check fails.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o must be text or json, not %q", output)
			}
			var groups []string
			if only != "" {
				groups = strings.Split(only, ",")
			}
			r := doctor.Run(cmd.Context(), cfg, groups...)
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := r.Print(out); err != nil {
				return err
			}
			if !r.OK {
				return fmt.Errorf("%w: %d of %d", errChecksFailed, r.Failed(), len(r.Checks))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address to check")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory to check")
	f.StringVar(&cfg.Database, "database", "", "SQLite file or postgres:// DSN (default <data-dir>/berth.db)")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "engine address, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST, else the first local socket that answers)")
	f.StringVar(&cfg.Storage, "storage", cfg.Storage, "workspace storage driver to check: dir, btrfs or auto")
	f.Var((*byteSize)(&cfg.StoragePoolSize), "storage-pool-size", "size of a new btrfs pool file")
	f.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "how long each probe (engine, database, port) may take")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&only, "only", "", "comma-separated check groups: "+strings.Join(doctor.Groups, ","))
	return cmd
}
