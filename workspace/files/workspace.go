package files

import (
	"context"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Workspace. The zero value is usable.
type Options struct {
	// QuotaBytes caps the workspace's total size for writes made through this
	// package. Zero or negative means unlimited.
	QuotaBytes int64
	// UsageTTL is how old the cached size may get before a background rescan
	// even without change notifications (default 10 minutes).
	UsageTTL time.Duration
	// UsageDebounce is how long change notifications are gathered before one
	// rescan (default 2 seconds).
	UsageDebounce time.Duration
	// MaxWatchDirs caps the directories one Workspace watches with inotify
	// (default 8192). Changes in directories past the cap are not reported by
	// Watch; usage still catches them through UsageTTL.
	MaxWatchDirs int
	// NoUsageWatch stops the usage tracker from watching the tree (it then
	// relies on UsageTTL alone). The inotify instance is then only created
	// while some Watch is running.
	NoUsageWatch bool
	// ReadOnly marks a tree that cannot be written (a snapshot): the first
	// usage scan then leaves stale temporary entries alone.
	ReadOnly bool
	// SweepMinAge, when set, spares stale-looking temporary entries changed
	// more recently than this: in a directory shared by several servers
	// (replicas), an entry this process does not know may be another
	// server's write in flight.
	SweepMinAge time.Duration
	// NoUsage never measures the tree: no usage tracker runs and no scan
	// starts (a snapshot opened for one request, whose size its storage
	// driver knows). Usage().Wait then answers NotSupported and Used 0.
	NoUsage bool
	Logger  *slog.Logger
}

// Workspace is the file side of one workspace directory. All methods are safe
// for concurrent use. Every filesystem access goes through one os.Root opened
// on the directory.
type Workspace struct {
	dir     string
	root    *os.Root
	quota   atomic.Int64
	usage   *Usage
	swept   atomic.Bool // stale temporary entries removed (first scan)
	minAge  time.Duration
	commits commits
	hub     *hub
	log     *slog.Logger
}

// Open opens the workspace directory dir (which must exist) and starts its
// usage tracker. Close it when done: it holds a directory descriptor, a
// goroutine and, unless NoUsageWatch, an inotify instance (Linux allows 128
// per user by default, so callers should keep only active workspaces open).
func Open(dir string, opt Options) (*Workspace, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fsErr(err, "/")
	}
	noteEscapeErr(root)
	if opt.UsageTTL <= 0 {
		opt.UsageTTL = 10 * time.Minute
	}
	if opt.UsageDebounce <= 0 {
		opt.UsageDebounce = 2 * time.Second
	}
	if opt.MaxWatchDirs <= 0 {
		opt.MaxWatchDirs = 8192
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Workspace{dir: dir, root: root, log: opt.Logger, minAge: opt.SweepMinAge}
	w.swept.Store(opt.ReadOnly)
	w.quota.Store(opt.QuotaBytes)
	w.hub = newHub(w, opt.MaxWatchDirs)
	if opt.NoUsage {
		w.usage = newUnmeasured()
		return w, nil
	}
	w.usage = newUsage(w.scanUsage, opt.UsageTTL, opt.UsageDebounce)
	if !opt.NoUsageWatch {
		if unsub, err := w.hub.subscribe(".", func(e Event) {
			// Our own writes already updated the total. The event's api
			// flag only says that a temporary-looking name was renamed,
			// which a sandbox can do too, so it must also match a commit
			// this Workspace announced.
			if !e.api || !w.commits.take(e.Path) {
				w.usage.Invalidate()
			}
		}); err == nil {
			w.usage.onClose = unsub
		} else {
			w.log.Warn("workspace usage: no change notifications, relying on TTL", "dir", dir, "err", err)
		}
	}
	return w, nil
}

// Close stops the usage tracker and every watch and releases the directory.
func (w *Workspace) Close() error {
	w.usage.Close()
	w.hub.close()
	return w.root.Close()
}

// SetQuota changes the quota (zero or negative: unlimited) for later writes.
func (w *Workspace) SetQuota(n int64) { w.quota.Store(n) }

// Usage returns the workspace's usage tracker.
func (w *Workspace) Usage() *Usage { return w.usage }

// Entry types.
const (
	TypeFile      = "file"
	TypeDirectory = "directory"
	TypeSymlink   = "symlink"
)

// Entry describes one name in the workspace. String fields are in API form
// (see EncodeName). ID is the entry's path from the workspace root; Path is
// the directory holding it ("/" for top-level entries). Non-regular files
// (FIFOs, sockets, devices) are of type "file" with an "inode/..." MimeType;
// they are listed but never opened.
type Entry struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Type     string    `json:"type"`
	Size     int64     `json:"size"`
	MTime    time.Time `json:"mtime"`
	MimeType *string   `json:"mimeType"`
}

func newEntry(rel string, info fs.FileInfo) Entry {
	dir, base := splitRel(rel)
	e := Entry{
		ID:    apiPath(rel),
		Name:  EncodeName(base),
		Path:  apiPath(dir),
		MTime: info.ModTime().UTC(),
	}
	if rel == "." {
		e.Name, e.Path = "", ""
	}
	mode := info.Mode()
	var mt string
	switch {
	case mode.IsDir():
		e.Type = TypeDirectory
	case mode&fs.ModeSymlink != 0:
		e.Type = TypeSymlink
		e.Size = info.Size()
	default:
		e.Type = TypeFile
		e.Size = info.Size()
		mt = mimeType(base, mode)
		e.MimeType = &mt
	}
	return e
}

func mimeType(name string, mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "inode/fifo"
	case mode&fs.ModeSocket != 0:
		return "inode/socket"
	case mode&fs.ModeCharDevice != 0:
		return "inode/chardevice"
	case mode&fs.ModeDevice != 0:
		return "inode/blockdevice"
	case !mode.IsRegular():
		return "application/octet-stream"
	}
	if t := typeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Stat describes the entry at p without following a final symlink.
func (w *Workspace) Stat(ctx context.Context, p string) (Entry, error) {
	rel, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	info, err := w.root.Lstat(rel)
	if err != nil {
		return Entry{}, fsErr(err, apiPath(rel))
	}
	return newEntry(rel, info), nil
}

// Summary is an entry plus, for a directory, the number of entries below it;
// a directory's Size is then the recursive apparent size of the regular
// files below it and Allocated what the disk holds for them (st_blocks, as
// du counts; less than Size for sparse files). A file hard-linked several
// times below the directory counts once. For a regular file Allocated is
// its own allocation. Truncated is set when the tree is deeper than
// MaxDepth and the deeper part was not counted.
type Summary struct {
	Entry
	Allocated int64 `json:"allocated"`
	Count     int64 `json:"count"`
	Truncated bool  `json:"truncated,omitempty"`
}

// DirSummary is Stat plus, for a directory, its recursive size and count.
// The walk is iterative, bounded by MaxDepth and cancelled with ctx.
func (w *Workspace) DirSummary(ctx context.Context, p string) (Summary, error) {
	rel, err := Clean(p)
	if err != nil {
		return Summary{}, err
	}
	info, err := w.root.Lstat(rel)
	if err != nil {
		return Summary{}, fsErr(err, apiPath(rel))
	}
	s := Summary{Entry: newEntry(rel, info)}
	if s.Type != TypeDirectory {
		s.Allocated = spaceOf(info).allocated
		return s, nil
	}
	t, err := w.measure(ctx, rel, false)
	s.Count, s.Size, s.Allocated, s.Truncated = t.count, t.apparent, t.allocated, t.truncated
	return s, fsErr(err, s.ID)
}

// tally is what a walk measured below a directory.
type tally struct {
	count     int64 // entries
	space           // regular files, each inode once
	truncated bool
}

// measure counts the entries and regular-file space below the directory
// rel. Every inode counts once however many hard links reach it (a sandbox
// can link one big file a thousand times). Temporary entries of writes in
// flight are skipped: their bytes are held by reservations. With sweep, a
// temporary entry that no one in this process is using (left by a crash or
// a failed cleanup) is removed instead of counted.
func (w *Workspace) measure(ctx context.Context, rel string, sweep bool) (t tally, err error) {
	top, err := openDir(w.root, rel)
	if err != nil {
		return t, err
	}
	defer closeRead(top)
	var seen map[inode]struct{} // files with several links, counted already
	wk := &walker{visit: func(e *entry) (bool, error) {
		if isTemp(e.name) {
			kind, live := liveTemp(e.name)
			switch {
			case live && kind == tempReserved:
				return false, nil
			case !live && sweep && (w.minAge == 0 || time.Since(e.info.ModTime()) >= w.minAge):
				if err := w.sweep(ctx, e); err == nil {
					return false, nil
				} else if ctx.Err() != nil {
					return false, err
				}
				// Could not remove it: it takes space, so count it.
			}
		}
		t.count++
		if e.deep {
			t.truncated = true
		}
		if !e.info.Mode().IsRegular() {
			return true, nil
		}
		if ino, n, ok := linkInfo(e.info); ok && n > 1 {
			if _, dup := seen[ino]; dup {
				return false, nil
			}
			if seen == nil {
				seen = map[inode]struct{}{}
			}
			seen[ino] = struct{}{}
		}
		s := spaceOf(e.info)
		t.apparent += s.apparent
		t.allocated += s.allocated
		t.counted += s.counted
		return false, nil
	}}
	err = wk.run(ctx, top)
	return t, err
}

// sweep removes a stale temporary entry found by a usage scan. A failure is
// logged here and returned so that the scan counts the entry instead.
func (w *Workspace) sweep(ctx context.Context, e *entry) error {
	var err error
	if e.info.IsDir() {
		_, err = removeTree(ctx, e.parent, e.name, e.info)
	} else {
		err = e.parent.Remove(e.name)
	}
	if err != nil && !isNotExist(err) {
		w.log.Warn("workspace: removing a stale temporary entry", "dir", w.dir, "path", e.rel(), "err", err)
		return err
	}
	w.log.Info("workspace: removed a stale temporary entry", "dir", w.dir, "path", e.rel())
	return nil
}

// scanUsage measures the whole workspace for the usage tracker. The first
// scan after Open also sweeps stale temporary entries: a write that was in
// flight when the server crashed left one, invisible to listings and
// uncounted, that nothing else would ever remove.
func (w *Workspace) scanUsage(ctx context.Context) (int64, error) {
	sweep := !w.swept.Load()
	t, err := w.measure(ctx, ".", sweep)
	if err == nil && sweep {
		w.swept.Store(true)
	}
	return t.counted, err
}

// Info is the workspace's space: used, total (the quota) and free bytes;
// total and free are -1 when unlimited.
type Info struct {
	Used  int64 `json:"used"`
	Total int64 `json:"total"`
	Free  int64 `json:"free"`
	// SnapshotBytes is the part of Used that only the workspace's
	// snapshots hold (what deleting them all would free); 0 where the
	// storage driver has no snapshots.
	SnapshotBytes int64 `json:"snapshotBytes"`
}

// Info reports the space used, from the usage tracker's cache (never a walk).
func (w *Workspace) Info(ctx context.Context) Info {
	used := w.usage.Used()
	q := w.quota.Load()
	if q <= 0 {
		return Info{Used: used, Total: -1, Free: -1}
	}
	return Info{Used: used, Total: q, Free: max(q-used, 0)}
}

var typeByExtension = mime.TypeByExtension

// commits are the API paths this Workspace is renaming a temporary entry
// onto, whose change notifications the usage tracker may ignore (the
// commit updates the total itself). Entries whose notification never comes
// (overflow, an unwatched directory) are dropped in bulk past a bound; the
// cost of a missing entry is one needless rescan.
type commits struct {
	mu sync.Mutex
	m  map[string]int
}

const maxCommits = 4096

// add announces a rename onto the API path p; call it before renaming.
func (c *commits) add(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCommits {
		c.m = map[string]int{}
	}
	c.m[p]++
}

// take consumes an announcement for p, reporting whether there was one.
// A rename that failed is taken back the same way.
func (c *commits) take(p string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[p]
	switch {
	case n == 0:
		return false
	case n == 1:
		delete(c.m, p)
	default:
		c.m[p] = n - 1
	}
	return true
}
