package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/templates"
)

// CreateInput is the body of POST /v1/sandboxes.
type CreateInput struct {
	Name        string            `json:"name"`
	Template    string            `json:"template"`
	Tags        []string          `json:"tags"`
	Env         map[string]string `json:"env"`
	Resources   *ResourcesInput   `json:"resources"`
	IdleTimeout int64             `json:"idleTimeout"`
	Network     string            `json:"network"`
	Mounts      []Mount           `json:"mounts"`
	Metadata    map[string]string `json:"metadata"`
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
)

// WorkspaceRoot is where workspace mounts live inside a sandbox.
const WorkspaceRoot = "/workspace"

// ValidMountPath checks a mount target: /workspace or a clean subpath of it,
// with no "." or ".." segments, no empty segments and no trailing slash.
func ValidMountPath(p string) error {
	bad := func(why string) error {
		return berth.Errorf(berth.Invalid, "mount path %q is invalid: %s", p, why)
	}
	if p != WorkspaceRoot && !strings.HasPrefix(p, WorkspaceRoot+"/") {
		return bad("it must be /workspace or a path under /workspace/")
	}
	if strings.HasSuffix(p, "/") {
		return bad("no trailing slash")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch {
		case seg == "":
			return bad("empty path segment")
		case seg == "." || seg == "..":
			return bad("no '.' or '..' segments")
		case len(seg) > 255:
			return bad("segment longer than 255 bytes")
		case strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == ',' || r == ':' }):
			return bad("control characters, backslashes, commas and colons are not allowed")
		}
	}
	if path.Clean(p) != p || len(p) > 1024 {
		return bad("not a clean path")
	}
	return nil
}

// resolvedMount is a validated mount with its host directory.
type resolvedMount struct {
	Mount
	source string
}

// resolveMounts validates mount paths and checks each workspace is visible
// to the caller and not personal. Nothing is created before this passes.
func (m *Manager) resolveMounts(ctx context.Context, mounts []Mount) ([]resolvedMount, error) {
	seen := map[string]bool{}
	out := make([]resolvedMount, 0, len(mounts))
	for i, mt := range mounts {
		at := func(f string) string { return fmt.Sprintf("mounts[%d].%s", i, f) }
		if err := ValidMountPath(mt.Path); err != nil {
			return nil, berth.WithField(err, at("path"))
		}
		if seen[mt.Path] {
			return nil, berth.FieldErrorf(berth.Invalid, at("path"), "mount path %q appears twice", mt.Path)
		}
		seen[mt.Path] = true
		if mt.WorkspaceID == "" {
			return nil, berth.FieldErrorf(berth.Invalid, at("workspaceId"), "mount %q needs a workspaceId", mt.Path)
		}
		w, err := m.ws.Resolve(ctx, mt.WorkspaceID, "files:read")
		if err != nil {
			return nil, berth.WithField(err, at("workspaceId"))
		}
		if w.IsPersonal {
			return nil, berth.FieldErrorf(berth.Invalid, at("workspaceId"), "workspace %q is personal and cannot be mounted into a sandbox", w.Slug)
		}
		if mt.SnapshotID != "" {
			if mt.readOnlySet && !mt.ReadOnly {
				return nil, berth.FieldErrorf(berth.Invalid, at("readOnly"), "a snapshot is read-only: mount %q cannot be readOnly=false", mt.Path)
			}
			mt.ReadOnly = true
			mounts[i].ReadOnly = true
			_, snap, err := m.ws.ResolveSnapshot(ctx, mt.WorkspaceID, mt.SnapshotID, "files:read")
			if err != nil {
				return nil, berth.WithField(err, at("snapshotId"))
			}
			out = append(out, resolvedMount{Mount: mt, source: m.ws.SnapshotDir(w.ID, snap.ID)})
			continue
		}
		if !mt.ReadOnly {
			// Writable needs files:write: the caller who only reads the
			// workspace is answered at the mount's readOnly switch.
			if _, err := m.ws.Resolve(ctx, mt.WorkspaceID, "files:write"); err != nil {
				return nil, berth.WithField(err, at("readOnly"))
			}
		}
		out = append(out, resolvedMount{Mount: mt, source: m.ws.Dir(w.ID)})
	}
	// A mount point cannot be made inside a read-only snapshot.
	for _, mt := range mounts {
		for _, o := range mounts {
			if o.SnapshotID != "" && strings.HasPrefix(mt.Path, o.Path+"/") {
				return nil, berth.FieldErrorf(berth.Invalid, mountField(mounts, mt.Path), "mount path %s lies inside the snapshot mounted at %s, which is read-only: mount it elsewhere", mt.Path, o.Path)
			}
		}
	}
	// Parents first, so that nested mounts land on top of their parent.
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	if err := m.checkNesting(mounts); err != nil {
		return nil, err
	}
	// A nested mount's mount point is created and pinned in the enclosing
	// workspace, which then cannot change there while the sandbox exists:
	// only someone who may write that workspace may do that to it.
	for _, mp := range mountPointsOf(mounts) {
		if _, err := m.ws.Resolve(ctx, mp.WorkspaceID, "files:write"); err != nil {
			if berth.IsKind(err, berth.Forbidden) {
				return nil, berth.FieldErrorf(berth.Forbidden, mountField(mounts, mp.Path),
					"mount path %s lies inside another mount: its mount point is created and protected in that mount's workspace, which needs write access to it (files:write)", mp.Path)
			}
			return nil, err
		}
	}
	return out, nil
}

// mountField is the JSON path of the path of the mount at p ("mounts" when
// none is: the error is then about the list).
func mountField(mounts []Mount, p string) string {
	for i, mt := range mounts {
		if mt.Path == p {
			return fmt.Sprintf("mounts[%d].path", i)
		}
	}
	return "mounts"
}

func validateCreate(in *CreateInput, lim Limits, caps func() (runtime.Capabilities, error)) (templates.Template, runtime.Resources, error) {
	var zero runtime.Resources
	if in.Template == "" {
		return templates.Template{}, zero, berth.FieldErrorf(berth.Invalid, "template", "template is required")
	}
	tmpl, err := templates.Get(in.Template)
	if err != nil {
		if berth.IsKind(err, berth.NotFound) {
			return tmpl, zero, berth.FieldErrorf(berth.Invalid, "template", "unknown template %q", in.Template)
		}
		return tmpl, zero, err
	}
	if in.Name != "" && !nameRE.MatchString(in.Name) {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "name", "name must be 1..63 characters of lowercase a-z, 0-9 and '-', starting with a letter or digit")
	}
	if len(in.Tags) > 50 {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "tags", "at most 50 tags")
	}
	for _, t := range in.Tags {
		if !tagRE.MatchString(t) {
			return tmpl, zero, berth.FieldErrorf(berth.Invalid, "tags", "tag %q is invalid (1..128 of letters, digits and _.:=/-)", t)
		}
	}
	if len(in.Env) > 256 {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "env", "at most 256 environment variables")
	}
	for k, v := range in.Env {
		if !envKeyRE.MatchString(k) {
			return tmpl, zero, berth.FieldErrorf(berth.Invalid, "env", "environment variable name %q is invalid", k)
		}
		if strings.ContainsRune(v, 0) || len(v) > 64<<10 {
			return tmpl, zero, berth.FieldErrorf(berth.Invalid, "env", "environment variable %s: value has a NUL byte or exceeds 64 KiB", k)
		}
	}
	if in.IdleTimeout < 0 {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "idleTimeout", "idleTimeout %d is negative: it is 0 (never) or a number of seconds", in.IdleTimeout)
	}
	if maxIdle := int64(lim.MaxIdleTimeout / time.Second); in.IdleTimeout > maxIdle {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "idleTimeout", "idleTimeout %d is more than this server allows (%d seconds)", in.IdleTimeout, maxIdle)
	}
	// "bridge" (the default) is isolated: internet only, no other sandbox
	// and no host service; "shared" is the user asking for the engine's
	// shared network, host services included (see runtime.NetworkShared).
	switch in.Network {
	case "":
		in.Network = runtime.NetworkBridge
	case runtime.NetworkNone, runtime.NetworkBridge, runtime.NetworkShared:
	default:
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "network", "network must be \"bridge\" (isolated, the default), \"none\" or \"shared\" (reaches other shared sandboxes and the host's services)")
	}
	if len(in.Metadata) > 64 {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "metadata", "at most 64 metadata entries")
	}
	for k, v := range in.Metadata {
		if k == "" || len(k) > 128 || len(v) > 4096 {
			return tmpl, zero, berth.FieldErrorf(berth.Invalid, "metadata", "metadata keys are 1..128 bytes, values at most 4 KiB")
		}
	}
	if len(in.Mounts) > 32 {
		return tmpl, zero, berth.FieldErrorf(berth.Invalid, "mounts", "at most 32 mounts")
	}
	res, limits, err := lim.resolve(in.Resources, tmpl.Resources, caps)
	if err != nil {
		return tmpl, zero, err
	}
	in.Resources = res
	return tmpl, limits, nil
}

// Create makes a sandbox. Synchronously it returns once the sandbox runs
// (a failure leaves nothing behind); with async it returns at once with
// status creating, and a failure later leaves the sandbox in error with a
// reason.
func (m *Manager) Create(ctx context.Context, in CreateInput, async bool) (*Sandbox, error) {
	c, err := auth.Require(ctx, "sandbox:create")
	if err != nil {
		return nil, err
	}
	tmpl, limits, err := validateCreate(&in, m.opts.Limits, func() (runtime.Capabilities, error) {
		c, err := m.rt.Capabilities(ctx)
		if err != nil {
			return c, berth.Wrap(berth.Unavailable, err, "the container engine is unavailable")
		}
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	mounts, err := m.resolveMounts(ctx, in.Mounts)
	if err != nil {
		return nil, err
	}
	if err := m.rt.Ping(ctx); err != nil {
		return nil, berth.Wrap(berth.Unavailable, err, "the container engine is unavailable")
	}

	id := db.NewID("sbx")
	if in.Name == "" {
		in.Name = strings.ReplaceAll(id, "_", "-")
	}
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kj, _ := json.Marshal(keys)
	rj, _ := json.Marshal(in.Resources)
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	mj, _ := json.Marshal(in.Metadata)
	now := m.now()
	r := row{ID: id, OrgID: c.OrgID, OwnerUserID: c.UserID, Name: in.Name, Template: tmpl.Name, Image: tmpl.Image,
		Status: Creating, EnvKeys: string(kj), Resources: string(rj), Metadata: string(mj), IdleTimeout: in.IdleTimeout,
		Network: in.Network, CreatedAt: now, UpdatedAt: now, LastActivityAt: now}

	unlock, err := m.acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	err = m.db.Tx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.NamedExecContext(ctx, `INSERT INTO sandboxes (id, org_id, owner_user_id, name, template, image, status,
			status_reason, env_keys, resources, metadata, idle_timeout, network, container_id, ip, created_at, updated_at, last_activity_at)
			VALUES (:id, :org_id, :owner_user_id, :name, :template, :image, :status, :status_reason, :env_keys, :resources,
			:metadata, :idle_timeout, :network, :container_id, :ip, :created_at, :updated_at, :last_activity_at)`, &r)
		if err != nil {
			if berth.IsKind(db.Err(err), berth.Conflict) {
				return berth.FieldErrorf(berth.Conflict, "name", "a sandbox named %q already exists", in.Name)
			}
			return db.Err(err)
		}
		for _, mt := range mounts {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sandbox_mounts (sandbox_id, workspace_id, snapshot_id, path, read_only) VALUES (?, ?, ?, ?, ?)`),
				id, mt.WorkspaceID, mt.SnapshotID, mt.Path, mt.ReadOnly); err != nil {
				return db.Err(err)
			}
		}
		seen := map[string]bool{}
		for _, t := range in.Tags {
			if seen[t] {
				continue
			}
			seen[t] = true
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sandbox_tags (sandbox_id, tag) VALUES (?, ?)`), id, t); err != nil {
				return db.Err(err)
			}
		}
		return nil
	})
	if err != nil {
		unlock()
		return nil, err
	}
	// Mount points are pinned once the sandbox is recorded (a release
	// recomputes from the database what stays pinned), and before any
	// container exists. A symlink or a file in the way refuses the create.
	if err := m.pinMountPoints(ctx, in.Mounts); err != nil {
		m.discard(ctx, id, in.Mounts)
		unlock()
		return nil, err
	}

	spec := runtime.Spec{
		Name:     "berth-" + id,
		Image:    tmpl.Image,
		Hostname: in.Name,
		Labels:   map[string]string{LabelSandbox: id, LabelOrg: c.OrgID, LabelInstance: m.instance},
		Env:      map[string]string{},
		Network:  in.Network,
		WorkDir:  WorkspaceRoot,
	}
	spec.Resources = limits
	for k, v := range tmpl.Env {
		spec.Env[k] = v
	}
	for k, v := range in.Env {
		spec.Env[k] = v
	}
	spec.Env["BERTH_SANDBOX_ID"] = id
	spec.Env["BERTH_SANDBOX_NAME"] = in.Name
	for _, mt := range mounts {
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: mt.source, Target: mt.Path, ReadOnly: mt.ReadOnly})
	}

	if async {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer unlock()
			if err := m.provision(m.bg, id, tmpl, spec); err != nil {
				m.log.Warn("async sandbox create failed", "sandbox", id, "err", err)
				// The row must say why even when the server is shutting down
				// (m.bg cancelled), within a deadline of its own.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(m.bg), cleanupTimeout)
				defer cancel()
				if serr := m.setStatus(sctx, id, Error, "create failed: "+berth.Message(err)); serr != nil {
					m.log.Error("async sandbox create failed: recording the error status", "sandbox", id, "err", serr)
				}
			}
		}()
		return m.load(ctx, m.db, `s.id = ?`, id)
	}
	defer unlock()
	if err := m.provision(ctx, id, tmpl, spec); err != nil {
		// A synchronous create that fails leaves nothing behind.
		m.discard(ctx, id, in.Mounts)
		return nil, err
	}
	return m.load(ctx, m.db, `s.id = ?`, id)
}

// discard removes the row of a sandbox whose create failed, then releases
// its mount points. Failures are logged: the create's own error is what the
// caller reports.
func (m *Manager) discard(ctx context.Context, id string, mounts []Mount) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM sandboxes WHERE id = ?`), id); err != nil {
		m.log.Error("failed create: removing the sandbox's row", "sandbox", id, "err", err)
	}
	if err := m.unpinMountPoints(ctx, mounts); err != nil {
		m.log.Error("failed create: releasing mount points", "sandbox", id, "err", err)
	}
}

// removeFailed removes the container cid that a failed provision of sandbox
// id made, within its own deadline even if ctx has ended. A failure is
// logged: the provision's own error is what the caller reports.
func (m *Manager) removeFailed(ctx context.Context, id, cid string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := m.rt.Remove(ctx, cid); err != nil {
		m.log.Error("failed create: removing the container", "sandbox", id, "container", cid, "err", err)
	}
}

// provision makes the image present, creates and starts the container and
// records it. On failure it removes whatever container it made.
func (m *Manager) provision(ctx context.Context, id string, tmpl templates.Template, spec runtime.Spec) error {
	if err := templates.Ensure(ctx, m.rt, tmpl, nil); err != nil {
		return fmt.Errorf("template %s: %w", tmpl.Name, err)
	}
	cid, err := m.rt.Create(ctx, spec)
	if err != nil {
		return err
	}
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET container_id = ? WHERE id = ?`), cid, id); err != nil {
		m.removeFailed(ctx, id, cid)
		return db.Err(err)
	}
	if err := m.rt.Start(ctx, cid); err != nil {
		m.removeFailed(ctx, id, cid)
		return err
	}
	info, err := m.rt.Inspect(ctx, cid)
	if err != nil {
		m.removeFailed(ctx, id, cid)
		return err
	}
	now := m.now()
	_, err = m.db.ExecContext(ctx, m.db.Rebind(`UPDATE sandboxes SET status = ?, status_reason = '', ip = ?, updated_at = ?, last_activity_at = ? WHERE id = ? AND status = ?`),
		Running, info.IPAddress, now, now, id, Creating)
	if err != nil {
		m.removeFailed(ctx, id, cid)
		return db.Err(err)
	}
	return nil
}
