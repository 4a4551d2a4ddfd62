// Package agent holds agents, their runs and their threads. An agent is a
// command with a place to run it: in one linked sandbox (in_sandbox), or in
// a fresh sandbox made from a template for each run and destroyed after it
// (managed). Runs go through the sandbox manager's exec; every event of a
// run (prompt, status changes, output, result) is stored in order on its
// thread and mirrored as JSONL into the first workspace mount, so that an
// agent can read its own history across runs and sandboxes.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/sandbox"
	"github.com/berth-dev/berth/templates"
	"github.com/berth-dev/berth/workspace"
)

// Execution modes.
const (
	InSandbox = "in_sandbox"
	Managed   = "managed"
)

// Run timeouts.
const (
	DefaultTimeout = 10 * time.Minute
	MaxTimeout     = 24 * time.Hour
)

// Agent is the API's agent object. Env lists variable names only.
type Agent struct {
	ID            string          `json:"id"`
	Slug          string          `json:"slug"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	ExecutionMode string          `json:"executionMode"`
	SandboxID     string          `json:"sandboxId"`
	Template      string          `json:"template"`
	Mounts        []sandbox.Mount `json:"mounts"`
	Command       []string        `json:"command"`
	Env           []string        `json:"env"`
	Timeout       int64           `json:"timeout"`
	Version       int64           `json:"version"`
	OwnerUserID   string          `json:"ownerUserId"`
	Endpoint      string          `json:"endpoint"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`

	orgID string
	env   map[string]string
}

type agentRow struct {
	ID            string    `db:"id"`
	OrgID         string    `db:"org_id"`
	OwnerUserID   string    `db:"owner_user_id"`
	Slug          string    `db:"slug"`
	Name          string    `db:"name"`
	Description   string    `db:"description"`
	ExecutionMode string    `db:"execution_mode"`
	SandboxID     string    `db:"sandbox_id"`
	Template      string    `db:"template"`
	Command       string    `db:"command"`
	Env           string    `db:"env"`
	TimeoutMs     int64     `db:"timeout_ms"`
	Version       int64     `db:"version"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
}

const agentCols = `a.id, a.org_id, a.owner_user_id, a.slug, a.name, a.description, a.execution_mode, a.sandbox_id,
	a.template, a.command, a.env, a.timeout_ms, a.version, a.created_at, a.updated_at`

// Input is the body of POST /v1/agents.
type Input struct {
	Slug          string            `json:"slug"`
	Name          string            `json:"name"`
	Description   string            `json:"description"`
	ExecutionMode string            `json:"executionMode"`
	Sandbox       string            `json:"sandbox"`
	Template      string            `json:"template"`
	Mounts        []sandbox.Mount   `json:"mounts"`
	Command       json.RawMessage   `json:"command"`
	Env           map[string]string `json:"env"`
	Timeout       int64             `json:"timeout"`
}

// Upserted is the answer of POST /v1/agents.
type Upserted struct {
	ID        string `json:"id"`
	Slug      string `json:"slug"`
	Action    string `json:"action"` // created or updated
	Version   int64  `json:"version"`
	SandboxID string `json:"sandboxId"`
	Endpoint  string `json:"endpoint"`
}

// Options set the service up to share its database with other servers.
type Options struct {
	// Leases (servers started with --replicas): runs record the instance
	// executing them, a run whose instance died is marked interrupted by
	// the leader (not by every server that starts), runs of one agent or
	// thread take turns across servers, and events wake live streams on
	// every server through PostgreSQL notifications. Nil: this server is
	// the database's only one, and every queued or running run found at
	// start-up is a previous process's.
	Leases *db.Leases
	// Leader says whether this server runs the singleton work now.
	Leader func() bool
	// RecoverInterval is how often the leader looks for runs of dead
	// servers (default 10s).
	RecoverInterval time.Duration
}

// Service stores agents, runs and threads and executes runs.
type Service struct {
	db   *db.DB
	sbx  *sandbox.Manager
	ws   *workspace.Service
	log  *slog.Logger
	now  func() time.Time
	opts Options

	// wakers are the live streams of this process by run, woken by
	// notifications of events stored on other servers.
	wakeMu     sync.Mutex
	wakers     map[string]map[chan struct{}]struct{}
	listener   *db.Listener
	listenOnce sync.Once

	queue queue

	mu   sync.Mutex
	live map[string]*liveRun // run id → the run executing in this process

	bg       context.Context
	stop     context.CancelCauseFunc
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New returns the service. Runs that were queued or running when the last
// process ended can never finish: New marks them failed ("interrupted").
func New(ctx context.Context, d *db.DB, sbx *sandbox.Manager, ws *workspace.Service, log *slog.Logger, opts Options) (*Service, error) {
	if opts.RecoverInterval <= 0 {
		opts.RecoverInterval = 10 * time.Second
	}
	s := &Service{db: d, sbx: sbx, ws: ws, log: log, live: map[string]*liveRun{}, opts: opts,
		wakers: map[string]map[chan struct{}]struct{}{},
		now:    func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	s.bg, s.stop = context.WithCancelCause(context.Background())
	if s.leader() {
		if err := s.recoverInterrupted(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Leases != nil {
		l, err := d.Listen([]string{eventsChannel, cancelChannel}, s.notified, func(err error) { log.Warn("run event notifications", "err", err) })
		if err != nil {
			return nil, err
		}
		s.listener = l
		s.wg.Add(1)
		go s.recoverLoop()
	}
	ws.AddUsageSource(s.workspaceUsage)
	return s, nil
}

func (s *Service) leader() bool { return s.opts.Leader == nil || s.opts.Leader() }

// recoverLoop ends, on the leader, the runs of servers that died.
func (s *Service) recoverLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RecoverInterval)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		if !s.leader() {
			continue
		}
		if err := s.recoverInterrupted(s.bg); err != nil && s.bg.Err() == nil {
			s.log.Warn("recover the runs of stopped servers", "err", err)
		}
	}
}

// Close interrupts the runs in flight (they end failed, "interrupted") and
// waits for them to settle. It may be called more than once.
func (s *Service) Close() {
	s.stopOnce.Do(func() { s.stop(errShutdown) })
	s.wg.Wait()
	s.listenOnce.Do(func() {
		if s.listener == nil {
			return
		}
		if err := s.listener.Close(); err != nil {
			s.log.Warn("close run event notifications", "err", err)
		}
	})
}

// runnerContext is ctx acting for the same user with the scopes a run
// needs below the agent API: a key with agent:run may run an agent, and the
// run makes, execs in and destroys sandboxes and mounts workspaces for it.
// The role is unchanged, so visibility is exactly the user's.
func runnerContext(ctx context.Context, c *berth.Caller) context.Context {
	rc := *c
	rc.Scopes = []string{"sandbox:create", "sandbox:read", "sandbox:write", "files:read", "files:write", "agent:run"}
	return berth.WithCaller(ctx, &rc)
}

func endpoint(slug string) string { return "/v1/agents/" + slug + "/run" }

// visible restricts a (agents) to what c may see: admins the org, members
// their own.
func visible(alias string, c *berth.Caller) (string, []any) {
	if c.IsAdmin() {
		return alias + `.org_id = ?`, []any{c.OrgID}
	}
	return alias + `.org_id = ? AND ` + alias + `.owner_user_id = ?`, []any{c.OrgID, c.UserID}
}

func (s *Service) hydrate(ctx context.Context, q sqlx.QueryerContext, rows []agentRow) ([]Agent, error) {
	out := make([]Agent, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	idx := map[string]int{}
	ids := make([]string, len(rows))
	for i, r := range rows {
		a := Agent{ID: r.ID, Slug: r.Slug, Name: r.Name, Description: r.Description, ExecutionMode: r.ExecutionMode,
			SandboxID: r.SandboxID, Template: r.Template, Mounts: []sandbox.Mount{}, Command: []string{}, Env: []string{},
			Timeout: r.TimeoutMs, Version: r.Version, OwnerUserID: r.OwnerUserID, Endpoint: endpoint(r.Slug),
			CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), orgID: r.OrgID, env: map[string]string{}}
		// A column that does not decode is a corrupt row: report it rather
		// than run the agent with an empty command or environment.
		if err := json.Unmarshal([]byte(r.Command), &a.Command); err != nil {
			return nil, berth.Wrap(berth.Internal, err, "agent "+r.ID+": stored row: decode command")
		}
		if err := json.Unmarshal([]byte(r.Env), &a.env); err != nil {
			return nil, berth.Wrap(berth.Internal, err, "agent "+r.ID+": stored row: decode env")
		}
		for k := range a.env {
			a.Env = append(a.Env, k)
		}
		sort.Strings(a.Env)
		out[i] = a
		idx[r.ID] = i
		ids[i] = r.ID
	}
	query, args, err := sqlx.In(`SELECT agent_id, workspace_id, path, read_only FROM agent_mounts WHERE agent_id IN (?) ORDER BY path`, ids)
	if err != nil {
		return nil, err
	}
	var mounts []struct {
		AgentID string `db:"agent_id"`
		sandbox.Mount
	}
	if err := sqlx.SelectContext(ctx, q, &mounts, s.db.Rebind(query), args...); err != nil {
		return nil, db.Err(err)
	}
	for _, m := range mounts {
		a := &out[idx[m.AgentID]]
		a.Mounts = append(a.Mounts, m.Mount)
	}
	return out, nil
}

// find loads the agent with slug that c may see, or NotFound.
func (s *Service) find(ctx context.Context, c *berth.Caller, slug string) (*Agent, error) {
	where, args := visible("a", c)
	var r agentRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+agentCols+` FROM agents a WHERE a.slug = ? AND `+where), append([]any{slug}, args...)...)
	if err != nil {
		if err = db.Err(err); berth.IsKind(err, berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "agent %q not found", slug)
		}
		return nil, err
	}
	as, err := s.hydrate(ctx, s.db, []agentRow{r})
	if err != nil {
		return nil, err
	}
	return &as[0], nil
}

// Get returns one visible agent by slug.
func (s *Service) Get(ctx context.Context, slug string) (*Agent, error) {
	c, err := auth.Require(ctx, "agent:read")
	if err != nil {
		return nil, err
	}
	return s.find(ctx, c, slug)
}

// List returns the caller's agents, or with all (admins) the org's: at most
// limit (0: the default) after cursor, oldest first, and the next page's
// cursor ("" on the last).
func (s *Service) List(ctx context.Context, all bool, limit int, cursor string) ([]Agent, string, error) {
	c, err := auth.Require(ctx, "agent:read")
	if err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	where, args := `a.org_id = ? AND a.owner_user_id = ?`, []any{c.OrgID, c.UserID}
	if all {
		if !c.IsAdmin() {
			return nil, "", berth.Errorf(berth.Forbidden, "only organization admins may list every agent (all=true)")
		}
		where, args = `a.org_id = ?`, []any{c.OrgID}
	}
	if cond, cargs, ok := page.Where("a"); ok {
		where += ` AND ` + cond
		args = append(args, cargs...)
	}
	var rows []agentRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+agentCols+` FROM agents a WHERE `+where+page.OrderLimit("a")), args...); err != nil {
		return nil, "", db.Err(err)
	}
	rows, next := db.Trim(page, rows, func(r agentRow) (time.Time, string) { return r.CreatedAt, r.ID })
	as, err := s.hydrate(ctx, s.db, rows)
	return as, next, err
}

// validate checks an upsert and resolves its sandbox; it returns the argv
// and, for in_sandbox, the sandbox id.
func (s *Service) validate(ctx context.Context, c *berth.Caller, in *Input) ([]string, string, error) {
	if err := workspace.ValidSlug(in.Slug); err != nil {
		return nil, "", berth.WithField(err, "slug")
	}
	in.Name = strings.TrimSpace(in.Name)
	if len(in.Name) > 200 || len(in.Description) > 4000 || strings.ContainsAny(in.Name, "\x00\n\r") || strings.ContainsRune(in.Description, 0) {
		return nil, "", berth.FieldErrorf(berth.Invalid, "name", "name is at most 200 characters without control characters; description at most 4000")
	}
	if len(in.Command) == 0 || string(in.Command) == "null" {
		return nil, "", berth.FieldErrorf(berth.Invalid, "command", "command is required: an argv array such as [\"/bin/sh\", \"-c\", \"...\"]")
	}
	if len(in.Env) > 256 {
		return nil, "", berth.FieldErrorf(berth.Invalid, "env", "at most 256 environment variables")
	}
	for k, v := range in.Env {
		if len(v) > 64<<10 {
			return nil, "", berth.FieldErrorf(berth.Invalid, "env", "environment variable %s: value exceeds 64 KiB", k)
		}
	}
	// ParseExec checks the command and env exactly as an exec would.
	req, err := sandbox.ParseExec(sandbox.ExecInput{Command: in.Command, Env: in.Env})
	if err != nil {
		// ParseExec checks only the command and the environment.
		f := "command"
		if strings.HasPrefix(berth.Message(err), "environment") {
			f = "env"
		}
		return nil, "", berth.WithField(err, f)
	}
	if in.Timeout < 0 || time.Duration(in.Timeout)*time.Millisecond > MaxTimeout {
		return nil, "", berth.FieldErrorf(berth.Invalid, "timeout", "timeout must be between 1 ms and 24 h (in milliseconds; 0 or absent: 10 minutes)")
	}
	switch in.ExecutionMode {
	case InSandbox:
		if in.Sandbox == "" {
			return nil, "", berth.FieldErrorf(berth.Invalid, "sandbox", "an in_sandbox agent needs a sandbox (id or name)")
		}
		if in.Template != "" || len(in.Mounts) > 0 {
			return nil, "", berth.FieldErrorf(berth.Invalid, "template", "template and mounts are for managed agents; an in_sandbox agent runs in its sandbox")
		}
		if err := definerHolds(c, "sandbox:write", "an in_sandbox agent runs its command in the sandbox"); err != nil {
			return nil, "", err
		}
		sb, err := s.sbx.Resolve(runnerContext(ctx, c), in.Sandbox, "sandbox:read")
		if err != nil {
			return nil, "", berth.WithField(err, "sandbox")
		}
		if sb.Status == sandbox.Destroyed || sb.Status == sandbox.Destroying {
			return nil, "", berth.FieldErrorf(berth.Invalid, "sandbox", "sandbox %q is destroyed; link a live sandbox", in.Sandbox)
		}
		return req.Argv, sb.ID, nil
	case Managed:
		if in.Template == "" {
			return nil, "", berth.FieldErrorf(berth.Invalid, "template", "a managed agent needs a template")
		}
		if in.Sandbox != "" {
			return nil, "", berth.FieldErrorf(berth.Invalid, "sandbox", "sandbox is for in_sandbox agents; a managed agent gets a fresh sandbox per run")
		}
		if _, err := templates.Get(in.Template); err != nil {
			if berth.IsKind(err, berth.NotFound) {
				return nil, "", berth.FieldErrorf(berth.Invalid, "template", "unknown template %q", in.Template)
			}
			return nil, "", err
		}
		if len(in.Mounts) > 32 {
			return nil, "", berth.FieldErrorf(berth.Invalid, "mounts", "at most 32 mounts")
		}
		if err := definerHolds(c, "sandbox:create", "a managed agent creates a sandbox for each run"); err != nil {
			return nil, "", err
		}
		seen := map[string]bool{}
		rctx := runnerContext(ctx, c)
		for i, m := range in.Mounts {
			at := func(f string) string { return fmt.Sprintf("mounts[%d].%s", i, f) }
			if err := sandbox.ValidMountPath(m.Path); err != nil {
				return nil, "", berth.WithField(err, at("path"))
			}
			if seen[m.Path] {
				return nil, "", berth.FieldErrorf(berth.Invalid, at("path"), "mount path %q appears twice", m.Path)
			}
			seen[m.Path] = true
			if m.WorkspaceID == "" {
				return nil, "", berth.FieldErrorf(berth.Invalid, at("workspaceId"), "mount %q needs a workspaceId", m.Path)
			}
			w, err := s.ws.Resolve(rctx, m.WorkspaceID, "files:read")
			if err != nil {
				return nil, "", berth.WithField(err, at("workspaceId"))
			}
			if w.IsPersonal {
				return nil, "", berth.FieldErrorf(berth.Invalid, at("workspaceId"), "workspace %q is personal and cannot be mounted into a sandbox", w.Slug)
			}
			need := "files:write"
			if m.ReadOnly {
				need = "files:read"
			}
			if err := definerHolds(c, need, "the agent's runs mount workspace "+w.Slug); err != nil {
				return nil, "", berth.WithField(err, at("readOnly"))
			}
		}
		sort.Slice(in.Mounts, func(i, j int) bool { return in.Mounts[i].Path < in.Mounts[j].Path })
		return req.Argv, "", nil
	case "":
		return nil, "", berth.FieldErrorf(berth.Invalid, "executionMode", "executionMode is required: \"in_sandbox\" or \"managed\"")
	}
	return nil, "", berth.FieldErrorf(berth.Invalid, "executionMode", "executionMode must be \"in_sandbox\" or \"managed\", not %q", in.ExecutionMode)
}

// definerHolds checks that the key defining an agent holds scope. Runs
// execute with the sandbox and files scopes of runnerContext (a key with only
// agent:run may run an agent), so the definition is where those powers are
// granted: a key may not define an agent that does more than the key could
// do itself, or an agent:* key would exec in every sandbox and write every
// workspace of its user.
func definerHolds(c *berth.Caller, scope, why string) error {
	if !auth.Allows(c.Scopes, scope) {
		return berth.Errorf(berth.Forbidden, "%s: the calling key needs the %q scope", why, scope)
	}
	return nil
}

// Upsert creates the agent with in.Slug or replaces the definition of the
// caller's (or, for admins, any) agent with that slug, bumping its version.
func (s *Service) Upsert(ctx context.Context, in Input) (*Upserted, error) {
	c, err := auth.Require(ctx, "agent:write")
	if err != nil {
		return nil, err
	}
	argv, sandboxID, err := s.validate(ctx, c, &in)
	if err != nil {
		return nil, err
	}
	if in.Env == nil {
		in.Env = map[string]string{}
	}
	cj, _ := json.Marshal(argv)
	ej, _ := json.Marshal(in.Env)
	now := s.now()
	out := &Upserted{Slug: in.Slug, SandboxID: sandboxID, Endpoint: endpoint(in.Slug)}
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		var cur struct {
			ID      string `db:"id"`
			Owner   string `db:"owner_user_id"`
			Version int64  `db:"version"`
		}
		err := tx.GetContext(ctx, &cur, tx.Rebind(`SELECT id, owner_user_id, version FROM agents WHERE org_id = ? AND slug = ?`), c.OrgID, in.Slug)
		switch err = db.Err(err); {
		case berth.IsKind(err, berth.NotFound):
			out.ID, out.Action, out.Version = db.NewID("agt"), "created", 1
			_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO agents (id, org_id, owner_user_id, slug, name, description,
				execution_mode, sandbox_id, template, command, env, timeout_ms, version, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				out.ID, c.OrgID, c.UserID, in.Slug, in.Name, in.Description, in.ExecutionMode, sandboxID, in.Template,
				string(cj), string(ej), in.Timeout, out.Version, now, now)
			if berth.IsKind(db.Err(err), berth.Conflict) {
				return berth.Errorf(berth.Conflict, "an agent with slug %q was just created; retry to update it", in.Slug)
			}
		case err != nil:
			return err
		case cur.Owner != c.UserID && !c.IsAdmin():
			// Slugs are unique per org, so the taken slug cannot be hidden.
			return berth.FieldErrorf(berth.Conflict, "slug", "slug %q is taken by another member's agent", in.Slug)
		default:
			out.ID, out.Action, out.Version = cur.ID, "updated", cur.Version+1
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE agents SET name = ?, description = ?, execution_mode = ?, sandbox_id = ?,
				template = ?, command = ?, env = ?, timeout_ms = ?, version = ?, updated_at = ? WHERE id = ?`),
				in.Name, in.Description, in.ExecutionMode, sandboxID, in.Template, string(cj), string(ej), in.Timeout,
				out.Version, now, cur.ID)
			if err == nil {
				_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM agent_mounts WHERE agent_id = ?`), cur.ID)
			}
		}
		if err != nil {
			return db.Err(err)
		}
		for _, m := range in.Mounts {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO agent_mounts (agent_id, workspace_id, path, read_only) VALUES (?, ?, ?, ?)`),
				out.ID, m.WorkspaceID, m.Path, m.ReadOnly); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes a visible agent. Its threads and runs stay readable; runs
// in flight finish.
func (s *Service) Delete(ctx context.Context, slug string) error {
	c, err := auth.Require(ctx, "agent:write")
	if err != nil {
		return err
	}
	a, err := s.find(ctx, c, slug)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM agents WHERE id = ?`), a.ID)
	return db.Err(err)
}

// workspaceUsage lists the agents that use a workspace: managed agents that
// mount it, and in_sandbox agents whose live sandbox mounts it.
func (s *Service) workspaceUsage(ctx context.Context, wsID string) ([]workspace.MountedSandbox, []workspace.AgentUse, error) {
	var rows []struct {
		ID        string `db:"id"`
		Slug      string `db:"slug"`
		Mode      string `db:"execution_mode"`
		SandboxID string `db:"sandbox_id"`
		Owner     string `db:"owner_user_id"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT a.id, a.slug, a.execution_mode, a.sandbox_id, a.owner_user_id FROM agents a
		WHERE (a.execution_mode = 'managed' AND EXISTS (SELECT 1 FROM agent_mounts m WHERE m.agent_id = a.id AND m.workspace_id = ?))
		   OR (a.execution_mode = 'in_sandbox' AND EXISTS (SELECT 1 FROM sandbox_mounts sm JOIN sandboxes sb ON sb.id = sm.sandbox_id
		       WHERE sm.sandbox_id = a.sandbox_id AND sm.workspace_id = ? AND sb.status <> 'destroyed'))
		ORDER BY a.slug`), wsID, wsID)
	if err != nil {
		return nil, nil, db.Err(err)
	}
	out := make([]workspace.AgentUse, 0, len(rows))
	for _, r := range rows {
		out = append(out, workspace.AgentUse{AgentID: r.ID, Slug: r.Slug, ExecutionMode: r.Mode, SandboxID: r.SandboxID, OwnerUserID: r.Owner})
	}
	return nil, out, nil
}
