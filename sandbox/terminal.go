package sandbox

import (
	"context"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/supervisor"
)

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
// through the sandbox's supervisor: a sandbox created without one is
// NotSupported.
func (m *Manager) Terminal(ctx context.Context, idOrName string, req TerminalRequest, fn func(ctx context.Context, s *supervisor.Session) error) error {
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
	if m.sup == nil {
		return berth.Errorf(berth.NotSupported, "terminals need the sandbox supervisor, which this server runs without")
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
	sess, err := m.sup.StartTTY(cctx, s.containerID, supervisor.Request{Cmd: req.Argv, Dir: req.Cwd, Rows: req.Rows, Cols: req.Cols})
	if err != nil {
		if cause := context.Cause(cctx); cctx.Err() != nil && ctx.Err() == nil {
			return cause
		}
		return err
	}
	defer func() { _ = sess.Close() }()
	return fn(cctx, sess)
}
