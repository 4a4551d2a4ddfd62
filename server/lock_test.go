package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// lockEngines runs fn with a config on SQLite and, when BERTH_TEST_POSTGRES
// is set, on a PostgreSQL database of its own.
func lockEngines(t *testing.T, fn func(t *testing.T, cfg server.Config)) {
	t.Run("sqlite", func(t *testing.T) {
		cfg := server.Defaults()
		cfg.DataDir = t.TempDir()
		fn(t, cfg)
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("BERTH_TEST_POSTGRES") == "" {
			if os.Getenv("CI") == "true" {
				t.Fatal("CI=true but BERTH_TEST_POSTGRES is not set")
			}
			t.Skip("BERTH_TEST_POSTGRES not set")
		}
		cfg := server.Defaults()
		cfg.DataDir = t.TempDir()
		cfg.Database = dbtest.PostgresDSN(t)
		fn(t, cfg)
	})
}

// wantHeld checks that err refuses the start naming this process as holder.
func wantHeld(t *testing.T, err error, pid int) {
	t.Helper()
	var held *db.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second server on the same database: err %v, want a HeldError", err)
	}
	host, _ := os.Hostname()
	if held.Holder.PID != pid || held.Holder.Host != host || held.Holder.Since.IsZero() {
		t.Errorf("holder %+v, want host %s pid %d and a start time", held.Holder, host, pid)
	}
	msg := err.Error()
	for _, want := range []string{"in use by another berth server", "pid " + strconv.Itoa(pid), "host " + host, "since "} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// TestSecondServerRefused: a second server on a database (or a data
// directory) another one holds refuses to start and names the holder; once
// the first closes, a new one starts.
func TestSecondServerRefused(t *testing.T) {
	lockEngines(t, func(t *testing.T, cfg server.Config) {
		ctx := context.Background()
		first, err := server.New(ctx, cfg, quiet())
		if err != nil {
			t.Fatal(err)
		}
		closed := false
		defer func() {
			if !closed {
				first.Close()
			}
		}()

		// Same database, another data directory: the database lock refuses.
		other := cfg
		other.DataDir = t.TempDir()
		if other.Database == "" {
			other.Database = filepath.Join(cfg.DataDir, "berth.db")
		}
		_, err = server.New(ctx, other, quiet())
		wantHeld(t, err, os.Getpid())
		if !strings.Contains(err.Error(), "database") {
			t.Errorf("error %q does not say the database is what is in use", err)
		}

		// Same data directory, another database: the data directory lock
		// refuses (workspaces and uploads would be shared).
		sameDir := cfg
		sameDir.Database = filepath.Join(t.TempDir(), "other.db")
		_, err = server.New(ctx, sameDir, quiet())
		wantHeld(t, err, os.Getpid())
		if !strings.Contains(err.Error(), "data directory") {
			t.Errorf("error %q does not say the data directory is what is in use", err)
		}

		if db.IsPostgres(cfg.Database) {
			// Advisory locks are per database: a server on another
			// database of the same cluster starts.
			third := server.Defaults()
			third.DataDir = t.TempDir()
			third.Database = dbtest.PostgresDSN(t)
			s, err := server.New(ctx, third, quiet())
			if err != nil {
				t.Fatalf("a server on another database of the cluster: %v", err)
			}
			s.Close()
		}

		first.Close()
		closed = true
		again, err := server.New(ctx, other, quiet())
		if err != nil {
			t.Fatalf("after the first server closed: %v", err)
		}
		again.Close()
	})
}

// TestLockReleasedOnCrash: a server process killed with SIGKILL leaves no
// lock behind (flock and advisory lock die with the process and its
// session). The holder is this test binary run again as a helper.
func TestLockReleasedOnCrash(t *testing.T) {
	lockEngines(t, func(t *testing.T, cfg server.Config) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
		cmd.Env = append(os.Environ(), "BERTH_LOCK_HOLDER_DIR="+cfg.DataDir, "BERTH_LOCK_HOLDER_DB="+cfg.Database)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		defer func() {
			if !killed {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		// The helper says "holding" once server.New returned.
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "holding" {
		}
		if sc.Err() != nil {
			t.Fatal(sc.Err())
		}

		ctx := context.Background()
		_, err = server.New(ctx, cfg, quiet())
		wantHeld(t, err, cmd.Process.Pid)

		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed: the exit status says so
		killed = true
		// The kernel released the flocks when the process died; the
		// advisory lock goes with the session once PostgreSQL sees the
		// connection closed, which the kernel does at once on loopback
		// (a remote crash would wait for TCP keepalive).
		// PostgreSQL ends the session in the background: wait for it.
		testctx.Eventually(t, "a new server to start after the holder was killed", func() bool {
			s, err := server.New(ctx, cfg, quiet())
			if err == nil {
				s.Close()
				return true
			}
			var held *db.HeldError
			if !errors.As(err, &held) {
				t.Fatalf("after the holder was killed: %v", err)
			}
			return false
		})
	})
}

// TestLockHolderProcess is the helper process of TestLockReleasedOnCrash.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("BERTH_LOCK_HOLDER_DIR")
	if dir == "" {
		t.Skip("helper process of TestLockReleasedOnCrash")
	}
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.Database = os.Getenv("BERTH_LOCK_HOLDER_DB")
	s, err := server.New(context.Background(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("holding")
	<-t.Context().Done() // never: the parent test kills this process
}

// TestReplicasRule: with --replicas several servers share one PostgreSQL
// database (each with its own data directory, all with one workspaces
// directory); a server without it is still refused beside them, two
// replicas still may not share a data directory, and SQLite refuses
// replicas.
func TestReplicasRule(t *testing.T) {
	lockEngines(t, func(t *testing.T, cfg server.Config) {
		ctx := context.Background()
		cfg.Replicas = true
		cfg.WorkspacesDir = t.TempDir()
		if !db.IsPostgres(cfg.Database) {
			if _, err := server.New(ctx, cfg, quiet()); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
				t.Fatalf("--replicas on SQLite: %v, want refused naming PostgreSQL", err)
			}
			return
		}
		noWS := cfg
		noWS.WorkspacesDir = ""
		if _, err := server.New(ctx, noWS, quiet()); err == nil || !strings.Contains(err.Error(), "--workspaces-dir") {
			t.Fatalf("--replicas without --workspaces-dir: %v, want refused", err)
		}
		a, err := server.New(ctx, cfg, quiet())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		second := cfg
		second.DataDir = t.TempDir()
		b, err := server.New(ctx, second, quiet())
		if err != nil {
			t.Fatalf("second replica: %v", err)
		}
		defer b.Close()
		if a.Instance == b.Instance || a.Instance == "" {
			t.Errorf("instance ids %q and %q, want distinct", a.Instance, b.Instance)
		}

		single := cfg
		single.Replicas = false
		single.DataDir = t.TempDir()
		var held *db.HeldError
		if _, err := server.New(ctx, single, quiet()); !errors.As(err, &held) || !strings.Contains(err.Error(), "--replicas") {
			t.Fatalf("a server without --replicas beside replicas: %v, want a HeldError naming --replicas", err)
		}
		// One data directory is one replica's: the flock still refuses.
		sameDir := cfg
		if _, err := server.New(ctx, sameDir, quiet()); !errors.As(err, &held) || !strings.Contains(err.Error(), "data directory") {
			t.Fatalf("a replica on another's data directory: %v, want refused", err)
		}
	})
}
