// Package sandbox is the sandbox manager: the lifecycle state machine over a
// container runtime, validated workspace mounts, exec, idle auto-pause, and
// the reconciler that closes the gap between the database (desired state)
// and the engine (actual state).
package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/supervisor"
	"github.com/berth-dev/berth/templates"
	"github.com/berth-dev/berth/workspace"
)

// Status is a sandbox's lifecycle state.
type Status string

// Statuses, as in API.md.
const (
	Creating   Status = "creating"
	Running    Status = "running"
	Pausing    Status = "pausing"
	Paused     Status = "paused"
	Resuming   Status = "resuming"
	Stopping   Status = "stopping"
	Stopped    Status = "stopped"
	Destroying Status = "destroying"
	Destroyed  Status = "destroyed"
	Error      Status = "error"
)

// Container labels berth sets on every sandbox container.
const (
	LabelSandbox  = "berth.sandbox.id"
	LabelOrg      = "berth.org.id"
	LabelInstance = "berth.instance"
)

// Mount is a workspace mounted into a sandbox.
type Mount struct {
	WorkspaceID string `json:"workspaceId" db:"workspace_id"`
	// SnapshotID mounts that snapshot of the workspace instead of its live
	// tree: always read-only (readOnly may be omitted; false is refused).
	SnapshotID string `json:"snapshotId,omitempty" db:"snapshot_id"`
	Path       string `json:"path" db:"path"`
	ReadOnly   bool   `json:"readOnly" db:"read_only"`

	readOnlySet bool // the request said readOnly (true or false)
	// attached is a mount added to the sandbox after its create (Attach):
	// berth, not the engine, mounts it on every start.
	attached bool
}

// UnmarshalJSON notes whether readOnly was given, so that a snapshot mount
// can refuse an explicit false while an omitted one means read-only.
// Unknown fields are refused as in the rest of a request body.
func (m *Mount) UnmarshalJSON(b []byte) error {
	type plain Mount
	var raw struct {
		plain
		ReadOnly *bool `json:"readOnly"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	*m = Mount(raw.plain)
	if raw.ReadOnly != nil {
		m.ReadOnly, m.readOnlySet = *raw.ReadOnly, true
	}
	return nil
}

// Resources are a sandbox's limits in the API's units. Disk is empty where
// the engine cannot enforce a disk limit (see Limits).
type Resources struct {
	VCPUs  float64 `json:"vcpus,omitempty"`
	Memory string  `json:"memory,omitempty"`
	Disk   string  `json:"disk,omitempty"`
	Pids   int64   `json:"pids,omitempty"`
}

// Sandbox is the API's sandbox object.
type Sandbox struct {
	ID                        string            `json:"id"`
	Name                      string            `json:"name"`
	Status                    Status            `json:"status"`
	StatusReason              string            `json:"statusReason,omitempty"`
	Template                  string            `json:"template"`
	Tags                      []string          `json:"tags"`
	Env                       []string          `json:"env"`
	Resources                 Resources         `json:"resources"`
	Mounts                    []Mount           `json:"mounts"`
	HasWritableWorkspaceMount bool              `json:"hasWritableWorkspaceMount"`
	IdleTimeout               int64             `json:"idleTimeout"`
	Network                   string            `json:"network"`
	Metadata                  map[string]string `json:"metadata"`
	OwnerUserID               string            `json:"ownerUserId"`
	CreatedAt                 time.Time         `json:"createdAt"`
	UpdatedAt                 time.Time         `json:"updatedAt"`
	LastActivityAt            time.Time         `json:"lastActivityAt"`
	IP                        string            `json:"ip"`

	orgID       string
	image       string
	containerID string
}

// row is a sandboxes table row.
type row struct {
	ID             string    `db:"id"`
	OrgID          string    `db:"org_id"`
	OwnerUserID    string    `db:"owner_user_id"`
	Name           string    `db:"name"`
	Template       string    `db:"template"`
	Image          string    `db:"image"`
	Status         Status    `db:"status"`
	StatusReason   string    `db:"status_reason"`
	EnvKeys        string    `db:"env_keys"`
	Resources      string    `db:"resources"`
	Metadata       string    `db:"metadata"`
	IdleTimeout    int64     `db:"idle_timeout"`
	Network        string    `db:"network"`
	ContainerID    string    `db:"container_id"`
	IP             string    `db:"ip"`
	CreatedAt      time.Time `db:"created_at"`
	UpdatedAt      time.Time `db:"updated_at"`
	LastActivityAt time.Time `db:"last_activity_at"`
}

const sbxCols = `s.id, s.org_id, s.owner_user_id, s.name, s.template, s.image, s.status, s.status_reason,
	s.env_keys, s.resources, s.metadata, s.idle_timeout, s.network, s.container_id, s.ip,
	s.created_at, s.updated_at, s.last_activity_at`

// Options tune the manager's background loops.
type Options struct {
	// ReconcileInterval is how often the database is compared with the
	// engine when the runtime cannot report its containers' changes
	// (default 10s). With one that can (runtime.Watcher), berth reconciles
	// a sandbox when its container changes, and a full pass runs every
	// FullReconcileInterval and whenever the event stream (re)connects.
	ReconcileInterval time.Duration
	// FullReconcileInterval is the safety net of the event-driven
	// reconciler: how often every sandbox is looked at anyway (default 5
	// minutes).
	FullReconcileInterval time.Duration
	// IgnoreEngineEvents makes the reconciler ignore the runtime's events
	// and compare everything every ReconcileInterval, as with a runtime that
	// cannot report them (tests that run reconcile passes themselves).
	IgnoreEngineEvents bool
	// IdleInterval is how often idle sandboxes are looked for (default 5s).
	IdleInterval time.Duration
	// StopTimeout is the grace period of stop before processes are killed
	// (default 5s).
	StopTimeout time.Duration
	// Limits bound what a sandbox may ask for; zero fields take
	// HostLimits' values.
	Limits Limits
	// Supervisor is the host path of the static supervisor binary
	// (supervisor.Install) that new sandboxes run as their PID 1, for fast
	// exec and terminals; "" runs them under the engine's init, with every
	// exec through the engine.
	Supervisor string

	// Leases, when set (servers started with --replicas on one
	// PostgreSQL), make a sandbox's lifecycle operations one at a time
	// across servers: each takes the sandbox's lease in the database after
	// the in-process mutex. Nil: this server is the database's only one.
	Leases *db.Leases
	// LeaseWait bounds how long an operation waits for a sandbox's lease
	// held by another server before it answers 409 conflict (default 30s).
	LeaseWait time.Duration
	// Leader, when set, says whether this server runs the singleton loops
	// (reconcile, idle pause) now; nil: always.
	Leader func() bool
}

// Manager runs sandboxes on one runtime.
type Manager struct {
	db       *db.DB
	rt       runtime.Runtime
	sup      *supervisor.Runtime // nil without a supervisor; rt wraps it
	base     runtime.Runtime     // the backend itself, for what it offers beyond Runtime
	scrub    func(error) error   // hides host paths in errors, as rt does
	ws       *workspace.Service
	log      *slog.Logger
	opts     Options
	instance string
	now      func() time.Time

	locks sync.Map   // sandbox id → *sync.Mutex: one lifecycle operation at a time
	pinMu sync.Mutex // pinning and releasing mount points (mountpoints.go)
	execs sync.Map   // sandbox id → *inflight: execs in flight

	bg     context.Context // background work (async creates, loops)
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// afterList, when set (by tests only, see export_test.go), runs in
	// Reconcile between reading the candidate ids and locking the first:
	// the window in which another operation can change a sandbox.
	afterList atomic.Pointer[func()]

	// watcher follows the engine's events (nil: periodic passes only).
	watcher runtime.Watcher
	events  eventStats
}

// New returns a manager; Run begins its background loops.
func New(ctx context.Context, d *db.DB, rt runtime.Runtime, ws *workspace.Service, log *slog.Logger, opts Options) (*Manager, error) {
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = 10 * time.Second
	}
	if opts.FullReconcileInterval <= 0 {
		opts.FullReconcileInterval = 5 * time.Minute
	}
	if opts.IdleInterval <= 0 {
		opts.IdleInterval = 5 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 5 * time.Second
	}
	if opts.LeaseWait <= 0 {
		opts.LeaseWait = 30 * time.Second
	}
	opts.Limits = opts.Limits.withDefaults()
	if err := opts.Limits.validate(); err != nil {
		return nil, err
	}
	for _, t := range templates.List() {
		if err := checkTemplate(t); err != nil {
			return nil, err
		}
	}
	base := rt
	var sup *supervisor.Runtime
	if opts.Supervisor != "" {
		// Each sandbox's socket directory is <data>/sandboxes/<container>:
		// only that directory is mounted into it.
		var err error
		if sup, err = supervisor.Wrap(rt, opts.Supervisor, filepath.Join(ws.DataDir(), "sandboxes"), log); err != nil {
			return nil, err
		}
		rt = sup
	}
	// Engine errors quote host paths; the manager's runtime hides them.
	scrub := newScrubRuntime(rt, ws.DataDir(), ws.Storage().Path(""), log)
	m := &Manager{db: d, rt: scrub, sup: sup, base: base, scrub: scrub.scrub, ws: ws, log: log, opts: opts,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	id, err := m.instanceID(ctx)
	if err != nil {
		return nil, err
	}
	m.instance = id
	// The engine's own runtime: the supervisor's wrapper adds exec, not
	// events, and would hide them.
	if w, ok := base.(runtime.Watcher); ok && !opts.IgnoreEngineEvents {
		m.watcher = w
	}
	if err := ws.PinSupported(); err != nil {
		log.Warn("nested workspace mounts are refused: their mount points cannot be protected on this data directory", "err", err)
	}
	// Said once at start, so that an operator who set disk defaults learns
	// they do not apply (creates ask again; an engine not up yet says
	// nothing here).
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if c, err := m.rt.Capabilities(cctx); err == nil && !c.DiskLimit {
		log.Info("sandbox disk limits are not available: creates asking for resources.disk are refused, and the disk defaults of the server and templates are not applied", "reason", c.NoDiskLimit)
	}
	cancel()
	m.bg, m.cancel = context.WithCancel(context.Background())
	ws.AddUsageSource(m.workspaceUsage)
	return m, nil
}

// instanceID reads (or on first use creates) this database's instance id.
func (m *Manager) instanceID(ctx context.Context) (string, error) {
	var id string
	err := m.db.Tx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &id, `SELECT id FROM instance`)
		if err == nil {
			return nil
		}
		if !berth.IsKind(db.Err(err), berth.NotFound) {
			return db.Err(err)
		}
		id = db.NewID("inst")
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO instance (id, created_at) VALUES (?, ?)`), id, m.now())
		return db.Err(err)
	})
	return id, err
}

// Instance is the label value that marks this installation's containers.
func (m *Manager) Instance() string { return m.instance }

// Runtime is the engine the manager drives.
func (m *Manager) Runtime() runtime.Runtime { return m.rt }

// Run reconciles once, then runs the reconcile and idle loops until Close.
// With Options.Leader, only the leader runs them (the others tick idle).
func (m *Manager) Run(ctx context.Context) {
	if m.leader() {
		if err := m.Reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("initial reconcile failed; will retry", "err", err)
		}
	}
	if m.watcher != nil {
		m.wg.Add(1)
		go m.follow()
	} else {
		m.loop(m.opts.ReconcileInterval, func(ctx context.Context) error { return m.Reconcile(ctx) }, "reconcile")
	}
	m.loop(m.opts.IdleInterval, m.PauseIdle, "idle")
}

// leader reports whether this server runs the singleton loops now.
func (m *Manager) leader() bool { return m.opts.Leader == nil || m.opts.Leader() }

func (m *Manager) loop(every time.Duration, fn func(context.Context) error, name string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.bg.Done():
				return
			case <-t.C:
				if !m.leader() {
					continue
				}
				if err := fn(m.bg); err != nil && m.bg.Err() == nil {
					m.log.Warn(name+" failed", "err", err)
				}
			}
		}
	}()
}

// Close stops the background loops and waits for async work.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// inflight is the execs running in one sandbox, each with the cancel of
// its context, so that cutting a sandbox off can end them with a cause.
type inflight struct {
	mu      sync.Mutex
	cancels map[*context.CancelCauseFunc]struct{}
	// lease (replicas) tells the leader's idle pause, on whatever server,
	// that execs run here; held while cancels is not empty.
	lease *db.Held
}

// execLease names the lease of this server's execs in sandbox id.
func (m *Manager) execLease(id string) string {
	return "exec:" + id + ":" + m.opts.Leases.Holder()
}

// busy counts an exec in flight on id until the returned func is called;
// cancel ends it (see cancelExecs).
func (m *Manager) busy(id string, cancel context.CancelCauseFunc) func() {
	v, _ := m.execs.LoadOrStore(id, &inflight{cancels: map[*context.CancelCauseFunc]struct{}{}})
	f := v.(*inflight)
	key := &cancel
	f.mu.Lock()
	f.cancels[key] = struct{}{}
	if m.opts.Leases != nil && f.lease == nil {
		ctx, cancel := context.WithTimeout(m.bg, 10*time.Second)
		h, ok, err := m.opts.Leases.Hold(ctx, m.execLease(id))
		cancel()
		switch {
		case err != nil || !ok:
			// Only an idle pause could come too early.
			m.log.Warn("take the exec lease of a sandbox", "sandbox", id, "err", err)
		default:
			f.lease = h
		}
	}
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		delete(f.cancels, key)
		if len(f.cancels) == 0 && f.lease != nil {
			if err := f.lease.Release(); err != nil {
				m.log.Warn("release the exec lease of a sandbox", "sandbox", id, "err", err)
			}
			f.lease = nil
		}
		f.mu.Unlock()
	}
}

// execsInFlight reports how many execs run in id now.
func (m *Manager) execsInFlight(id string) int64 {
	if v, ok := m.execs.Load(id); ok {
		f := v.(*inflight)
		f.mu.Lock()
		defer f.mu.Unlock()
		return int64(len(f.cancels))
	}
	return 0
}

// cancelExecs ends every exec in flight in id, with cause.
func (m *Manager) cancelExecs(id string, cause error) {
	if v, ok := m.execs.Load(id); ok {
		f := v.(*inflight)
		f.mu.Lock()
		defer f.mu.Unlock()
		for cancel := range f.cancels {
			(*cancel)(cause)
		}
	}
}

func (m *Manager) lock(id string) *sync.Mutex {
	l, _ := m.locks.LoadOrStore(id, &sync.Mutex{})
	return l.(*sync.Mutex)
}

// leaseName is sandbox id's lease in the leases table.
func leaseName(id string) string { return "sandbox:" + id }

// leasePoll is how often a lease held by another server is tried again.
const leasePoll = 100 * time.Millisecond

// acquire takes sandbox id for one lifecycle operation: the in-process
// mutex (the fast first layer), then, with replicas, its lease in the
// database, renewed until the returned release. A lease another server
// holds is waited for up to LeaseWait (or ctx), then refused as Conflict.
func (m *Manager) acquire(ctx context.Context, id string) (func(), error) {
	l := m.lock(id)
	l.Lock()
	if m.opts.Leases == nil {
		return l.Unlock, nil
	}
	wctx, cancel := context.WithTimeout(ctx, m.opts.LeaseWait)
	defer cancel()
	t := time.NewTicker(leasePoll)
	defer t.Stop()
	for {
		h, ok, err := m.opts.Leases.Hold(wctx, leaseName(id))
		if err == nil && ok {
			return m.releaser(id, h, l), nil
		}
		if err == nil {
			select {
			case <-t.C:
				continue
			case <-wctx.Done():
			}
		}
		l.Unlock()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err != nil && wctx.Err() == nil {
			return nil, err
		}
		return nil, berth.Errorf(berth.Conflict, "sandbox %s is busy on another server (an operation in flight there); try again", id)
	}
}

// tryAcquire takes sandbox id if nothing holds it, here or on another
// server; false when something does (or the lease cannot be read).
func (m *Manager) tryAcquire(ctx context.Context, id string) (func(), bool) {
	l := m.lock(id)
	if !l.TryLock() {
		return nil, false
	}
	if m.opts.Leases == nil {
		return l.Unlock, true
	}
	h, ok, err := m.opts.Leases.Hold(ctx, leaseName(id))
	if err != nil || !ok {
		if err != nil {
			m.log.Warn("take a sandbox lease", "sandbox", id, "err", err)
		}
		l.Unlock()
		return nil, false
	}
	return m.releaser(id, h, l), true
}

func (m *Manager) releaser(id string, h *db.Held, l *sync.Mutex) func() {
	return func() {
		if h.Lost() {
			m.log.Error("a sandbox lease expired while held (this server stalled longer than the lease TTL); another server may have acted on the sandbox meanwhile", "sandbox", id)
		}
		if err := h.Release(); err != nil {
			// It expires on its own.
			m.log.Warn("release a sandbox lease", "sandbox", id, "err", err)
		}
		l.Unlock()
	}
}

// load returns the sandbox with mounts and tags filled in.
func (m *Manager) load(ctx context.Context, q sqlx.QueryerContext, where string, args ...any) (*Sandbox, error) {
	var r row
	if err := sqlx.GetContext(ctx, q, &r, m.db.Rebind(`SELECT `+sbxCols+` FROM sandboxes s WHERE `+where), args...); err != nil {
		return nil, db.Err(err)
	}
	sbs, err := m.hydrate(ctx, q, []row{r})
	if err != nil {
		return nil, err
	}
	return &sbs[0], nil
}

// hydrate turns rows into sandboxes, loading their mounts and tags.
func (m *Manager) hydrate(ctx context.Context, q sqlx.QueryerContext, rows []row) ([]Sandbox, error) {
	out := make([]Sandbox, len(rows))
	if len(rows) == 0 {
		return out, nil
	}
	ids := make([]string, len(rows))
	idx := map[string]int{}
	for i, r := range rows {
		ids[i] = r.ID
		idx[r.ID] = i
		s := Sandbox{ID: r.ID, Name: r.Name, Status: r.Status, StatusReason: r.StatusReason, Template: r.Template,
			Tags: []string{}, Env: []string{}, Mounts: []Mount{}, Metadata: map[string]string{},
			IdleTimeout: r.IdleTimeout, Network: r.Network, OwnerUserID: r.OwnerUserID, CreatedAt: r.CreatedAt.UTC(),
			UpdatedAt: r.UpdatedAt.UTC(), LastActivityAt: r.LastActivityAt.UTC(), IP: r.IP,
			orgID: r.OrgID, image: r.Image, containerID: r.ContainerID}
		// A column that does not decode is a corrupt row: report it rather
		// than show the sandbox with empty env keys, limits or metadata.
		if err := errors.Join(
			decodeColumn("env_keys", r.EnvKeys, &s.Env),
			decodeColumn("resources", r.Resources, &s.Resources),
			decodeColumn("metadata", r.Metadata, &s.Metadata),
		); err != nil {
			return nil, berth.Wrap(berth.Internal, err, "sandbox "+r.ID+": stored row")
		}
		out[i] = s
	}
	query, args, err := sqlx.In(`SELECT sandbox_id, workspace_id, snapshot_id, path, read_only, attached FROM sandbox_mounts WHERE sandbox_id IN (?) ORDER BY path`, ids)
	if err != nil {
		return nil, err
	}
	var mounts []struct {
		SandboxID string `db:"sandbox_id"`
		Attached  bool   `db:"attached"`
		Mount
	}
	if err := sqlx.SelectContext(ctx, q, &mounts, m.db.Rebind(query), args...); err != nil {
		return nil, db.Err(err)
	}
	for _, mt := range mounts {
		s := &out[idx[mt.SandboxID]]
		mt.Mount.attached = mt.Attached
		s.Mounts = append(s.Mounts, mt.Mount)
		if !mt.ReadOnly {
			s.HasWritableWorkspaceMount = true
		}
	}
	query, args, _ = sqlx.In(`SELECT sandbox_id, tag FROM sandbox_tags WHERE sandbox_id IN (?) ORDER BY tag`, ids)
	var tags []struct {
		SandboxID string `db:"sandbox_id"`
		Tag       string `db:"tag"`
	}
	if err := sqlx.SelectContext(ctx, q, &tags, m.db.Rebind(query), args...); err != nil {
		return nil, db.Err(err)
	}
	for _, t := range tags {
		s := &out[idx[t.SandboxID]]
		s.Tags = append(s.Tags, t.Tag)
	}
	return out, nil
}

// decodeColumn decodes the stored JSON column col into v.
func decodeColumn(col, data string, v any) error {
	if err := json.Unmarshal([]byte(data), v); err != nil {
		return fmt.Errorf("decode %s: %w", col, err)
	}
	return nil
}

// setStatus records a status (and reason) for id.
func (m *Manager) setStatus(ctx context.Context, id string, st Status, reason string) error {
	_, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?`),
		st, reason, m.now(), id)
	return db.Err(err)
}

// workspaceUsage lists the live sandboxes mounting a workspace.
func (m *Manager) workspaceUsage(ctx context.Context, wsID string) ([]workspace.MountedSandbox, []workspace.AgentUse, error) {
	var rows []struct {
		ID       string `db:"id"`
		Name     string `db:"name"`
		Status   string `db:"status"`
		Path     string `db:"path"`
		ReadOnly bool   `db:"read_only"`
		Snapshot string `db:"snapshot_id"`
		Owner    string `db:"owner_user_id"`
	}
	err := m.db.SelectContext(ctx, &rows, m.db.Rebind(`SELECT s.id, s.name, s.status, mt.path, mt.read_only, mt.snapshot_id, s.owner_user_id
		FROM sandbox_mounts mt JOIN sandboxes s ON s.id = mt.sandbox_id
		WHERE mt.workspace_id = ? AND s.status <> 'destroyed' ORDER BY s.created_at, s.id, mt.path`), wsID)
	if err != nil {
		return nil, nil, db.Err(err)
	}
	out := make([]workspace.MountedSandbox, 0, len(rows))
	for _, r := range rows {
		out = append(out, workspace.MountedSandbox{SandboxID: r.ID, SandboxName: r.Name, SandboxStatus: r.Status, MountPath: r.Path, ReadOnly: r.ReadOnly, SnapshotID: r.Snapshot, OwnerUserID: r.Owner})
	}
	return out, nil, nil
}

// TouchWorkspace counts file activity through the API under a workspace as
// activity of every running sandbox that mounts it.
// A failure only makes an idle pause come sooner, so it is logged (as touch
// does), not returned.
func (m *Manager) TouchWorkspace(ctx context.Context, wsID string) {
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET last_activity_at = ?
		WHERE status = 'running' AND id IN (SELECT sandbox_id FROM sandbox_mounts WHERE workspace_id = ?)`), m.now(), wsID); err != nil {
		m.log.Warn("record workspace activity", "workspace", wsID, "err", db.Err(err))
	}
}
