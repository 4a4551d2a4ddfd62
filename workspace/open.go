package workspace

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace/files"
)

// FilesOptions tune the registry of open workspace directories. The zero
// value is usable.
type FilesOptions struct {
	// MaxOpen is how many workspaces stay open while idle (default 32). Each
	// open workspace holds an inotify instance, and Linux allows 128 per user
	// by default; workspaces in use are never closed, so more may be open
	// for a while, the least recently used idle ones going first.
	MaxOpen int
	// IdleTimeout closes a workspace nobody has used for this long (default 5m).
	IdleTimeout time.Duration
	// SizeTTL is how old the remembered size of a closed workspace may get
	// before a background rescan (default 1m). Open workspaces report their
	// live usage instead.
	SizeTTL time.Duration
	// TouchEvery throttles, per workspace, what an access records: the
	// lastAccessedAt write and OnAccess (default 1s, well below any useful
	// sandbox idleTimeout).
	TouchEvery time.Duration
	// OnAccess, when set, is told of file API activity in a workspace (the
	// sandbox manager counts it as activity of the sandboxes mounting it).
	OnAccess func(ctx context.Context, id string)
	// WatchesPerUser caps the watch streams (Watch) one user holds at once;
	// WatchedWorkspacesPerOrg caps the workspaces one organization's
	// streams keep open, and WatchedWorkspaces those of all streams
	// together (defaults: DefaultWatchesPerUser,
	// DefaultWatchedWorkspacesPerOrg, DefaultWatchedWorkspaces).
	WatchesPerUser          int
	WatchedWorkspacesPerOrg int
	WatchedWorkspaces       int
	// Open is passed to files.Open; QuotaBytes is set from each workspace's
	// metadata on every Acquire.
	Open   files.Options
	Logger *slog.Logger
	// Archives bound the directory downloads made at once (StartArchive).
	Archives ArchiveLimits
}

// Files keeps a *files.Workspace open for each active workspace, so that
// requests share one usage tracker and one inotify instance per workspace
// instead of opening (and rescanning) the directory each time. It also
// serves the workspace sizes of the metadata service (Service.Size) from
// those trackers, and from remembered totals for closed workspaces.
type Files struct {
	svc *Service
	opt FilesOptions
	log *slog.Logger

	mu         sync.Mutex
	open       map[string]*openWS
	sizes      map[string]sizeEntry
	refreshing map[string]bool
	closed     bool
	watches    watchCounts

	stop     chan struct{} // closed by Shutdown: watches end
	stopOnce sync.Once
	ctx      context.Context // background scans; cancelled by Close
	cancel   context.CancelFunc
	bg       sync.WaitGroup
	scans    chan struct{} // bounds concurrent background scans
	archives *archiveGate
}

type openWS struct {
	ws        *files.Workspace
	refs      int
	lastUsed  time.Time
	lastTouch time.Time
}

type sizeEntry struct {
	used int64
	at   time.Time
}

// NewFiles starts a registry for the workspaces of svc and installs it as
// svc's size source and delete hook. Close it when done.
func NewFiles(svc *Service, opt FilesOptions) *Files {
	if opt.MaxOpen <= 0 {
		opt.MaxOpen = 32
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 5 * time.Minute
	}
	if opt.SizeTTL <= 0 {
		opt.SizeTTL = time.Minute
	}
	if opt.TouchEvery <= 0 {
		opt.TouchEvery = time.Second
	}
	if opt.WatchesPerUser <= 0 {
		opt.WatchesPerUser = DefaultWatchesPerUser
	}
	if opt.WatchedWorkspacesPerOrg <= 0 {
		opt.WatchedWorkspacesPerOrg = DefaultWatchedWorkspacesPerOrg
	}
	if opt.WatchedWorkspaces <= 0 {
		opt.WatchedWorkspaces = DefaultWatchedWorkspaces
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Open.Logger = opt.Logger
	ctx, cancel := context.WithCancel(context.Background())
	f := &Files{
		svc: svc, opt: opt, log: opt.Logger,
		open: map[string]*openWS{}, sizes: map[string]sizeEntry{}, refreshing: map[string]bool{},
		stop: make(chan struct{}), ctx: ctx, cancel: cancel, scans: make(chan struct{}, 2),
		archives: newArchiveGate(opt.Archives),
	}
	svc.Size = f.Size
	svc.onDelete = append(svc.onDelete, f.forget)
	svc.onReplace = append(svc.onReplace, f.forget)
	f.bg.Add(1)
	go f.janitor()
	return f
}

// Acquire returns the open files.Workspace of w (opening it if needed) with
// its quota set from w's metadata, and records the access (lastAccessedAt,
// throttled). Call release when the request is done with it; the workspace
// is not closed while acquired, except when it is deleted.
func (f *Files) Acquire(ctx context.Context, w *Workspace) (ws *files.Workspace, release func(), err error) {
	f.mu.Lock()
	o := f.open[w.ID]
	if o == nil && !f.closed {
		f.mu.Unlock()
		nws, err := files.Open(f.svc.Dir(w.ID), f.opt.Open)
		if err != nil {
			return nil, nil, err
		}
		f.mu.Lock()
		if o = f.open[w.ID]; o != nil || f.closed {
			// Lost a race to another request, or closing: nws was never
			// used, so closing its read-only handles has nothing to lose.
			defer func() { _ = nws.Close() }()
		} else {
			o = &openWS{ws: nws}
			f.open[w.ID] = o
		}
	}
	if f.closed {
		f.mu.Unlock()
		return nil, nil, berth.Errorf(berth.Unavailable, "server is shutting down")
	}
	now := time.Now()
	o.refs++
	o.lastUsed = now
	touch := now.Sub(o.lastTouch) >= f.opt.TouchEvery
	if touch {
		o.lastTouch = now
	}
	victims := f.evictLocked()
	f.mu.Unlock()
	f.closeAll(victims)

	var q int64
	if w.QuotaBytes != nil && !f.svc.Storage().Caps().KernelQuota {
		// A kernel quota binds the API's writes like every other writer's
		// (EDQUOT: quota_exceeded); a second, API-side count could only
		// disagree with it.
		q = *w.QuotaBytes
	}
	o.ws.SetQuota(q) // so a PATCH of quotaBytes applies from the next request on
	if touch {
		f.svc.Touch(ctx, w.ID)
		if f.opt.OnAccess != nil {
			f.opt.OnAccess(ctx, w.ID)
		}
	}
	return o.ws, sync.OnceFunc(func() {
		f.mu.Lock()
		o.refs--
		o.lastUsed = time.Now()
		f.mu.Unlock()
	}), nil
}

// Space is the space of workspace w, whose open directory is fw: from the
// storage driver where its usage is exact (the btrfs qgroup, which counts
// what the kernel's quota counts), else from fw's usage tracker.
func (f *Files) Space(ctx context.Context, w *Workspace, fw *files.Workspace) (files.Info, error) {
	drv := f.svc.Storage()
	if !drv.Caps().ExactUsage {
		// Right after opening, wait for the first scan so that "used" is real.
		if err := fw.Usage().Wait(ctx); err != nil {
			return files.Info{}, err
		}
		return fw.Info(ctx), nil
	}
	u, err := drv.Usage(ctx, w.ID)
	if err != nil {
		return files.Info{}, err
	}
	snaps := max(u.Bytes-u.LiveBytes, 0)
	if w.QuotaBytes == nil {
		return files.Info{Used: u.Bytes, Total: -1, Free: -1, SnapshotBytes: snaps}, nil
	}
	q := *w.QuotaBytes
	return files.Info{Used: u.Bytes, Total: q, Free: max(q-u.Bytes, 0), SnapshotBytes: snaps}, nil
}

// OpenSnapshot opens the read-only tree of one snapshot of w for a request
// (not kept in the registry: snapshots are browsed rarely). Close it when
// done.
func (f *Files) OpenSnapshot(ctx context.Context, w *Workspace, snap *Snapshot) (*files.Workspace, error) {
	dir := f.svc.SnapshotDir(w.ID, snap.ID)
	if dir == "" {
		return nil, berth.Errorf(berth.NotSupported, "this storage driver has no snapshots")
	}
	opt := f.opt.Open
	// Read-only and measured by the storage driver (SnapshotSpace): no
	// usage tracker, so a request never starts a scan of the tree.
	opt.NoUsageWatch, opt.ReadOnly, opt.NoUsage, opt.QuotaBytes = true, true, true, 0
	return files.Open(dir, opt)
}

// SnapshotSpace is the space of one snapshot of w: used is what its tree
// references (shared extents included), snapshotBytes what only it holds;
// no quota applies to a snapshot (total and free -1).
func (f *Files) SnapshotSpace(ctx context.Context, w *Workspace, snapID string) (files.Info, error) {
	u, err := f.svc.Storage().SnapshotUsage(ctx, w.ID, snapID)
	if err != nil {
		return files.Info{}, err
	}
	return files.Info{Used: u.ReferencedBytes, Total: -1, Free: -1, SnapshotBytes: u.ExclusiveBytes}, nil
}

// FilesStats is a snapshot of the registry.
type FilesStats struct {
	Open    int // workspaces open
	InUse   int // acquisitions not yet released (requests, watch streams)
	Watches int // watch streams (Watch) not yet stopped
}

// Stats reports how many workspaces are open and how many acquisitions are
// outstanding.
func (f *Files) Stats() FilesStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FilesStats{Open: len(f.open), Watches: f.watches.total}
	for _, o := range f.open {
		st.InUse += o.refs
	}
	return st
}

// Stopping is closed when Shutdown is called: long-lived streams (Watch)
// should end so that a graceful shutdown need not wait for them.
func (f *Files) Stopping() <-chan struct{} { return f.stop }

// Shutdown ends watch streams; requests in flight may still finish.
func (f *Files) Shutdown() { f.stopOnce.Do(func() { close(f.stop) }) }

// Close closes every open workspace (ending their watches) and stops the
// background scans. Later Acquires fail with Unavailable.
func (f *Files) Close() error {
	f.Shutdown()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	var all []*files.Workspace
	for id, o := range f.open {
		all = append(all, o.ws)
		delete(f.open, id)
	}
	f.mu.Unlock()
	f.cancel()
	f.closeAll(all)
	f.bg.Wait()
	return nil
}

// forget closes workspace id (its directory is about to be removed): any
// request still using it fails with Unavailable and its watches end.
func (f *Files) forget(id string) {
	f.mu.Lock()
	o := f.open[id]
	delete(f.open, id)
	delete(f.sizes, id)
	f.mu.Unlock()
	if o != nil {
		f.closeAll([]*files.Workspace{o.ws})
	}
}

// evictLocked takes out of the table the least recently used idle
// workspaces beyond MaxOpen and returns them, to be closed without the lock.
func (f *Files) evictLocked() []*files.Workspace {
	var out []*files.Workspace
	for len(f.open) > f.opt.MaxOpen {
		var lru string
		var oldest time.Time
		for id, o := range f.open {
			if o.refs == 0 && (lru == "" || o.lastUsed.Before(oldest)) {
				lru, oldest = id, o.lastUsed
			}
		}
		if lru == "" {
			break // all in use
		}
		out = append(out, f.takeLocked(lru))
	}
	return out
}

// takeLocked removes id from the table, remembering its size.
func (f *Files) takeLocked(id string) *files.Workspace {
	o := f.open[id]
	delete(f.open, id)
	f.sizes[id] = sizeEntry{used: o.ws.Usage().Used(), at: time.Now()}
	return o.ws
}

func (f *Files) closeAll(ws []*files.Workspace) {
	for _, w := range ws {
		if err := w.Close(); err != nil {
			f.log.Warn("closing a workspace directory", "err", err)
		}
	}
}

// janitor closes workspaces idle for longer than IdleTimeout.
func (f *Files) janitor() {
	defer f.bg.Done()
	every := min(max(f.opt.IdleTimeout/4, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		var idle []*files.Workspace
		for id, o := range f.open {
			if o.refs == 0 && time.Since(o.lastUsed) > f.opt.IdleTimeout {
				idle = append(idle, f.takeLocked(id))
			}
		}
		f.mu.Unlock()
		f.closeAll(idle)
	}
}

// Size is the Service's SizeFunc: the live total of an open workspace, the
// remembered total of a closed one (rescanned in the background once older
// than SizeTTL), and a scan only the first time a workspace is asked about.
// A request never walks a tree that has been measured before.
func (f *Files) Size(ctx context.Context, id, dir string) (int64, error) {
	if drv := f.svc.Storage(); drv.Caps().ExactUsage {
		u, err := drv.Usage(ctx, id)
		return u.Bytes, err
	}
	f.mu.Lock()
	if o := f.open[id]; o != nil {
		u := o.ws.Usage()
		f.mu.Unlock()
		if err := u.Wait(ctx); err != nil {
			return 0, err
		}
		return u.Used(), nil
	}
	if se, ok := f.sizes[id]; ok {
		if time.Since(se.at) > f.opt.SizeTTL && !f.refreshing[id] && !f.closed {
			f.refreshing[id] = true
			f.bg.Add(1)
			go f.refresh(id, dir)
		}
		f.mu.Unlock()
		return se.used, nil
	}
	f.mu.Unlock()
	n, err := f.scan(ctx, dir)
	if err != nil {
		return 0, err
	}
	f.remember(id, n)
	return n, nil
}

func (f *Files) refresh(id, dir string) {
	defer f.bg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.refreshing, id)
		f.mu.Unlock()
	}()
	select {
	case f.scans <- struct{}{}:
		defer func() { <-f.scans }()
	case <-f.ctx.Done():
		return
	}
	n, err := f.scan(f.ctx, dir)
	if err != nil {
		f.log.Debug("workspace size rescan failed", "workspace", id, "err", err)
		return
	}
	f.remember(id, n)
}

func (f *Files) remember(id string, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, open := f.open[id]; !open {
		f.sizes[id] = sizeEntry{used: n, at: time.Now()}
	}
}

// scan measures a closed workspace without keeping it open or watching it.
func (f *Files) scan(ctx context.Context, dir string) (int64, error) {
	opt := f.opt.Open
	opt.NoUsageWatch = true
	ws, err := files.Open(dir, opt)
	if err != nil {
		return 0, err
	}
	defer func() { _ = ws.Close() }() // used only to measure: read-only handles
	if err := ws.Usage().Wait(ctx); err != nil {
		return 0, err
	}
	return ws.Usage().Used(), nil
}
