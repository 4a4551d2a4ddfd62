package sandbox

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// scrubRuntime is the runtime as the manager sees it: every client-facing
// message of an error from a container operation has the server's host
// paths (the data directory, under which workspaces are bind-mounted)
// replaced, since engine errors quote mount sources ("bind source path does
// not exist: /srv/berth/workspaces/<id>"). This is where runtime errors
// become API errors (directly, or as a sandbox's statusReason); the full
// text stays in the error's cause, which only the server log shows.
type scrubRuntime struct {
	runtime.Runtime
	hide   []string // longest first
	wsHide []string // the workspaces directory, longest first
	log    *slog.Logger
}

var _ runtime.Runtime = (*scrubRuntime)(nil)

// newScrubRuntime wraps rt to hide dataDir and the workspaces directory
// wsRoot (as given and with symlinks resolved: the engine reports the path
// it resolved).
func newScrubRuntime(rt runtime.Runtime, dataDir, wsRoot string, log *slog.Logger) *scrubRuntime {
	return &scrubRuntime{Runtime: rt, hide: hidden(dataDir), wsHide: hidden(wsRoot), log: log}
}

// hidden is dir as given and with symlinks resolved, longest first.
func hidden(dir string) []string {
	hide := []string{filepath.Clean(dir)}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != hide[0] {
		hide = append(hide, real)
	}
	if len(hide) == 2 && len(hide[1]) > len(hide[0]) {
		hide[0], hide[1] = hide[1], hide[0]
	}
	return hide
}

// hostPathMark replaces a hidden host path in messages; a workspace's
// directory becomes "workspace <id>".
const hostPathMark = "<data-dir>"

func (r *scrubRuntime) scrub(err error) error {
	var be *berth.Error
	if !errors.As(err, &be) {
		return err
	}
	msg := be.Msg
	for _, h := range r.wsHide { // --workspaces-dir may be outside the data directory
		msg = strings.ReplaceAll(msg, h+"/", "workspace ")
	}
	for _, h := range r.hide {
		msg = strings.ReplaceAll(msg, h+"/workspaces/", "workspace ")
		msg = strings.ReplaceAll(msg, h, hostPathMark)
	}
	if msg == be.Msg {
		return err
	}
	// The client gets msg; the log keeps what the engine said.
	r.log.Info("engine error (host paths hidden from the client)", "err", err)
	return &berth.Error{Kind: be.Kind, Msg: msg, Err: err}
}

func (r *scrubRuntime) Create(ctx context.Context, spec runtime.Spec) (string, error) {
	id, err := r.Runtime.Create(ctx, spec)
	return id, r.scrub(err)
}

func (r *scrubRuntime) Start(ctx context.Context, id string) error {
	return r.scrub(r.Runtime.Start(ctx, id))
}

func (r *scrubRuntime) Pause(ctx context.Context, id string) error {
	return r.scrub(r.Runtime.Pause(ctx, id))
}

func (r *scrubRuntime) Unpause(ctx context.Context, id string) error {
	return r.scrub(r.Runtime.Unpause(ctx, id))
}

func (r *scrubRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return r.scrub(r.Runtime.Stop(ctx, id, timeout))
}

func (r *scrubRuntime) Remove(ctx context.Context, id string) error {
	return r.scrub(r.Runtime.Remove(ctx, id))
}

func (r *scrubRuntime) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	c, err := r.Runtime.Inspect(ctx, id)
	return c, r.scrub(err)
}

func (r *scrubRuntime) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	code, err := r.Runtime.Exec(ctx, id, spec)
	return code, r.scrub(err)
}
