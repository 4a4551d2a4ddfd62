package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// Runtime wraps a runtime.Runtime. The containers it creates run the
// supervisor as their PID 1, with a host directory of their own
// (Dir/<container name>) mounted at runtime.SupervisorRunDir for its
// socket; Exec goes through that socket. A container without one (created
// before, or by another wrapper) and a supervisor that does not answer are
// served by the engine's exec, which is logged.
type Runtime struct {
	runtime.Runtime
	binary string
	dir    string
	log    *slog.Logger

	mu    sync.Mutex
	names map[string]string // container id → name, as Create or Inspect saw it
}

var _ runtime.Runtime = (*Runtime)(nil)

// Wrap returns rt with the supervisor at binary (a static executable on the
// host) in every container it creates; dir holds the containers' socket
// directories and is created private (0700).
func Wrap(rt runtime.Runtime, binary, dir string, log *slog.Logger) (*Runtime, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, berth.Wrap(berth.Internal, err, "supervisor socket directory")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, berth.Wrap(berth.Internal, err, "supervisor socket directory")
	}
	return &Runtime{Runtime: rt, binary: binary, dir: dir, log: log, names: map[string]string{}}, nil
}

// SocketDir is the host directory of the container named name.
func (r *Runtime) SocketDir(name string) string { return filepath.Join(r.dir, name) }

// Create makes the container's socket directory, then the container with the
// supervisor as its PID 1.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (string, error) {
	if spec.Name == "" || filepath.Base(spec.Name) != spec.Name || spec.Name == "." || spec.Name == ".." {
		// Anonymous containers get no supervisor: nothing names their directory.
		return r.Runtime.Create(ctx, spec)
	}
	sd := r.SocketDir(spec.Name)
	// Only the container's root may enter it: a socket answers whoever can
	// connect, and a sandbox user other than root must not run commands
	// as the supervisor's user.
	if err := os.Mkdir(sd, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", berth.Wrap(berth.Internal, err, "supervisor socket directory")
	}
	spec.Supervisor = &runtime.Supervisor{Binary: r.binary, SocketDir: sd}
	id, err := r.Runtime.Create(ctx, spec)
	if err != nil {
		if rerr := os.RemoveAll(sd); rerr != nil {
			r.log.Warn("remove a supervisor socket directory", "dir", sd, "err", rerr)
		}
		return "", err
	}
	r.mu.Lock()
	r.names[id] = spec.Name
	r.mu.Unlock()
	return id, nil
}

// Start removes the socket a previous run left, starts the container, and
// waits (briefly) for its supervisor to listen, so that the first exec
// goes through it.
func (r *Runtime) Start(ctx context.Context, id string) error {
	sock, ok := r.socket(ctx, id)
	if ok {
		if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("remove a stale supervisor socket", "container", id, "err", err)
		}
	}
	if err := r.Runtime.Start(ctx, id); err != nil {
		return err
	}
	if ok {
		r.waitReady(ctx, id, sock)
	}
	return nil
}

// readyTimeout bounds the wait for a started supervisor's socket; past it
// execs use the engine until the supervisor answers.
const readyTimeout = 10 * time.Second

func (r *Runtime) waitReady(ctx context.Context, id, sock string) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for delay := 500 * time.Microsecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if socketReady(ctx, sock) {
			return
		}
		select {
		case <-ctx.Done():
			r.log.Warn("the sandbox's supervisor does not answer yet; exec uses the engine until it does", "container", id)
			return
		case <-time.After(delay):
		}
	}
}

// Remove removes the container, then its socket directory.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	name := r.name(ctx, id)
	if err := r.Runtime.Remove(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.names, id)
	r.mu.Unlock()
	if name != "" {
		if err := os.RemoveAll(r.SocketDir(name)); err != nil {
			r.log.Warn("remove a supervisor socket directory", "container", id, "err", err)
		}
	}
	return nil
}

// Exec runs the command through the container's supervisor, or through the
// engine when the container has none or it does not answer.
func (r *Runtime) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	sock, ok := r.socket(ctx, id)
	if !ok {
		return r.Runtime.Exec(ctx, id, spec)
	}
	code, err := Exec(ctx, sock, Request{Cmd: spec.Cmd, Env: spec.Env, Dir: spec.Dir, User: spec.User},
		spec.Stdin, spec.Stdout, spec.Stderr)
	if err == nil || !errors.Is(err, ErrUnreachable) {
		return code, err
	}
	r.log.Warn("the sandbox's supervisor is unreachable: exec through the engine", "container", id, "err", err)
	return r.Runtime.Exec(ctx, id, spec)
}

// StartTTY starts a terminal session through the container's supervisor.
// A container without one is NotSupported.
func (r *Runtime) StartTTY(ctx context.Context, id string, req Request) (*Session, error) {
	sock, ok := r.socket(ctx, id)
	if !ok {
		return nil, berth.Errorf(berth.NotSupported, "this sandbox has no supervisor (it was created before terminals existed): recreate it for a terminal")
	}
	req.TTY = true
	s, err := Start(ctx, sock, req)
	if errors.Is(err, ErrUnreachable) {
		return nil, berth.Wrap(berth.Unavailable, err, "the sandbox's supervisor does not answer")
	}
	return s, err
}

// socket is the supervisor socket of container id, and whether it has a
// socket directory at all.
func (r *Runtime) socket(ctx context.Context, id string) (string, bool) {
	name := r.name(ctx, id)
	if name == "" {
		return "", false
	}
	sd := r.SocketDir(name)
	if _, err := os.Lstat(sd); err != nil {
		return "", false
	}
	return filepath.Join(sd, runtime.SupervisorSocketName), true
}

// name is container id's name: remembered from Create, or asked of the
// engine once (a container of a previous process). "" if unknown.
func (r *Runtime) name(ctx context.Context, id string) string {
	r.mu.Lock()
	n, ok := r.names[id]
	r.mu.Unlock()
	if ok {
		return n
	}
	c, err := r.Runtime.Inspect(ctx, id)
	if err != nil {
		return ""
	}
	r.mu.Lock()
	r.names[id] = c.Name
	r.mu.Unlock()
	return c.Name
}

// DialPort connects to TCP port on the loopback of container id through
// its supervisor. A container without one is NotSupported; a supervisor
// that does not answer wraps ErrUnreachable.
func (r *Runtime) DialPort(ctx context.Context, id string, port int) (net.Conn, error) {
	sock, ok := r.socket(ctx, id)
	if !ok {
		return nil, berth.Errorf(berth.NotSupported, "this sandbox has no supervisor")
	}
	return Dial(ctx, sock, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}
