package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/runtime"
)

// ExecInput is the body of POST /v1/sandboxes/{id}/exec.
type ExecInput struct {
	Command json.RawMessage   `json:"command"` // a string for /bin/sh -c, or an argv array
	Timeout int64             `json:"timeout"` // milliseconds; default 30000
	Cwd     string            `json:"cwd"`
	Env     map[string]string `json:"env"`
	Stdin   *string           `json:"stdin"`
}

// ExecResult is how an exec ended.
type ExecResult struct {
	ExitCode   int   `json:"exitCode"`
	DurationMs int64 `json:"durationMs"`
	TimedOut   bool  `json:"timedOut"`
}

// Exec limits.
const (
	DefaultExecTimeout = 30 * time.Second
	MaxExecTimeout     = 24 * time.Hour
)

// ParseCommand turns the command field into argv: a string runs under
// /bin/sh -c, an array is the argv itself.
func ParseCommand(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, berth.Errorf(berth.Invalid, "command is required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return nil, berth.Errorf(berth.Invalid, "command is empty")
		}
		return []string{"/bin/sh", "-c", s}, nil
	}
	var argv []string
	if err := json.Unmarshal(raw, &argv); err != nil {
		return nil, berth.Errorf(berth.Invalid, "command must be a string or an array of strings")
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, berth.Errorf(berth.Invalid, "command array is empty")
	}
	return argv, nil
}

// ExecRequest is a validated exec.
type ExecRequest struct {
	Argv    []string
	Timeout time.Duration
	Cwd     string
	Env     map[string]string
	Stdin   io.Reader
}

// ParseExec validates an ExecInput.
func ParseExec(in ExecInput) (ExecRequest, error) {
	argv, err := ParseCommand(in.Command)
	if err != nil {
		return ExecRequest{}, err
	}
	r := ExecRequest{Argv: argv, Timeout: DefaultExecTimeout, Cwd: in.Cwd, Env: in.Env}
	if in.Timeout < 0 || time.Duration(in.Timeout)*time.Millisecond > MaxExecTimeout {
		return r, berth.Errorf(berth.Invalid, "timeout must be between 1 ms and 24 h (in milliseconds)")
	}
	if in.Timeout > 0 {
		r.Timeout = time.Duration(in.Timeout) * time.Millisecond
	}
	if r.Cwd != "" && (!strings.HasPrefix(r.Cwd, "/") || strings.ContainsRune(r.Cwd, 0)) {
		return r, berth.Errorf(berth.Invalid, "cwd must be an absolute path")
	}
	for k, v := range r.Env {
		if !envKeyRE.MatchString(k) || strings.ContainsRune(v, 0) {
			return r, berth.Errorf(berth.Invalid, "environment variable %q is invalid", k)
		}
	}
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			return r, berth.Errorf(berth.Invalid, "command contains a NUL byte")
		}
	}
	if in.Stdin != nil {
		r.Stdin = strings.NewReader(*in.Stdin)
	}
	return r, nil
}

// Exec runs a command in a visible sandbox (resuming it if paused), streaming
// its output to stdout and stderr. A timeout kills the command and reports
// TimedOut; a cancelled ctx (client gone) kills it too.
func (m *Manager) Exec(ctx context.Context, idOrName string, req ExecRequest, stdout, stderr io.Writer) (*ExecResult, error) {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return nil, err
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return nil, err
	}
	return m.ExecIn(ctx, s, req, stdout, stderr)
}

// ExecIn is Exec for a sandbox already resolved (agents use it).
func (m *Manager) ExecIn(ctx context.Context, s *Sandbox, req ExecRequest, stdout, stderr io.Writer) (*ExecResult, error) {
	// A running exec is activity for its whole length: idle pause skips
	// sandboxes with execs in flight. Cutting the sandbox off (its owner
	// lost access) cancels cctx with the reason.
	cctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	s, done, err := m.startExec(cctx, s, cut)
	if err != nil {
		return nil, err
	}
	defer done()
	m.touch(ctx, s.ID)
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		m.touch(tctx, s.ID)
	}()
	ectx, cancel := context.WithTimeout(cctx, req.Timeout)
	defer cancel()
	start := time.Now()
	code, err := m.rt.Exec(ectx, s.containerID, runtime.ExecSpec{
		Cmd: req.Argv, Env: req.Env, Dir: req.Cwd, Stdin: req.Stdin, Stdout: stdout, Stderr: stderr,
	})
	res := &ExecResult{ExitCode: code, DurationMs: time.Since(start).Milliseconds()}
	if cause := context.Cause(cctx); cctx.Err() != nil && ctx.Err() == nil {
		// Cut off: the command died with the sandbox, whatever it returned.
		return res, cause
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			res.TimedOut = true
			return res, nil
		}
		if ctx.Err() != nil {
			return res, berth.Wrap(berth.Unavailable, ctx.Err(), "exec cancelled")
		}
		return res, err
	}
	return res, nil
}

// Resolve returns a visible sandbox by id or name for the given scope.
func (m *Manager) Resolve(ctx context.Context, idOrName, scope string) (*Sandbox, error) {
	c, err := auth.Require(ctx, scope)
	if err != nil {
		return nil, err
	}
	return m.find(ctx, c, idOrName)
}
