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
	created, err := d.cli.ExecCreate(ctx, id, client.ExecCreateOptions{
		Cmd:          spec.Cmd,
		Env:          env,
		WorkingDir:   spec.Dir,
		User:         spec.User,
		AttachStdin:  spec.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, translate(err, "exec in container "+id)
	}
	// Attaching starts the command; from here on it may be running.
	hj, err := d.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
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
		_, err := stdcopy.StdCopy(stdout, stderr, hj.Reader)
		copied <- err
	}()
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
