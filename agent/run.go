package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/sandbox"
)

// Run statuses, as in API.md.
const (
	Queued    = "queued"
	Running   = "running"
	Completed = "completed"
	Failed    = "failed"
	Cancelled = "cancelled"
	TimedOut  = "timed_out"
)

// ReasonInterrupted is the reason of a run that the server's end cut short.
const ReasonInterrupted = "interrupted"

// Terminal reports whether a run in status st has ended.
func Terminal(st string) bool {
	return st == Completed || st == Failed || st == Cancelled || st == TimedOut
}

// Causes of a run's context ending early.
var (
	errCancelled = errors.New("run cancelled")
	errShutdown  = errors.New("server shutting down")
)

// MaxPrompt bounds a prompt: it travels in an environment variable too,
// and Linux refuses a single one over 128 KiB.
const MaxPrompt = 100_000

// Run is the API's run object.
type Run struct {
	RunID         string     `json:"runId" db:"id"`
	ThreadID      string     `json:"threadId" db:"thread_id"`
	AgentID       string     `json:"agentId" db:"agent_id"`
	AgentSlug     string     `json:"agentSlug" db:"agent_slug"`
	AgentVersion  int64      `json:"agentVersion" db:"agent_version"`
	SandboxID     string     `json:"sandboxId" db:"sandbox_id"`
	ExecutionMode string     `json:"executionMode" db:"execution_mode"`
	Status        string     `json:"status" db:"status"`
	StatusReason  string     `json:"statusReason" db:"status_reason"`
	ExitCode      *int       `json:"exitCode" db:"exit_code"`
	Output        string     `json:"output" db:"output"`
	Stderr        string     `json:"stderr" db:"stderr"`
	Truncated     bool       `json:"truncated" db:"truncated"`
	Timeout       int64      `json:"timeout" db:"timeout_ms"`
	DurationMs    int64      `json:"durationMs" db:"duration_ms"`
	OwnerUserID   string     `json:"ownerUserId" db:"owner_user_id"`
	CreatedAt     time.Time  `json:"createdAt" db:"created_at"`
	StartedAt     *time.Time `json:"startedAt" db:"started_at"`
	FinishedAt    *time.Time `json:"finishedAt" db:"finished_at"`

	OrgID  string `json:"-" db:"org_id"`
	Holder string `json:"-" db:"holder"` // the instance executing it (replicas)
}

const runCols = `r.id, r.org_id, r.owner_user_id, r.thread_id, r.agent_id, r.agent_slug, r.agent_version, r.execution_mode,
	r.sandbox_id, r.status, r.status_reason, r.exit_code, r.output, r.stderr, r.truncated, r.timeout_ms, r.duration_ms,
	r.created_at, r.started_at, r.finished_at, r.holder`

func (r *Run) utc() {
	r.CreatedAt = r.CreatedAt.UTC()
	for _, t := range []*time.Time{r.StartedAt, r.FinishedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
}

// Result is the data of a run's result event.
type Result struct {
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	ExitCode   *int   `json:"exitCode"`
	DurationMs int64  `json:"durationMs"`
	Truncated  bool   `json:"truncated"`
}

// StatusData is the data of a status event; it names the run so that a
// streaming client learns early which run to follow or cancel.
type StatusData struct {
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	RunID    string `json:"runId"`
	ThreadID string `json:"threadId"`
}

// RunInput is the body of POST /v1/agents/{slug}/run (and of POST /v1/run,
// which names the agent in Agent).
type RunInput struct {
	Agent    string `json:"agent"`
	Prompt   string `json:"prompt"`
	ThreadID string `json:"threadId"`
	Stream   bool   `json:"stream"`
	Timeout  int64  `json:"timeout"` // ms; default the agent's, else 10 minutes
}

// GetRun returns a visible run: the caller's, or for admins any in the org.
func (s *Service) GetRun(ctx context.Context, id string) (*Run, error) {
	return s.GetRunAs(ctx, id, "agent:read")
}

// GetRunAs is GetRun for a caller holding scope: a key with agent:run gets
// the answer of the run it started without agent:read.
func (s *Service) GetRunAs(ctx context.Context, id, scope string) (*Run, error) {
	c, err := auth.Require(ctx, scope)
	if err != nil {
		return nil, err
	}
	return s.findRun(ctx, c, id)
}

func (s *Service) findRun(ctx context.Context, c *berth.Caller, id string) (*Run, error) {
	where, args := visible("r", c)
	var r Run
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+runCols+` FROM runs r WHERE r.id = ? AND `+where), append([]any{id}, args...)...)
	if err != nil {
		if err = db.Err(err); berth.IsKind(err, berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "run %q not found", id)
		}
		return nil, err
	}
	r.utc()
	return &r, nil
}

// RunEvents lists a visible run's events.
func (s *Service) RunEvents(ctx context.Context, id string, p Page) ([]Event, string, error) {
	r, err := s.GetRun(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return s.page(ctx, r.ThreadID, r.RunID, p)
}

func titleOf(prompt string) string {
	t, _, _ := strings.Cut(strings.TrimSpace(prompt), "\n")
	t = strings.TrimSpace(t)
	if utf8.RuneCountInString(t) > 80 {
		t = string([]rune(t)[:80]) + "…"
	}
	return t
}

// Start queues a run of a visible agent and returns it; it executes in the
// background (Wait and Follow observe it) and outlives the request.
func (s *Service) Start(ctx context.Context, slug string, in RunInput) (*Run, error) {
	c, err := auth.Require(ctx, "agent:run")
	if err != nil {
		return nil, err
	}
	if slug == "" {
		return nil, berth.Errorf(berth.Invalid, "agent is required: the slug of the agent to run")
	}
	if in.Prompt == "" {
		return nil, berth.Errorf(berth.Invalid, "prompt is required")
	}
	if len(in.Prompt) > MaxPrompt || strings.ContainsRune(in.Prompt, 0) {
		return nil, berth.Errorf(berth.Invalid, "prompt must be at most %d bytes without NUL characters", MaxPrompt)
	}
	if in.Timeout < 0 || time.Duration(in.Timeout)*time.Millisecond > MaxTimeout {
		return nil, berth.Errorf(berth.Invalid, "timeout must be between 1 ms and 24 h (in milliseconds)")
	}
	a, err := s.find(ctx, c, slug)
	if err != nil {
		return nil, err
	}
	rctx := runnerContext(ctx, c)
	switch a.ExecutionMode {
	case InSandbox:
		// The runner must see the sandbox; a destroyed one cannot run anything.
		sb, err := s.sbx.Resolve(rctx, a.SandboxID, "sandbox:read")
		if err != nil {
			return nil, err
		}
		if sb.Status == sandbox.Destroyed || sb.Status == sandbox.Destroying {
			return nil, berth.Errorf(berth.Conflict, "agent %q runs in sandbox %q, which is destroyed; link a live sandbox with POST /v1/agents", a.Slug, sb.Name)
		}
	case Managed:
		for _, m := range a.Mounts {
			if _, err := s.ws.Resolve(rctx, m.WorkspaceID, "files:read"); err != nil {
				return nil, err
			}
		}
	}
	timeout := DefaultTimeout
	if a.Timeout > 0 {
		timeout = time.Duration(a.Timeout) * time.Millisecond
	}
	if in.Timeout > 0 {
		timeout = time.Duration(in.Timeout) * time.Millisecond
	}

	now := s.now()
	threadID := in.ThreadID
	if threadID == "" {
		threadID = db.NewID("thr")
		_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO threads (id, org_id, owner_user_id, agent_id, agent_slug, title, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), threadID, c.OrgID, c.UserID, a.ID, a.Slug, titleOf(in.Prompt), now, now)
		if err != nil {
			return nil, db.Err(err)
		}
	} else {
		t, err := s.findThread(ctx, c, threadID)
		if err != nil {
			return nil, err
		}
		if t.AgentSlug != a.Slug {
			return nil, berth.Errorf(berth.Invalid, "thread %q belongs to agent %q, not %q", threadID, t.AgentSlug, a.Slug)
		}
	}
	r := &Run{RunID: db.NewID("run"), ThreadID: threadID, AgentID: a.ID, AgentSlug: a.Slug, AgentVersion: a.Version,
		SandboxID: a.SandboxID, ExecutionMode: a.ExecutionMode, Status: Queued, Timeout: timeout.Milliseconds(),
		OwnerUserID: c.UserID, CreatedAt: now, OrgID: c.OrgID}
	if s.opts.Leases != nil {
		r.Holder = s.opts.Leases.Holder()
	}
	_, err = s.db.NamedExecContext(ctx, `INSERT INTO runs (id, org_id, owner_user_id, thread_id, agent_id, agent_slug, agent_version,
		execution_mode, sandbox_id, status, timeout_ms, created_at, holder)
		VALUES (:id, :org_id, :owner_user_id, :thread_id, :agent_id, :agent_slug, :agent_version, :execution_mode, :sandbox_id,
		:status, :timeout_ms, :created_at, :holder)`, r)
	if err != nil {
		return nil, db.Err(err)
	}

	// From here the run is the service's: it ends with a result whatever
	// happens to the request.
	lctx, cancel := context.WithCancelCause(s.bg)
	lr := &liveRun{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	s.mu.Lock()
	if s.bg.Err() != nil {
		s.mu.Unlock()
		cancel(nil)
		s.finish(ctx, r, Failed, ReasonInterrupted, nil, nil)
		return nil, berth.Errorf(berth.Unavailable, "the server is shutting down")
	}
	s.live[r.RunID] = lr
	s.wg.Add(1)
	s.mu.Unlock()
	if err := s.appendEvent(ctx, threadID, r.RunID, EventPrompt, in.Prompt, nil); err != nil {
		s.log.Warn("store prompt event", "run", r.RunID, "err", err)
	}
	if err := s.appendEvent(ctx, threadID, r.RunID, EventStatus, "", StatusData{Status: Queued, RunID: r.RunID, ThreadID: threadID}); err != nil {
		s.log.Warn("store status event", "run", r.RunID, "err", err)
	}
	go s.execute(runnerContext(lctx, c), lr, a, r, in.Prompt, timeout)
	return r, nil
}

// Wait blocks until a run executing in this process ends (or ctx does).
func (s *Service) Wait(ctx context.Context, runID string) error {
	_, done := s.watch(runID)
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// execute runs r to its end: queue, sandbox, thread file, exec, result.
func (s *Service) execute(ctx context.Context, lr *liveRun, a *Agent, r *Run, prompt string, timeout time.Duration) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.live, r.RunID)
		s.mu.Unlock()
		lr.cancel(nil)
		close(lr.done)
	}()
	ended := func(err error) (string, string) {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelled):
			return Cancelled, "cancelled"
		case errors.Is(cause, errShutdown):
			return Failed, ReasonInterrupted
		}
		return Failed, berth.Message(err)
	}

	keys := []string{"thread:" + r.ThreadID}
	if a.ExecutionMode == InSandbox {
		keys = append(keys, "agent:"+a.ID)
	}
	release, err := s.queue.acquireAll(ctx, keys...)
	if err != nil {
		st, reason := ended(err)
		s.finish(ctx, r, st, reason, nil, nil)
		return
	}
	defer release()
	if s.opts.Leases != nil {
		releaseLeases, err := s.holdAll(ctx, keys)
		if err != nil {
			st, reason := ended(err)
			s.finish(ctx, r, st, reason, nil, nil)
			return
		}
		defer releaseLeases()
	}

	start := s.now()
	// The run is running whatever happens to ctx next: record it so.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	if _, err := s.db.ExecContext(rctx, s.db.Rebind(`UPDATE runs SET status = ?, started_at = ? WHERE id = ?`), Running, start, r.RunID); err != nil {
		s.log.Warn("mark run running", "run", r.RunID, "err", err)
	}
	if err := s.appendEvent(rctx, r.ThreadID, r.RunID, EventStatus, "", StatusData{Status: Running, RunID: r.RunID, ThreadID: r.ThreadID}); err != nil {
		s.log.Warn("store status event", "run", r.RunID, "err", err)
	}
	rcancel()

	sb, cleanup, err := s.sandboxFor(ctx, a, r)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		st, reason := ended(err)
		if st == Failed && reason != ReasonInterrupted {
			reason = "sandbox: " + reason
		}
		s.finish(ctx, r, st, reason, nil, nil)
		return
	}

	env := map[string]string{}
	for k, v := range a.env {
		env[k] = v
	}
	env["BERTH_PROMPT"] = prompt
	env["BERTH_RUN_ID"] = r.RunID
	env["BERTH_THREAD_ID"] = r.ThreadID
	env["BERTH_AGENT"] = a.Slug
	// The thread's history goes into the sandbox's own filesystem (see
	// writeThreadFile); without a place for it the run goes on, and
	// BERTH_THREAD_FILE is unset.
	threadFile, err := s.writeThreadFile(ctx, sb, r.ThreadID, r.RunID)
	if err != nil {
		s.log.Warn("no thread file for the run", "run", r.RunID, "sandbox", sb.ID, "err", err)
	} else {
		env["BERTH_THREAD_FILE"] = threadFile
		if a.ExecutionMode == InSandbox {
			defer func() {
				if err := s.removeThreadDir(ctx, sb, threadFile); err != nil {
					s.log.Warn("remove the run's thread file", "run", r.RunID, "sandbox", sb.ID, "err", err)
				}
			}()
		}
	}

	out := &output{s: s, ctx: context.WithoutCancel(ctx), threadID: r.ThreadID, runID: r.RunID}
	req := sandbox.ExecRequest{Argv: a.Command, Timeout: timeout, Env: env, Stdin: strings.NewReader(prompt)}
	res, err := s.sbx.ExecIn(ctx, sb, req, out.writer(EventStdout), out.writer(EventStderr))
	out.close()
	st, reason := Completed, ""
	var code *int
	switch {
	case err == nil && res.TimedOut:
		st, reason = TimedOut, fmt.Sprintf("timed out after %d ms", timeout.Milliseconds())
	case err == nil:
		code = &res.ExitCode
		if res.ExitCode != 0 {
			st, reason = Failed, fmt.Sprintf("exit code %d", res.ExitCode)
		}
	default:
		st, reason = ended(err)
	}
	s.finish(ctx, r, st, reason, code, out)
}

// sandboxFor returns the sandbox a run executes in. For a managed agent it
// creates one, and cleanup destroys it (also when the run fails, times out
// or is cancelled).
func (s *Service) sandboxFor(ctx context.Context, a *Agent, r *Run) (*sandbox.Sandbox, func(), error) {
	if a.ExecutionMode == InSandbox {
		// Load afresh: the sandbox may have been paused while we queued.
		sb, err := s.sbx.Resolve(ctx, a.SandboxID, "sandbox:read")
		return sb, nil, err
	}
	sb, err := s.sbx.Create(ctx, sandbox.CreateInput{Template: a.Template, Mounts: a.Mounts, Tags: []string{"agent-run"},
		Metadata: map[string]string{"berth.agent": a.Slug, "berth.run": r.RunID}}, false)
	if err != nil {
		return nil, nil, err
	}
	r.SandboxID = sb.ID
	// Recorded even if the run is being cancelled: recovery after a crash
	// finds the sandbox to destroy through this column.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer rcancel()
	if _, err := s.db.ExecContext(rctx, s.db.Rebind(`UPDATE runs SET sandbox_id = ? WHERE id = ?`), sb.ID, r.RunID); err != nil {
		s.log.Warn("record a managed agent's sandbox", "run", r.RunID, "sandbox", sb.ID, "err", db.Err(err))
	}
	cleanup := func() {
		// ctx's values (the caller) without its cancellation.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if _, err := s.sbx.Destroy(dctx, sb.ID); err != nil {
			s.log.Warn("destroy a managed agent's sandbox", "run", r.RunID, "sandbox", sb.ID, "err", err)
		}
	}
	return sb, cleanup, nil
}

// recordTimeout bounds each write that records a run's progress or end; the
// writes run without the run's cancellation, since a cancelled or
// interrupted run must still be recorded as such.
const recordTimeout = 30 * time.Second

// finish records how a run ended and appends its last status and result
// events. Only a queued or running run is finished. It runs without ctx's
// cancellation, within recordTimeout.
func (s *Service) finish(ctx context.Context, r *Run, status, reason string, code *int, out *output) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := s.now()
	var stdout, stderr string
	truncated := false
	if out != nil {
		out.mu.Lock()
		stdout, stderr = clean(out.stdout.b.String()), clean(out.stderr.b.String())
		truncated = out.stdout.truncated || out.stderr.truncated || out.eventsTruncated
		out.mu.Unlock()
	}
	var dur int64
	var t struct {
		Started *time.Time `db:"started_at"`
		Created time.Time  `db:"created_at"`
	}
	if err := s.db.GetContext(ctx, &t, s.db.Rebind(`SELECT started_at, created_at FROM runs WHERE id = ?`), r.RunID); err == nil {
		if t.Started != nil {
			dur = now.Sub(*t.Started).Milliseconds()
		}
	}
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE runs SET status = ?, status_reason = ?, exit_code = ?, output = ?, stderr = ?,
		truncated = ?, duration_ms = ?, finished_at = ? WHERE id = ? AND status IN ('queued', 'running')`),
		status, reason, code, stdout, stderr, truncated, dur, now, r.RunID)
	if err != nil {
		s.log.Warn("record run result", "run", r.RunID, "err", err)
		return
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return
	}
	if err := errors.Join(
		s.appendEvent(ctx, r.ThreadID, r.RunID, EventStatus, "", StatusData{Status: status, Reason: reason, RunID: r.RunID, ThreadID: r.ThreadID}),
		s.appendEvent(ctx, r.ThreadID, r.RunID, EventResult, "", Result{Status: status, Reason: reason, ExitCode: code, DurationMs: dur, Truncated: truncated}),
	); err != nil {
		s.log.Warn("store a run's end events", "run", r.RunID, "err", err)
	}
}

// Cancel stops a visible run: a queued run leaves its queue, a running one
// has its process killed. It answers once the run has ended.
func (s *Service) Cancel(ctx context.Context, id string) (*Run, error) {
	c, err := auth.Require(ctx, "agent:run")
	if err != nil {
		return nil, err
	}
	r, err := s.findRun(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if Terminal(r.Status) {
		return nil, berth.Errorf(berth.Conflict, "run %q has already ended: %s", id, r.Status)
	}
	s.mu.Lock()
	lr := s.live[r.RunID]
	s.mu.Unlock()
	switch {
	case lr == nil && s.opts.Leases != nil && r.Holder != s.opts.Leases.Holder():
		// Executing on another server (or its server died): ask it, and
		// wait until the run ends; the leader ends it if its server is gone.
		if _, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, cancelChannel, r.RunID); err != nil {
			return nil, db.Err(err)
		}
		wctx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		remote, unwake := s.wake(r.RunID)
		defer unwake()
		poll := time.NewTicker(time.Second)
		defer poll.Stop()
		for {
			cur, err := s.findRun(ctx, c, id)
			if err != nil || Terminal(cur.Status) {
				return cur, err
			}
			select {
			case <-remote:
			case <-poll.C:
			case <-wctx.Done():
				return cur, nil
			}
		}
	case lr == nil:
		// Not executing here (its process is gone): record the end.
		s.finish(ctx, r, Cancelled, "cancelled", nil, nil)
	default:
		lr.cancel(errCancelled)
		wctx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		select {
		case <-lr.done:
		case <-wctx.Done():
		}
	}
	return s.findRun(ctx, c, id)
}

// recoverInterrupted ends the runs a previous process left queued or
// running, and destroys the sandboxes it made for managed ones. With
// replicas, only runs whose server is gone (its process lease expired) are
// ended: another live server's runs are its own.
func (s *Service) recoverInterrupted(ctx context.Context) error {
	var runs []Run
	q := `SELECT ` + runCols + ` FROM runs r WHERE r.status IN ('queued', 'running')`
	var args []any
	if l := s.opts.Leases; l != nil {
		q += ` AND r.holder <> ? AND NOT ` + l.Alive("r.holder")
		args = append(args, l.Holder())
	}
	if err := s.db.SelectContext(ctx, &runs, s.db.Rebind(q), args...); err != nil {
		return db.Err(err)
	}
	for i := range runs {
		r := &runs[i]
		s.finish(ctx, r, Failed, ReasonInterrupted, nil, nil)
		if r.ExecutionMode != Managed || r.SandboxID == "" {
			continue
		}
		caller := &berth.Caller{UserID: r.OwnerUserID, OrgID: r.OrgID, Role: berth.RoleAdmin, Scopes: []string{"sandbox:write"}}
		s.wg.Add(1)
		go func(id string) {
			defer s.wg.Done()
			dctx, cancel := context.WithTimeout(berth.WithCaller(s.bg, caller), 2*time.Minute)
			defer cancel()
			if _, err := s.sbx.Destroy(dctx, id); err != nil && !berth.IsKind(err, berth.Conflict) {
				s.log.Warn("destroy an interrupted managed run's sandbox", "sandbox", id, "err", err)
			}
		}(r.SandboxID)
	}
	if len(runs) > 0 {
		s.log.Info("marked interrupted runs failed", "count", len(runs))
	}
	return nil
}
