package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

func TestBootstrapOnceAndKeyFile(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	env := servertest.StartConfig(t, cfg)
	keyFile := filepath.Join(cfg.DataDir, "admin.key")
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.key mode %v, want 0600", fi.Mode().Perm())
	}
	me, err := env.Admin.Me(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	env.Server.Close()

	// Restart on the same data dir: same org, same key, no new key minted,
	// even when the key file is gone.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("restart wrote a new admin.key")
	}
	var orgs, keys int
	var orgID string
	if err := errors.Join(s.DB.Get(&orgs, `SELECT COUNT(*) FROM orgs`), s.DB.Get(&keys, `SELECT COUNT(*) FROM api_keys`),
		s.DB.Get(&orgID, `SELECT id FROM orgs`)); err != nil {
		t.Fatal(err)
	}
	if orgs != 1 || keys != 1 || orgID != me.Org.ID {
		t.Errorf("after restart: %d orgs (%s, want %s), %d keys", orgs, orgID, me.Org.ID, keys)
	}
}

func TestBootstrapPresetKey(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.BootstrapKey = "berth_" + strings.Repeat("k", 40)
	env := servertest.StartConfig(t, cfg)
	if env.AdminKey != cfg.BootstrapKey {
		t.Errorf("admin.key holds %q, want the preset key", env.AdminKey)
	}
	if _, err := env.Admin.Me(context.Background()); err != nil {
		t.Errorf("preset key does not authenticate: %v", err)
	}
	for _, bad := range []string{"short", "berth_tooshort", "nope_" + strings.Repeat("k", 40)} {
		c := cfg
		c.DataDir = t.TempDir()
		c.BootstrapKey = bad
		if _, err := server.New(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Errorf("bootstrap key %q accepted", bad)
		}
	}
}

// A relative data directory is resolved at start: workspace directories are
// bind-mounted into containers, and the engine refuses relative host paths.
func TestRelativeDataDirBecomesAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = "./relative-data"
	s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !filepath.IsAbs(s.Config.DataDir) || filepath.Base(s.Config.DataDir) != "relative-data" {
		t.Errorf("data dir %q is not the absolute form of ./relative-data", s.Config.DataDir)
	}
	if _, err := os.Stat(filepath.Join(s.Config.DataDir, "admin.key")); err != nil {
		t.Errorf("admin.key not in the resolved data dir: %v", err)
	}
}

// The data directory (database with agent secrets, workspaces in which a
// sandbox's root may plant set-uid binaries) is closed to other host users,
// also when it existed before with looser permissions.
func TestDataDirIsPrivate(t *testing.T) {
	for name, pre := range map[string]bool{"fresh": false, "existing 0755": true} {
		t.Run(name, func(t *testing.T) {
			cfg := server.Defaults()
			cfg.Addr = "127.0.0.1:0"
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			if pre {
				if err := os.MkdirAll(filepath.Join(cfg.DataDir, "workspaces"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := errors.Join(os.Chmod(cfg.DataDir, 0o755), os.Chmod(filepath.Join(cfg.DataDir, "workspaces"), 0o777)); err != nil {
					t.Fatal(err)
				}
			}
			s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "workspaces")} {
				fi, err := os.Stat(d)
				if err != nil {
					t.Fatal(err)
				}
				if perm := fi.Mode().Perm(); perm&0o077 != 0 {
					t.Errorf("%s has mode %v: other host users can enter it", d, perm)
				}
			}
		})
	}
}
