package sandbox

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/supervisor"
)

// TerminalSession is a running terminal: its input, its size, and Wait,
// which streams its output to out until it ends and returns its exit code
// (-1 and ctx's error when ctx ends first, which kills it).
type TerminalSession interface {
	Write(p []byte) (int, error)
	Resize(rows, cols uint16) error
	Wait(ctx context.Context, out io.Writer) (int, error)
}

// TerminalRequest is an interactive session on a pseudo-terminal.
type TerminalRequest struct {
	Argv       []string // default: /bin/sh
	Cwd        string   // "" = the sandbox's working directory
	Rows, Cols uint16   // first size; 0 = 24×80
}

// Terminal runs req on a new pseudo-terminal in a visible sandbox (resuming
// it if paused) and calls fn with the session while it runs: fn relays
// input, resizes and output, and returns once the session has ended (its
// Wait returned) or its client went away. The session counts as an exec in
// flight (idle pause leaves the sandbox be) and ends, killed, when ctx
// does or the sandbox is cut off (its owner lost access). Terminals go
// through the sandbox's supervisor; a sandbox without one (or whose
// supervisor does not answer) gets one through the engine's exec, when the
// backend can (runtime.TTYExecer), else NotSupported.
func (m *Manager) Terminal(ctx context.Context, idOrName string, req TerminalRequest, fn func(ctx context.Context, s TerminalSession) error) error {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return err
	}
	if len(req.Argv) == 0 {
		req.Argv = []string{"/bin/sh"}
	}
	if req.Cwd != "" && (!strings.HasPrefix(req.Cwd, "/") || strings.ContainsRune(req.Cwd, 0)) {
		return berth.Errorf(berth.Invalid, "cwd must be an absolute path")
	}
	for _, a := range req.Argv {
		if strings.ContainsRune(a, 0) {
			return berth.Errorf(berth.Invalid, "command contains a NUL byte")
		}
	}
	if req.Rows == 0 || req.Cols == 0 {
		req.Rows, req.Cols = 24, 80
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return err
	}
	cctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	s, done, err := m.startExec(cctx, s, cut)
	if err != nil {
		return err
	}
	defer done()
	m.touch(ctx, s.ID)
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		m.touch(tctx, s.ID)
	}()
	err = berth.Errorf(berth.NotSupported, "terminals need the sandbox supervisor, which this server runs without")
	if m.sup != nil {
		var sess *supervisor.Session
		sess, err = m.sup.StartTTY(cctx, s.containerID, supervisor.Request{Cmd: req.Argv, Dir: req.Cwd, Rows: req.Rows, Cols: req.Cols})
		if err == nil {
			defer func() { _ = sess.Close() }()
			return fn(cctx, supervisedTerminal{sess})
		}
	}
	if cause := context.Cause(cctx); cctx.Err() != nil && ctx.Err() == nil {
		return cause
	}
	tty, ok := m.base.(runtime.TTYExecer)
	if !ok || !(berth.IsKind(err, berth.NotSupported) || berth.IsKind(err, berth.Unavailable)) {
		return err
	}
	if m.sup != nil {
		m.log.Warn("terminal through the engine's exec", "sandbox", s.ID, "why", err)
	}
	et := &engineTerminal{rt: tty, scrub: m.scrub, id: s.containerID, req: req, resize: make(chan runtime.TerminalSize, 8)}
	et.in, et.inW = io.Pipe()
	defer func() { _ = et.inW.Close() }()
	return fn(cctx, et)
}

// supervisedTerminal is a terminal through the sandbox's supervisor.
type supervisedTerminal struct{ *supervisor.Session }

func (t supervisedTerminal) Wait(ctx context.Context, out io.Writer) (int, error) {
	return t.Session.Wait(ctx, out, nil)
}

// engineTerminal is a terminal through the engine's exec, for a sandbox
// without a supervisor.
type engineTerminal struct {
	rt     runtime.TTYExecer
	scrub  func(error) error
	id     string
	req    TerminalRequest
	in     *io.PipeReader
	inW    *io.PipeWriter
	resize chan runtime.TerminalSize
}

func (t *engineTerminal) Write(p []byte) (int, error) { return t.inW.Write(p) }

func (t *engineTerminal) Resize(rows, cols uint16) error {
	select {
	case t.resize <- runtime.TerminalSize{Rows: rows, Cols: cols}:
	default: // a burst of resizes: the next one brings the size
	}
	return nil
}

func (t *engineTerminal) Wait(ctx context.Context, out io.Writer) (int, error) {
	code, err := t.rt.ExecTTY(ctx, t.id, runtime.ExecSpec{Cmd: t.req.Argv, Dir: t.req.Cwd, Stdin: t.in, Stdout: out},
		runtime.TerminalSize{Rows: t.req.Rows, Cols: t.req.Cols}, t.resize)
	// Whoever still writes input gets an error rather than blocking.
	_ = t.in.Close()
	return code, t.scrub(err)
}
