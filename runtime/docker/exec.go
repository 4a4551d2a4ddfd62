package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// ExecIDEnv is set, to a fresh random value, in the environment of every
// command Exec runs. The engine has no API to kill an exec'd process, so
// cancellation finds the command's processes inside the container by this
// marker, which every child inherits.
const ExecIDEnv = "BERTH_EXEC_ID"

// killScript kills every process of one exec, given its marker as $1. It is
// run by a second exec, as the same user as the first (so that it may read
// their /proc/<pid>/environ without CAP_SYS_PTRACE), and uses only the shell,
// tr and grep, which every template image has. (The environment is split into
// lines first: BusyBox's grep -F stops reading a line at a NUL byte.)
//
// Limits: an image without /bin/sh, tr and grep, a paused container, or one
// whose pids limit is exhausted (a fork bomb) cannot run the kill; Exec then
// still returns promptly, and stopping the container is the remedy.
//
// Each round finds the processes carrying the marker in their environment
// and kills them together with every process of their sessions: the engine
// starts each exec as a session leader, so the session also catches children
// that cleared their environment. Rounds repeat until a round finds nothing,
// which covers processes forked while the previous round ran.
const killScript = `
m="$1"; self=$$
for round in 1 2 3 4 5 6 7 8 9 10; do
	sids=
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = "$self" ] && continue
		tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$m" || continue
		read -r st < "$d/stat" 2>/dev/null || continue
		set -- ${st##*) }
		[ "$4" -gt 1 ] 2>/dev/null && sids="$sids $4"
		kill -9 "$p" 2>/dev/null
	done
	[ -z "$sids" ] && exit 0
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = "$self" ] && continue
		read -r st < "$d/stat" 2>/dev/null || continue
		set -- ${st##*) }
		for s in $sids; do
			[ "$4" = "$s" ] && kill -9 "$p" 2>/dev/null
		done
	done
done
exit 1
`

// Timings of a cancelled exec: how long the kill may take, then how long
// the output streams get to drain before Exec gives up on them.
const (
	killTimeout = 10 * time.Second
	drainGrace  = 2 * time.Second
)

// Exec runs a command in a running container; see runtime.Runtime.
func (d *Docker) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	return d.exec(ctx, id, spec, nil)
}

var _ runtime.TTYExecer = (*Docker)(nil)

// ExecTTY runs a command on a new terminal; see runtime.TTYExecer.
func (d *Docker) ExecTTY(ctx context.Context, id string, spec runtime.ExecSpec, size runtime.TerminalSize, resize <-chan runtime.TerminalSize) (int, error) {
	return d.exec(ctx, id, spec, &ttyOpts{size: size, resize: resize})
}

// ttyOpts are an exec's terminal.
type ttyOpts struct {
	size   runtime.TerminalSize
	resize <-chan runtime.TerminalSize
}

func (d *Docker) exec(ctx context.Context, id string, spec runtime.ExecSpec, tty *ttyOpts) (int, error) {
	if len(spec.Cmd) == 0 {
		return -1, berth.Errorf(berth.Invalid, "exec: empty command")
	}
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	marker, err := newMarker()
	if err != nil {
		return -1, berth.Wrap(berth.Internal, err, "exec: marker")
	}
	env := append(envList(spec.Env), ExecIDEnv+"="+marker)
	opts := client.ExecCreateOptions{
		Cmd:          spec.Cmd,
		Env:          env,
		WorkingDir:   spec.Dir,
		User:         spec.User,
		AttachStdin:  spec.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	}
	var attach client.ExecAttachOptions
	if tty != nil {
		opts.TTY = true
		opts.ConsoleSize = client.ConsoleSize{Height: uint(tty.size.Rows), Width: uint(tty.size.Cols)}
		attach = client.ExecAttachOptions{TTY: true, ConsoleSize: opts.ConsoleSize}
	}
	created, err := d.cli.ExecCreate(ctx, id, opts)
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, translate(err, "exec in container "+id)
	}
	// Attaching starts the command; from here on it may be running.
	hj, err := d.cli.ExecAttach(ctx, created.ID, attach)
	if err != nil {
		if ctx.Err() != nil {
			return -1, errors.Join(ctx.Err(), d.killExec(ctx, id, spec.User, marker))
		}
		return -1, translate(err, "exec in container "+id)
	}
	defer hj.Close()

	stdout, stderr := orDiscard(spec.Stdout), orDiscard(spec.Stderr)
	copied := make(chan error, 1)
	go func() {
		var err error
		if tty != nil {
			// A terminal's output is one raw stream.
			_, err = io.Copy(stdout, hj.Reader)
		} else {
			_, err = stdcopy.StdCopy(stdout, stderr, hj.Reader)
		}
		copied <- err
	}()
	if tty != nil {
		// Engines before API 1.42 ignore the console size of the create:
		// the first size is set like every later one.
		d.resizeTTY(ctx, created.ID, tty.size)
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go d.resizeExec(rctx, created.ID, tty.resize)
	}
	if spec.Stdin != nil {
		// Not waited for: a command may exit without reading its stdin, and
		// a reader that never ends must not hold Exec. Closing hj on return
		// makes the copy fail on its next write.
		go func() {
			_, _ = io.Copy(hj.Conn, spec.Stdin)
			_ = hj.CloseWrite()
		}()
	}

	select {
	case err = <-copied:
	case <-ctx.Done():
		kerr := d.killExec(ctx, id, spec.User, marker)
		select {
		case _ = <-copied: // the copy's error now is only a consequence of the kill
		case <-time.After(drainGrace):
		}
		return -1, errors.Join(ctx.Err(), kerr)
	}
	if err != nil {
		// The stream broke (engine gone) or a writer failed (nobody
		// listens any more): either way the command must not live on.
		kerr := d.killExec(ctx, id, spec.User, marker)
		if ctx.Err() != nil {
			return -1, errors.Join(ctx.Err(), kerr)
		}
		return -1, errors.Join(berth.Wrap(berth.Unavailable, err, "exec in container "+id+": output stream"), kerr)
	}

	// The stream ends when the command's stdio closes; the engine records
	// the exit code a moment later.
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		info, err := d.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return -1, errors.Join(ctx.Err(), d.killExec(ctx, id, spec.User, marker))
			}
			return -1, translate(err, "exec in container "+id)
		}
		if !info.Running {
			return info.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, errors.Join(ctx.Err(), d.killExec(ctx, id, spec.User, marker))
		case <-time.After(delay):
		}
	}
}

// resizeExec passes terminal sizes on to the engine until ctx ends.
func (d *Docker) resizeExec(ctx context.Context, execID string, resize <-chan runtime.TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-resize:
			if !ok {
				return
			}
			d.resizeTTY(ctx, execID, sz)
		}
	}
}

// resizeTTY sets an exec's terminal size. A failed resize leaves the
// terminal as it was; the session goes on.
func (d *Docker) resizeTTY(ctx context.Context, execID string, sz runtime.TerminalSize) {
	if sz.Rows > 0 && sz.Cols > 0 {
		_, _ = d.cli.ExecResize(ctx, execID, client.ExecResizeOptions{Height: uint(sz.Rows), Width: uint(sz.Cols)})
	}
}

// killExec kills every process of the exec marked with marker. It runs on its
// own deadline, detached from ctx, which has usually just ended. Its error is
// joined to what Exec returns (errors.Is still finds ctx.Err()): a paused
// container, for one, cannot be exec'd into until it is resumed.
func (d *Docker) killExec(ctx context.Context, id, user, marker string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	created, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{
		Cmd:  []string{"/bin/sh", "-c", killScript, "berth-kill", ExecIDEnv + "=" + marker},
		User: user,
	})
	if err != nil {
		return translate(err, "kill exec in container "+id)
	}
	hj, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return translate(err, "kill exec in container "+id)
	}
	defer hj.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, hj.Reader)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return translate(err, "kill exec in container "+id)
		}
	case <-ctx.Done():
		return berth.Wrap(berth.Unavailable, ctx.Err(), "kill exec in container "+id+": no answer")
	}
	info, err := d.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return translate(err, "kill exec in container "+id)
	}
	if !info.Running && info.ExitCode != 0 {
		return berth.Errorf(berth.Internal, "kill exec in container %s: the kill script exited %d (processes left after 10 rounds)", id, info.ExitCode)
	}
	return nil
}

func newMarker() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
