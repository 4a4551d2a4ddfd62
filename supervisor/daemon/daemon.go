//go:build linux

// Package daemon is the supervisor that runs as PID 1 inside a sandbox
// (cmd/berth-supervisor): it starts the sandbox's main command, forwards
// signals to it, reaps every orphan, and serves berth's exec and PTY
// requests on a unix socket (see supervisor/proto). It runs with the
// sandbox's own privileges: it can do nothing a process of the sandbox
// cannot.
package daemon

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SocketPath is where the supervisor listens inside the sandbox: the
// sandbox's own host directory is mounted at its directory.
const SocketPath = "/.berth/run/sock"

// reaper owns every wait of the process: the supervisor is PID 1, so
// orphans become its children and must be reaped, and a reap with
// wait4(-1) would steal the status of a command an exec waits for. The
// commands it starts are registered (under mu, before the reaper can see
// their exit) and get their status on a channel.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

func newReaper() *reaper {
	return &reaper{waiters: map[int]chan syscall.WaitStatus{}}
}

// start starts a process through start (os.StartProcess) with the reaper
// held, and returns its pid and the channel its status comes on.
func (r *reaper) start(start func() (*os.Process, error)) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[p.Pid] = ch
	pid := p.Pid
	// The status comes through the reaper, not p.Wait.
	_ = p.Release()
	return pid, ch, nil
}

// reap collects every child that has ended.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws
		}
	}
}

// exitCode is the shell's view of a status: the exit code, or 128+signal.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// forwarded are the signals PID 1 passes on to the main command, as tini
// does (SIGKILL and SIGSTOP cannot be caught; SIGCHLD is the reaper's).
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGALRM, syscall.SIGCONT}

// Main runs the supervisor with args ("--", then the main command) and
// returns the main command's exit code, which the container exits with.
func Main(args []string) int {
	log.SetFlags(0)
	log.SetPrefix("berth-supervisor: ")
	if len(args) > 0 && args[0] == killHelperArg {
		return killHelper(args[1:])
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		log.Print("usage: berth-supervisor -- command [args...]")
		return 2
	}
	r := newReaper()
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)

	// The socket comes first: an exec may arrive as soon as the container
	// runs. Without it the sandbox still works, through the engine's exec.
	if ln, err := listen(SocketPath); err != nil {
		log.Printf("no exec socket (berth falls back to the engine's exec): %v", err)
	} else {
		s := &server{reaper: r}
		go s.serve(ln)
	}

	path, err := lookPath(args[0], os.Getenv("PATH"))
	if err != nil {
		log.Printf("main command: %v", err)
		return 127
	}
	pid, done, err := r.start(func() (*os.Process, error) {
		return os.StartProcess(path, args, &os.ProcAttr{
			Env:   os.Environ(),
			Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
			// Its own process group, as tini does, so that a signal to
			// it does not reach the supervisor's.
			Sys: &syscall.SysProcAttr{Setpgid: true},
		})
	})
	if err != nil {
		log.Printf("main command: %v", err)
		return startErrCode(err)
	}
	for {
		select {
		case ws := <-done:
			return exitCode(ws)
		case sig := <-sigs:
			if sig == syscall.SIGCHLD {
				r.reap()
				continue
			}
			if err := syscall.Kill(pid, sig.(syscall.Signal)); err != nil && !errors.Is(err, syscall.ESRCH) {
				log.Printf("forward %v: %v", sig, err)
			}
		}
	}
}

// listen replaces a socket left by a previous run of the container and
// listens, for the supervisor's user only.
func listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}
