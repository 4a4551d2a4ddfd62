package doctor_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/doctor"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/templates"
)

func byName(t *testing.T, r doctor.Report) map[string]doctor.Check {
	t.Helper()
	m := map[string]doctor.Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
		t.Logf("%s %s: %s (%s)", c.Status, c.Name, c.Message, c.Fix)
	}
	return m
}

func want(t *testing.T, checks map[string]doctor.Check, name string, status doctor.Status, contains string) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Errorf("no %q check", name)
		return
	}
	if c.Status != status || !strings.Contains(c.Message, contains) {
		t.Errorf("%s: %s %q, want %s with %q", name, c.Status, c.Message, status, contains)
	}
	if status == doctor.Fail && c.Fix == "" && !strings.HasPrefix(c.Message, "not checked") {
		t.Errorf("%s fails without saying what to do", name)
	}
}

// Against a running berth on SQLite and PostgreSQL with the real engine:
// every check passes, and the listen address is recognised as berth's.
func TestDoctorAllOK(t *testing.T) {
	ctx := testctx.Context(t)
	rt, err := docker.New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	base, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	if err := templates.Ensure(ctx, rt, base, nil); err != nil {
		t.Fatalf("build the base template: %v", err)
	}
	servertest.Engines(t, func(t *testing.T, env *servertest.Env) {
		r := doctor.Run(testctx.Context(t), doctor.Config{Addr: strings.TrimPrefix(env.URL, "http://"),
			DataDir: env.Config.DataDir, Database: env.Config.Database, Timeout: time.Minute})
		checks := byName(t, r)
		if !r.OK {
			t.Errorf("report not ok: %+v", r.Checks)
		}
		want(t, checks, "engine", doctor.OK, "API 1.")
		want(t, checks, "base template", doctor.OK, base.Image+" runs")
		want(t, checks, "isolated network", doctor.OK, docker.IsolationChain)
		want(t, checks, "data dir", doctor.OK, "is writable")
		want(t, checks, "database", doctor.OK, "answers")
		want(t, checks, "migrations", doctor.OK, "current")
		want(t, checks, "listen address", doctor.OK, "held by a berth server")
		for _, name := range []string{"free space", "filesystem"} {
			if c := checks[name]; c.Status == doctor.Fail {
				t.Errorf("%s failed: %s", name, c.Message)
			}
		}
		if env.Config.Database != "" && !db.IsPostgres(env.Config.Database) && !strings.Contains(checks["database"].Message, "SQLite") {
			t.Errorf("database line does not say SQLite: %q", checks["database"].Message)
		}
		if db.IsPostgres(env.Config.Database) && strings.Contains(checks["database"].Message, "postgres:postgres@") {
			t.Errorf("the database line shows the password: %q", checks["database"].Message)
		}
	})
}

// A bad engine address, an unreachable PostgreSQL and a port another
// program holds each fail with what to do.
func TestDoctorFailures(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`)) // looks healthy, is not berth
	}))
	t.Cleanup(other.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"tcp://" + dead, "unix:///nonexistent/docker.sock"} {
		t.Run(host, func(t *testing.T) {
			r := doctor.Run(testctx.Context(t), doctor.Config{Addr: strings.TrimPrefix(other.URL, "http://"), DataDir: t.TempDir(),
				Database: "postgres://berth:secret@" + dead + "/berth?sslmode=disable", DockerHost: host, Timeout: time.Minute})
			checks := byName(t, r)
			if r.OK || r.Failed() != 3 {
				t.Errorf("ok %v with %d failures, want 3", r.OK, r.Failed())
			}
			want(t, checks, "engine", doctor.Fail, host)
			want(t, checks, "database", doctor.Fail, "cannot connect to PostgreSQL")
			want(t, checks, "listen address", doctor.Fail, "in use by another process")
			want(t, checks, "data dir", doctor.OK, "is writable")
			if strings.Contains(checks["database"].Message, "secret") {
				t.Errorf("the database line shows the password: %q", checks["database"].Message)
			}
		})
	}
}

// Doctor looks, it does not set up: on a fresh machine it creates no data
// directory and no database, and says serve will.
func TestDoctorFresh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := doctor.Run(testctx.Context(t), doctor.Config{Addr: "127.0.0.1:0", DataDir: dir, Timeout: time.Minute}, "storage", "database", "ports")
	checks := byName(t, r)
	want(t, checks, "data dir", doctor.OK, "does not exist yet")
	want(t, checks, "database", doctor.OK, "does not exist yet")
	want(t, checks, "listen address", doctor.OK, "is free")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("doctor made the data directory: %v", err)
	}

	// A file where the data directory should be.
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = doctor.Run(testctx.Context(t), doctor.Config{Addr: "127.0.0.1:0", DataDir: dir}, "storage")
	want(t, byName(t, r), "data dir", doctor.Fail, "not a directory")
}

// A database migrated by a newer berth fails; one this binary migrated is current.
func TestDoctorSchemaVersions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.db")
	d, err := db.Open(testctx.Context(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	cfg := doctor.Config{DataDir: dir, Timeout: time.Minute}
	want(t, byName(t, doctor.Run(testctx.Context(t), cfg, "database")), "migrations", doctor.OK, "current")
	if _, err := d.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, 1)`); err != nil {
		t.Fatal(err)
	}
	r := doctor.Run(testctx.Context(t), cfg, "database")
	want(t, byName(t, r), "migrations", doctor.Fail, "newer than this binary")
	if r.OK {
		t.Error("report ok with a schema from the future")
	}
}
