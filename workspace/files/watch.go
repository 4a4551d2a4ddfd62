package files

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

// Event types reported by Watch.
const (
	EventCreate = "create"
	EventWrite  = "write"
	EventRemove = "remove"
	EventRename = "rename"
	// EventOverflow says events were lost (the kernel queue or the
	// subscriber's buffer overflowed): re-list to resynchronise.
	EventOverflow = "overflow"
)

// Event is one change in the workspace. Path is the entry's API path from the
// workspace root; OldPath is set for renames. A write through this package
// (temporary file renamed over the target) is one "write" event for the target.
type Event struct {
	Type    string `json:"type"`
	Path    string `json:"path"`
	OldPath string `json:"oldPath,omitempty"`
	api     bool   // caused by this package's own atomic replace
}

// watchBuffer is how many events a slow Watch consumer may lag behind before
// events are dropped (and an overflow event sent when it catches up).
const watchBuffer = 256

// Watch reports changes below the directory at p (recursively), whether made
// through this package or directly in the directory by a sandbox. The channel
// closes when ctx ends or the Workspace is closed; every watch is then
// released.
//
// All Watch calls and the usage tracker of one Workspace share one inotify
// instance with one watch per directory, up to Options.MaxWatchDirs and
// MaxDepth levels; changes in directories past those bounds are not reported.
// "write" is reported when a writer closes the file (IN_CLOSE_WRITE), not on
// every write(2).
//
// A directory that appears (made, or moved in from outside the watched tree)
// is watched first and then scanned: a "create" is reported for every entry
// already in it, at any depth, so nothing made there before its watch landed
// is missed. An entry made while that happens can be reported as created
// twice, and one found by the scan gets no "write" of its own: treat
// "create" as "exists now", not as "did not exist before". A directory moved
// within the tree keeps its watches and is reported as one "rename".
func (w *Workspace) Watch(ctx context.Context, p string) (<-chan Event, error) {
	rel, err := Clean(p)
	if err != nil {
		return nil, err
	}
	info, err := w.root.Stat(rel)
	if err != nil {
		return nil, fsErr(err, apiPath(rel))
	}
	if !info.IsDir() {
		return nil, berth.Errorf(berth.Invalid, "%s: not a directory", apiPath(rel))
	}
	ch := make(chan Event, watchBuffer)
	lost := false
	send := func(e Event) { // called with the hub's lock held: never blocks
		if lost {
			select {
			case ch <- Event{Type: EventOverflow, Path: apiPath(rel)}:
				lost = false
			default:
				return
			}
		}
		select {
		case ch <- e:
		default:
			lost = true
		}
	}
	unsub, err := w.hub.subscribe(rel, send)
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-w.hub.closing:
		}
		unsub()
		close(ch)
	}()
	return ch, nil
}

// The kernel limits inotify instances and watches per user, not per process
// (by default 128 instances), and berth often runs as the same user as the
// engine and the init system (root). These process-wide budgets keep a
// tenant who watches many workspaces at once, or whose sandbox makes
// thousands of directories, from using up the host's: past them Watch is
// Unavailable, and the usage tracker falls back to its TTL.
var (
	maxInotifyInstances int64 = 64
	maxInotifyWatches   int64 = 65536
	inotifyInstances    atomic.Int64
	inotifyWatches      atomic.Int64
)

type subscriber struct {
	dir string
	fn  func(Event)
}

// hub owns a workspace's inotify instance while anyone subscribes.
type hub struct {
	w       *Workspace
	maxDirs int
	closing chan struct{}

	mu     sync.Mutex
	closed bool
	subs   map[*subscriber]struct{}
	f      *os.File // the inotify descriptor; nil while nobody listens
	ifd    int      // f's descriptor number (f.Fd would make f blocking)
	done   chan struct{}
	wds    map[int32]string // watch descriptor → raw relative directory
	dirs   map[string]int32
	// counted is how many of wds are counted in inotifyWatches.
	counted int64
}

func newHub(w *Workspace, maxDirs int) *hub {
	return &hub{w: w, maxDirs: maxDirs, closing: make(chan struct{}), subs: map[*subscriber]struct{}{}}
}

const watchMask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_DELETE | unix.IN_MOVED_FROM |
	unix.IN_MOVED_TO | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

func (h *hub) subscribe(dir string, fn func(Event)) (unsub func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, berth.Errorf(berth.Unavailable, "workspace closed")
	}
	if h.f == nil {
		if err := h.start(); err != nil {
			return nil, err
		}
	}
	s := &subscriber{dir: dir, fn: fn}
	h.subs[s] = struct{}{}
	var once sync.Once
	return func() { once.Do(func() { h.unsubscribe(s) }) }, nil
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	if len(h.subs) > 0 || h.f == nil {
		h.mu.Unlock()
		return
	}
	f, done := h.f, h.done
	h.f = nil
	h.release()
	h.mu.Unlock()
	h.closeInotify(f) // ends readLoop's Read
	<-done
}

// closeInotify closes an inotify descriptor; a failure is only logged (the
// descriptor is gone either way, and its watches with it).
func (h *hub) closeInotify(f *os.File) {
	if err := f.Close(); err != nil {
		h.w.log.Warn("watch: closing the inotify instance", "dir", h.w.dir, "err", err)
	}
}

// release returns the instance and its watches to the budgets, once h.f is
// nil. h.mu is held.
func (h *hub) release() {
	inotifyWatches.Add(-h.counted)
	h.counted = 0
	inotifyInstances.Add(-1)
}

// count brings inotifyWatches up to date with wds. h.mu is held.
func (h *hub) count() {
	n := int64(len(h.wds))
	inotifyWatches.Add(n - h.counted)
	h.counted = n
}

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.closing)
	f, done := h.f, h.done
	h.f = nil
	if f != nil {
		h.release()
	}
	h.mu.Unlock()
	if f != nil {
		h.closeInotify(f)
		<-done
	}
}

// start creates the inotify instance and watches the tree. h.mu is held.
func (h *hub) start() error {
	if inotifyInstances.Add(1) > maxInotifyInstances {
		inotifyInstances.Add(-1)
		return &berth.Error{Kind: berth.Unavailable, RetryAfter: 10 * time.Second,
			Msg: "cannot watch the workspace: too many workspaces are watched at once; try again later"}
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		inotifyInstances.Add(-1)
		return berth.Wrap(berth.Unavailable, err, "cannot watch the workspace")
	}
	h.f = os.NewFile(uintptr(fd), "inotify") // non-blocking: Close interrupts Read
	h.ifd = fd
	h.done = make(chan struct{})
	h.wds, h.dirs = map[int32]string{}, map[string]int32{}
	top, err := h.w.root.Open(".")
	if err == nil {
		err = h.addWatch(top, ".")
		closeRead(top)
	}
	if err != nil {
		h.closeInotify(h.f)
		h.f = nil
		h.wds, h.dirs = nil, nil
		h.release()
		return berth.Wrap(berth.Unavailable, err, "cannot watch the workspace")
	}
	h.addTree(".", false)
	h.count()
	go h.readLoop(h.f, h.done)
	return nil
}

// addWatch watches the already opened directory d. The watch is added through
// /proc/self/fd, so it lands on exactly the directory opened through the
// root: inotify_add_watch on a path would follow a symlink swapped in by the
// sandbox and could watch (and report names in) a directory outside.
func (h *hub) addWatch(d *os.File, rel string) error {
	_, err := h.addWatchFresh(d, rel)
	return err
}

// addWatchFresh is addWatch, also telling whether d was already watched
// under rel (then its contents were scanned when that watch was added, and
// everything since has been reported by its own events).
func (h *hub) addWatchFresh(d *os.File, rel string) (fresh bool, err error) {
	if len(h.dirs) >= h.maxDirs {
		return false, nil
	}
	if inotifyWatches.Load()+int64(len(h.wds))-h.counted >= maxInotifyWatches {
		return false, errFull
	}
	var wd int
	sc, err := d.SyscallConn()
	if err != nil {
		return false, err
	}
	cerr := sc.Control(func(fd uintptr) {
		wd, err = unix.InotifyAddWatch(h.ifd, "/proc/self/fd/"+strconv.Itoa(int(fd)), watchMask)
	})
	if cerr != nil {
		return false, cerr
	}
	if err != nil {
		return false, err
	}
	if old, ok := h.wds[int32(wd)]; ok {
		if old == rel {
			return false, nil
		}
		delete(h.dirs, old) // same directory, seen under a new name
	}
	h.wds[int32(wd)] = rel
	h.dirs[rel] = int32(wd)
	return true, nil
}

// addTree watches the directories below rel (already watched itself). With
// report it also emits a create for every entry it finds: rel is new, and
// what was made in it before its watch landed has no event of its own. h.mu
// is held.
//
// Each directory is watched before its names are read (the walker reads a
// directory's names only after visit returned), so an entry made at any
// moment is either read by the scan or has an event queued after this one:
// none is lost, but one made between the watch and the read is reported
// twice.
func (h *hub) addTree(rel string, report bool) {
	if len(h.dirs) >= h.maxDirs {
		return
	}
	top, err := openDir(h.w.root, rel)
	if err != nil {
		return
	}
	defer closeRead(top)
	wk := &walker{}
	wk.visit = func(e *entry) (bool, error) {
		erel := ""
		if report || e.info.IsDir() {
			erel = joinRel(rel, e.rel())
		}
		if report {
			h.emit(Event{Type: EventCreate, Path: apiPath(erel)}, erel)
		}
		if !e.info.IsDir() || e.deep {
			return false, nil
		}
		if len(h.dirs) >= h.maxDirs {
			return false, errFull
		}
		d, err := e.parent.OpenFile(e.name, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return false, nil
		}
		defer closeRead(d)
		if st, err := d.Stat(); err != nil || !os.SameFile(st, e.info) {
			return false, nil
		}
		return true, h.addWatch(d, erel)
	}
	if err := wk.run(context.Background(), top); err != nil && !errors.Is(err, errFull) && !isNotExist(err) {
		// Directories below rel go unwatched: their changes are missed.
		h.w.log.Warn("watch: walking a new directory", "dir", h.w.dir, "path", apiPath(rel), "err", err)
	}
}

var errFull = errors.New("watch limit reached")

// addDir watches a directory that just appeared at rel, then everything
// below it, reporting what is already there as created (see addTree). A
// directory already watched under rel was scanned when that watch was added,
// so it is not scanned again.
func (h *hub) addDir(rel string) {
	dirRel, base := splitRel(rel)
	parent, err := openDir(h.w.root, dirRel)
	if err != nil {
		return
	}
	defer closeRead(parent)
	info, err := parent.Lstat(base)
	if err != nil || !info.IsDir() {
		return
	}
	d, err := parent.OpenFile(base, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	st, err := d.Stat()
	if err != nil || !os.SameFile(st, info) {
		closeRead(d)
		return
	}
	fresh, err := h.addWatchFresh(d, rel)
	closeRead(d)
	if err == nil && fresh {
		h.addTree(rel, true)
	}
}

// moveDirs renames the watched directories at and below from to the same
// paths below to. A watch follows its directory's inode, so a directory moved
// within the tree stays watched throughout and nothing in it is missed.
func (h *hub) moveDirs(from, to string) {
	h.dropDir(to) // an empty directory the move replaced
	moved := map[string]int32{}
	for r, wd := range h.dirs {
		if within(r, from) {
			moved[to+r[len(from):]] = wd
			delete(h.dirs, r)
		}
	}
	for r, wd := range moved {
		h.dirs[r] = wd
		h.wds[wd] = r
	}
}

// dropDir forgets the watches at and below rel (moved away or removed).
func (h *hub) dropDir(rel string) {
	for r, wd := range h.dirs {
		if within(r, rel) {
			// EINVAL: the kernel already dropped it (the directory is gone).
			if _, err := unix.InotifyRmWatch(h.ifd, uint32(wd)); err != nil && !errors.Is(err, unix.EINVAL) {
				h.w.log.Warn("watch: removing a watch", "dir", h.w.dir, "path", apiPath(r), "err", err)
			}
			delete(h.dirs, r)
			delete(h.wds, wd)
		}
	}
}

func (h *hub) readLoop(f *os.File, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.f != f {
			h.mu.Unlock()
			return
		}
		h.handle(buf[:n])
		h.count()
		h.mu.Unlock()
	}
}

type pendingMove struct {
	cookie uint32
	rel    string
	isDir  bool
}

// handle decodes one read of inotify events. h.mu is held.
func (h *hub) handle(buf []byte) {
	var from *pendingMove
	flushFrom := func() {
		if from != nil {
			if from.isDir {
				h.dropDir(from.rel)
			}
			if _, base := splitRel(from.rel); !isTemp(base) {
				h.emit(Event{Type: EventRemove, Path: apiPath(from.rel)}, from.rel)
			}
			from = nil
		}
	}
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
		off += unix.SizeofInotifyEvent + int(ev.Len)
		mask := ev.Mask
		if mask&unix.IN_Q_OVERFLOW != 0 {
			flushFrom()
			h.emit(Event{Type: EventOverflow, Path: "/"}, ".")
			continue
		}
		dir, ok := h.wds[ev.Wd]
		if mask&unix.IN_IGNORED != 0 {
			if ok {
				delete(h.wds, ev.Wd)
				if h.dirs[dir] == ev.Wd {
					delete(h.dirs, dir)
				}
			}
			continue
		}
		if !ok {
			continue
		}
		name := string(bytes.TrimRight(nameBytes, "\x00"))
		if name == "" {
			continue
		}
		rel := joinRel(dir, name)
		isDir := mask&unix.IN_ISDIR != 0
		if mask&unix.IN_MOVED_TO != 0 && from != nil && from.cookie == ev.Cookie {
			old := from
			from = nil
			_, oldBase := splitRel(old.rel)
			switch {
			case isTemp(name):
			case isTemp(oldBase):
				h.emit(Event{Type: EventWrite, Path: apiPath(rel), api: true}, rel)
			default:
				h.emit(Event{Type: EventRename, Path: apiPath(rel), OldPath: apiPath(old.rel)}, rel)
			}
			if old.isDir {
				if _, watched := h.dirs[old.rel]; watched {
					h.moveDirs(old.rel, rel)
				} else {
					h.addDir(rel) // its contents are news: reported after the rename
				}
			}
			continue
		}
		flushFrom()
		switch {
		case mask&unix.IN_MOVED_FROM != 0:
			// Held until the next event: a matching IN_MOVED_TO makes it
			// a rename, anything else a removal from our view.
			from = &pendingMove{cookie: ev.Cookie, rel: rel, isDir: isDir}
		case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			if !isTemp(name) {
				h.emit(Event{Type: EventCreate, Path: apiPath(rel)}, rel)
			}
			if isDir {
				h.addDir(rel) // after its own create: parents are reported first
			}
		case mask&unix.IN_CLOSE_WRITE != 0:
			if !isTemp(name) {
				h.emit(Event{Type: EventWrite, Path: apiPath(rel)}, rel)
			}
		case mask&unix.IN_DELETE != 0:
			if isDir {
				h.dropDir(rel)
			}
			if !isTemp(name) {
				h.emit(Event{Type: EventRemove, Path: apiPath(rel)}, rel)
			}
		}
	}
	flushFrom()
}

func (h *hub) emit(e Event, rel string) {
	if hasTemp(rel) {
		return // inside an in-flight copy: reported once it is renamed in place
	}
	for s := range h.subs {
		if within(rel, s.dir) {
			s.fn(e)
		}
	}
}

// hasTemp reports whether a component of rel is one of this package's
// temporary names.
func hasTemp(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if isTemp(seg) {
			return true
		}
	}
	return false
}
