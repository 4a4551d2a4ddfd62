package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// ExecIDEnv is set, to a fresh random value, in the environment of every
// command Exec runs (the Docker backend's variable): a cancelled exec's
// processes that left its session are found by it.
const ExecIDEnv = "BERTH_EXEC_ID"

// Timings of a cancelled exec: how long the kill may take, and how long the
// output streams get to drain once the command is gone.
const (
	killTimeout = 10 * time.Second
	drainGrace  = 2 * time.Second
)

// Exec runs a command in a running container; see runtime.Runtime.
//
// The command runs as a task exec process; runc makes it a session leader.
// When ctx ends first, every process of the container (same PID namespace)
// that is in that session or carries the exec's ExecIDEnv marker is killed
// from the host, in rounds until none is left: this needs no shell in the
// image, and works in a container whose pids limit is exhausted.
func (c *Containerd) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if len(spec.Cmd) == 0 {
		return -1, berth.Errorf(berth.Invalid, "exec: empty command")
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	what := "exec in container " + id
	// The calls that start, watch and end the process outlive ctx: a
	// cancelled exec must still be killed and cleaned up.
	bg, cancelBG := context.WithCancel(context.WithoutCancel(c.ctx(ctx)))
	defer cancelBG()
	cont, err := c.cli.LoadContainer(bg, id)
	if err != nil {
		return -1, translate(err, what)
	}
	task, err := cont.Task(bg, nil)
	if cerrdefs.IsNotFound(err) {
		return -1, berth.Errorf(berth.Conflict, "%s: the container is not running", what)
	}
	if err != nil {
		return -1, translate(err, what)
	}
	st, err := task.Status(bg)
	if err != nil {
		return -1, translate(err, what)
	}
	if st.Status != containerd.Running {
		return -1, berth.Errorf(berth.Conflict, "%s: the container is %s", what, stateOf(st.Status))
	}
	info, err := cont.Info(bg, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return -1, translate(err, what)
	}
	// The spec LoadContainer read: it never changes.
	var cspec oci.Spec
	if err := json.Unmarshal(info.Spec.GetValue(), &cspec); err != nil || cspec.Process == nil {
		return -1, berth.Errorf(berth.Internal, "%s: the container's spec: %v", what, err)
	}
	pspec := *cspec.Process
	pspec.Terminal = false
	pspec.Args = spec.Cmd
	marker := randomHex(16)
	pspec.Env = append(append(append([]string(nil), cspec.Process.Env...), envList(spec.Env)...), ExecIDEnv+"="+marker)
	if spec.Dir != "" {
		pspec.Cwd = spec.Dir
	}
	if spec.User != "" {
		// oci.WithUser resolves names in the container's own /etc/passwd.
		s := cspec
		s.Process = &pspec
		if err := oci.WithUser(spec.User)(bg, c.cli, &info, &s); err != nil {
			return -1, berth.Wrap(berth.Invalid, err, what+": user "+spec.User)
		}
		pspec.User.AdditionalGids = nil
	}

	failed := make(chan error, 2)
	stdout := &watchWriter{w: orDiscard(spec.Stdout), failed: failed}
	stderr := &watchWriter{w: orDiscard(spec.Stderr), failed: failed}
	var stdin io.Reader
	started := make(chan struct{})
	var proc containerd.Process
	if spec.Stdin != nil {
		stdin = &stdinCloser{r: spec.Stdin, close: func() {
			select {
			case <-started:
			case <-bg.Done():
				return
			}
			// An error means the process is gone: nothing to close.
			_ = proc.CloseIO(bg, containerd.WithStdinCloser)
		}}
	}
	// Without stdin the process gets none (/dev/null from the shim): a
	// reading command sees EOF.
	execID := "exec-" + randomHex(8)
	proc, err = task.Exec(bg, execID, &pspec, cio.NewCreator(cio.WithStreams(stdin, stdout, stderr)))
	if err != nil {
		return -1, translate(err, what)
	}
	ended := false
	defer func() {
		dctx, cancel := context.WithTimeout(bg, killTimeout)
		defer cancel()
		// Deleting an exec process that ended only drops its record; one
		// that may still run is killed first.
		var opts []containerd.ProcessDeleteOpts
		if !ended {
			opts = append(opts, containerd.WithProcessKill)
		}
		_, _ = proc.Delete(dctx, opts...)
	}()
	exited, err := proc.Wait(bg)
	if err != nil {
		return -1, translate(err, what)
	}
	if err := proc.Start(bg); err != nil {
		if code, ok := notRunnable(err); ok {
			return code, nil
		}
		return -1, translate(err, what)
	}
	close(started)
	pid := proc.Pid()

	select {
	case es := <-exited:
		ended = true
		// The output streams end when the last holder of them does; a
		// process left in the background with them open gets drainGrace.
		waitIO(proc, drainGrace)
		if err := es.Error(); err != nil {
			return -1, translate(err, what)
		}
		select {
		case werr := <-failed:
			return -1, berth.Wrap(berth.Unavailable, werr, what+": output stream")
		default:
		}
		return int(es.ExitCode()), nil
	case werr := <-failed:
		// A consumer that went away: the command must not live on.
		kerr := killExec(task.Pid(), pid, marker)
		if ctx.Err() != nil {
			return -1, errors.Join(ctx.Err(), kerr)
		}
		return -1, errors.Join(berth.Wrap(berth.Unavailable, werr, what+": output stream"), kerr)
	case <-ctx.Done():
		kerr := killExec(task.Pid(), pid, marker)
		select {
		case <-exited:
		case <-time.After(drainGrace):
		}
		return -1, errors.Join(ctx.Err(), kerr)
	}
}

// notRunnable maps runc's refusal to start a command to the shell's codes:
// 127 for a missing executable, 126 for one that cannot be run.
func notRunnable(err error) (int, bool) {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "executable file not found"):
		return 127, true
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "exec format error"):
		return 126, true
	}
	return 0, false
}

func waitIO(proc containerd.Process, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		proc.IO().Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// killExec kills, from the host, every process in the PID namespace of the
// container's init (initPID) that is in the exec's session (the session
// leader is the exec's process, execPID) or carries its marker, and the
// sessions of the marked ones (a setsid child). Rounds repeat until one
// finds nothing, which covers processes forked while the previous ran.
func killExec(initPID, execPID uint32, marker string) error {
	pidns, err := os.Readlink("/proc/" + strconv.Itoa(int(initPID)) + "/ns/pid")
	if err != nil {
		// The container is gone, and its processes with it.
		return nil
	}
	needle := []byte(ExecIDEnv + "=" + marker + "\x00")
	deadline := time.Now().Add(killTimeout)
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return berth.Wrap(berth.Internal, err, "kill exec: read /proc")
		}
		sessions := map[int]bool{int(execPID): true}
		type proc struct{ pid, sid int }
		var inNS []proc
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			dir := "/proc/" + e.Name()
			if ns, err := os.Readlink(dir + "/ns/pid"); err != nil || ns != pidns {
				continue
			}
			sid := sessionOf(dir)
			inNS = append(inNS, proc{pid, sid})
			if env, err := os.ReadFile(dir + "/environ"); err == nil && bytes.Contains(env, needle) {
				sessions[sid] = true
				sessions[pid] = true
			}
		}
		killed := 0
		for _, p := range inNS {
			if sessions[p.sid] || sessions[p.pid] {
				if p.pid == int(initPID) {
					continue
				}
				if err := syscall.Kill(p.pid, syscall.SIGKILL); err == nil {
					killed++
				}
			}
		}
		if killed == 0 {
			return nil
		}
	}
	return berth.Errorf(berth.Internal, "kill exec: processes left after %v", killTimeout)
}

// sessionOf reads the session id (host numbering) from /proc/<pid>/stat.
func sessionOf(dir string) int {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	// state ppid pgrp session ...
	if len(f) < 4 {
		return -1
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return -1
	}
	return sid
}

// watchWriter reports its writer's first failure on failed.
type watchWriter struct {
	w      io.Writer
	failed chan<- error
	once   sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.once.Do(func() { w.failed <- err })
	}
	return n, err
}

// stdinCloser closes the process's stdin once its reader is at its end.
type stdinCloser struct {
	r     io.Reader
	close func()
	once  sync.Once
}

func (s *stdinCloser) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.once.Do(func() { go s.close() })
	}
	return n, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
