package supervisor_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/containerd/containerdtest"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/supervisor"
)

// logBook keeps the wrapper's log lines for the test to read.
type logBook struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBook) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBook) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type env struct {
	rt    *supervisor.Runtime
	image string
	log   *logBook
	label map[string]string
	run   string
}

// engines are the backends the supervisor runs on: every one berth has.
var engines = []struct {
	name string
	new  func(t testing.TB) runtime.Runtime
}{
	{"docker", func(t testing.TB) runtime.Runtime { return dockertest.New(t) }},
	{"containerd", func(t testing.TB) runtime.Runtime { return containerdtest.New(t) }},
}

// eachEngine runs fn on a fresh env of every engine, as parallel subtests.
func eachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, eng.new(t)))
		})
	}
}

// newEnv wraps a real runtime with a supervisor built from this checkout
// (once per test binary).
func newEnv(t testing.TB, d runtime.Runtime) *env {
	t.Helper()
	image := runtimetest.BaseImage(t, d)
	bin, err := supervisor.Install(testctx.Context(t), t.TempDir(), "")
	if err != nil {
		t.Fatalf("install the supervisor: %v", err)
	}
	book := &logBook{}
	rt, err := supervisor.Wrap(d, bin, t.TempDir(), slog.New(slog.NewTextHandler(book, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	run := hex.EncodeToString(b)
	e := &env{rt: rt, image: image, log: book, label: map[string]string{runtimetest.LabelTest: run}, run: run}
	runtimetest.RemoveLabelledOnCleanup(t, d, e.label)
	return e
}

func (e *env) start(t testing.TB, name string, mod ...func(*runtime.Spec)) string {
	t.Helper()
	spec := runtime.Spec{Name: "berth-sv-" + e.run + "-" + name, Image: e.image, Labels: e.label}
	for _, m := range mod {
		m(&spec)
	}
	ctx := testctx.Context(t)
	id, err := e.rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

func (e *env) sh(t *testing.T, id, script string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := e.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("exec %q: %v (stderr %q)", script, err, errb.String())
	}
	return out.String(), code
}

// ppidScript prints the parent pid of the exec'd shell: 1 when the
// supervisor (PID 1) started it, 0 when the engine's exec entered the
// container from outside.
const ppidScript = `read -r l < /proc/$$/stat; set -- ${l##*) }; echo $2`

// The whole runtime conformance suite passes through the wrapper: exit codes
// (126/127), streams, stdin, env, cwd and user, 8 MiB of output, concurrent
// execs, a failing writer, and cancellation and deadlines that kill the
// command's session, its setsid and env -i children, and nothing else.
func TestConformance(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		runtimetest.Run(t, e.rt, e.image)
		if strings.Contains(e.log.String(), "unreachable") {
			t.Errorf("some execs fell back to the engine:\n%s", e.log.String())
		}
	})
}

// Exec goes through the supervisor, which is PID 1; with its socket gone
// (or replaced by a symlink to another socket) exec falls back to the
// engine, logged, and still works.
func TestExecPathAndFallback(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		id := e.start(t, "path")
		if out, _ := e.sh(t, id, "tr '\\0' ' ' < /proc/1/cmdline"); !strings.HasPrefix(out, runtime.SupervisorPath+" -- ") {
			t.Errorf("PID 1 is %q, want the supervisor", out)
		}
		if out, _ := e.sh(t, id, ppidScript); out != "1\n" {
			t.Errorf("exec's parent pid %q, want 1 (started by the supervisor)", out)
		}
		// A process the command leaves running with its output redirected
		// outlives the exec, as with the engine's exec.
		if _, code := e.sh(t, id, "sleep 4741 >/dev/null 2>&1 &"); code != 0 {
			t.Fatalf("background: exit %d", code)
		}
		if out, _ := e.sh(t, id, `for d in /proc/[0-9]*; do tr '\0' ' ' < $d/cmdline 2>/dev/null; echo; done | grep -c '^sleep 4741' || true`); out != "1\n" {
			t.Errorf("background process after its exec ended: %q running, want 1", out)
		}
		// A user's exec has that user's groups, not the supervisor's.
		var groups bytes.Buffer
		if code, err := e.rt.Exec(testctx.Context(t), id, runtime.ExecSpec{Cmd: []string{"id"}, User: "nobody", Stdout: &groups}); err != nil || code != 0 {
			t.Fatalf("id as nobody: %d, %v", code, err)
		}
		if out := groups.String(); strings.Contains(out, "root") || !strings.Contains(out, "uid=65534") {
			t.Errorf("id as nobody: %q", out)
		}
		if strings.Contains(e.log.String(), "unreachable") {
			t.Fatalf("fell back while the supervisor runs:\n%s", e.log.String())
		}

		c, err := e.rt.Inspect(testctx.Context(t), id)
		if err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(e.rt.SocketDir(c.Name), runtime.SupervisorSocketName)
		// Root inside a sandbox owns the socket's directory: a symlink it
		// leaves there must not lead berth to another socket of the host.
		other := filepath.Join(t.TempDir(), "other.sock")
		ln, err := net.Listen("unix", other)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ln.Close() }()
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- struct{}{}
				_ = c.Close()
			}
		}()
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(other, sock); err != nil {
			t.Fatal(err)
		}
		if out, code := e.sh(t, id, "echo fallback; "+ppidScript); out != "fallback\n0\n" || code != 0 {
			t.Errorf("exec with a symlinked socket: %q, %d; want it through the engine", out, code)
		}
		select {
		case <-accepted:
			t.Error("berth followed the symlink to another socket")
		default:
		}
		if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		if out, code := e.sh(t, id, "echo fallback; exit 4"); out != "fallback\n" || code != 4 {
			t.Errorf("exec without the socket: %q, %d", out, code)
		}
		if !strings.Contains(e.log.String(), "unreachable: exec through the engine") {
			t.Errorf("the fallback was not logged:\n%s", e.log.String())
		}
		// A restart brings the supervisor's socket back.
		ctx := testctx.Context(t)
		if err := e.rt.Stop(ctx, id, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if out, _ := e.sh(t, id, ppidScript); out != "1\n" {
			t.Errorf("after a restart exec's parent pid is %q, want 1", out)
		}
	})
}

// The supervisor as PID 1 reaps orphans and forwards SIGTERM to the main
// command, whose exit code the container exits with.
func TestPID1(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		out := t.TempDir()
		id := e.start(t, "pid1", func(s *runtime.Spec) {
			s.Mounts = []runtime.Mount{{Source: out, Target: "/out"}}
			s.Cmd = []string{"/bin/sh", "-c", "trap 'echo term > /out/got; exit 7' TERM; echo up > /out/up; while :; do sleep 0.05; done"}
		})
		testctx.Eventually(t, "the main command to run", func() bool {
			_, err := os.Stat(filepath.Join(out, "up"))
			return err == nil
		})
		// Orphans: each subshell exits at once, leaving its child to PID 1.
		if _, code := e.sh(t, id, "for i in 1 2 3 4 5 6 7 8; do (sleep 0.01 &); done"); code != 0 {
			t.Fatalf("orphans: exit %d", code)
		}
		const zombies = `for f in /proc/[0-9]*/stat; do read -r l < $f 2>/dev/null || continue; case "${l##*) }" in Z*) echo "$l";; esac; done`
		testctx.Eventually(t, "the orphans to be reaped", func() bool {
			z, _ := e.sh(t, id, zombies)
			return z == ""
		})

		ctx := testctx.Context(t)
		// A long grace: only the forwarded SIGTERM ends it before the kill.
		if err := e.rt.Stop(ctx, id, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		c, err := e.rt.Inspect(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.ExitCode != 7 {
			t.Errorf("exit code %d, want 7 (the main command's, after its TERM trap)", c.ExitCode)
		}
		if b, err := os.ReadFile(filepath.Join(out, "got")); err != nil || string(b) != "term\n" {
			t.Errorf("the main command's trap: %q, %v", b, err)
		}
	})
}

// A sandbox sees its own socket directory only, and only its root may
// enter it.
func TestSocketIsolation(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		a := e.start(t, "iso-a")
		b := e.start(t, "iso-b")
		cb, err := e.rt.Inspect(testctx.Context(t), b)
		if err != nil {
			t.Fatal(err)
		}
		bDir := e.rt.SocketDir(cb.Name)
		if out, _ := e.sh(t, a, "ls -a "+runtime.SupervisorRunDir+"; ls "+bDir+" 2>&1 || echo absent"); !strings.HasPrefix(out, ".\n..\nsock\n") || !strings.HasSuffix(out, "absent\n") {
			t.Errorf("inside a: %q; want only its own socket, and b's directory absent", out)
		}
		fi, err := os.Stat(bDir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("b's socket directory: %v, %v; want 0700", fi, err)
		}
		var errb bytes.Buffer
		code, err := e.rt.Exec(testctx.Context(t), a, runtime.ExecSpec{Cmd: []string{"ls", runtime.SupervisorRunDir}, User: "1000", Stderr: &errb})
		if err != nil || code == 0 {
			t.Errorf("a non-root user listed the socket directory: code %d, %v", code, err)
		}
	})
}

// Nothing runs when the context has ended, and a dead socket path is
// ErrUnreachable.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	_, err := supervisor.Exec(context.Background(), filepath.Join(t.TempDir(), "none"), supervisor.Request{Cmd: []string{"true"}}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("missing socket: %v", err)
	}
}

// DialPort reaches a TCP server on the sandbox's loopback through the
// supervisor, with no network at all; a closed port is Unavailable, and
// the supervisor dials only loopback addresses.
func TestDialPort(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		id := e.start(t, "dial", func(s *runtime.Spec) { s.Network = runtime.NetworkNone })
		if out, code := e.sh(t, id, "mkdir -p /tmp/www && echo dialled > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www"); code != 0 {
			t.Fatalf("httpd: %d %s", code, out)
		}
		ctx := testctx.Context(t)
		var got string
		testctx.Eventually(t, "httpd through DialPort", func() bool {
			c, err := e.rt.DialPort(ctx, id, 8080)
			if err != nil {
				got = err.Error()
				return false
			}
			defer func() { _ = c.Close() }()
			if _, err := io.WriteString(c, "GET /index.html HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// A hang guard.
			if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
				t.Fatal(err)
			}
			// The server's close reaches the client as EOF.
			b, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read to EOF: %v (%q)", err, b)
			}
			got = string(b)
			return strings.HasPrefix(got, "HTTP/1.1 200") // busybox answers 1.1
		})
		if !strings.HasSuffix(got, "dialled\n") {
			t.Errorf("answer %q", got)
		}
		if _, err := e.rt.DialPort(ctx, id, 9); !berth.IsKind(err, berth.Unavailable) {
			t.Errorf("closed port: %v, want Unavailable", err)
		}
		sock := filepath.Join(e.rt.SocketDir("berth-sv-"+e.run+"-dial"), runtime.SupervisorSocketName)
		if _, err := supervisor.Dial(ctx, sock, "10.0.0.1:80"); !errors.Is(err, supervisor.ErrUnreachable) {
			t.Errorf("a non-loopback address: %v, want refused", err)
		}
	})
}
