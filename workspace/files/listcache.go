package files

import (
	"container/list"
	"context"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Listing snapshots. Paging through a large directory with the bounded
// heap of List re-reads the whole directory for every page: a full
// traversal of n entries in pages of k costs n²/k. Instead, a page past the
// first of a directory with more than one page is served from a sorted
// snapshot of its names (and sort keys), found by binary search: a full
// traversal costs one read and one sort, O(n log n).
//
// A snapshot is keyed by the directory's identity (device and inode) and
// the listing's order, and is valid while the directory's mtime and ctime
// are what they were when it was read: adding, removing or renaming an entry
// changes both, and a stale snapshot is rebuilt by the page that finds it so.
// Entries are stat'ed again when a page is served, so a page shows what is on
// disk now. The first page of the size and mtime orders always reads the
// directory again (a file's size or mtime changes without its directory's):
// the rest of that traversal is then in the order of that moment.
//
// Memory stays bounded: the snapshots of the whole process share a byte
// budget (least recently used evicted first), and a directory whose
// snapshot would be larger than snapMaxBytes is listed with the heap pass,
// page by page, as before.
var (
	snapBudget   int64 = 64 << 20 // every snapshot together
	snapMaxBytes int64 = 16 << 20 // one snapshot (about 300,000 names)
)

// snapRacy is how long after a directory's last change a snapshot of it is
// not kept: file times come from a coarse clock, so a change made within the
// same tick as the read would leave mtime unchanged and the snapshot stale.
const snapRacy = 100 * time.Millisecond

type snapKey struct {
	dev, ino uint64
	sort     string
	desc     bool
	hidden   bool
}

type snapStamp struct{ mtime, ctime syscall.Timespec }

// snapItem is one name of a snapshot, with its sort key (0 by name).
type snapItem struct {
	name string
	key  int64
}

const snapItemSize = int64(unsafe.Sizeof(snapItem{}))

type snapshot struct {
	key   snapKey
	stamp snapStamp
	items []snapItem // in the listing's order
	bytes int64
	elem  *list.Element
}

// snapCache is the process's snapshots, least recently used last.
type snapCache struct {
	mu    sync.Mutex
	m     map[snapKey]*snapshot
	lru   list.List
	bytes int64
}

var snapshots = &snapCache{m: map[snapKey]*snapshot{}}

// snapBuilds counts snapshots built (read from disk), for tests.
var snapBuilds atomic.Int64

func (c *snapCache) get(k snapKey, st snapStamp) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[k]
	if s == nil {
		return nil
	}
	if s.stamp != st {
		c.drop(s)
		return nil
	}
	c.lru.MoveToFront(s.elem)
	return s
}

func (c *snapCache) put(s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[s.key]; old != nil {
		c.drop(old)
	}
	for c.bytes+s.bytes > snapBudget && c.lru.Len() > 0 {
		c.drop(c.lru.Back().Value.(*snapshot))
	}
	if s.bytes > snapBudget {
		return
	}
	s.elem = c.lru.PushFront(s)
	c.m[s.key] = s
	c.bytes += s.bytes
}

func (c *snapCache) drop(s *snapshot) {
	c.lru.Remove(s.elem)
	delete(c.m, s.key)
	c.bytes -= s.bytes
}

// dirStamp returns the identity and change stamp of an open directory.
func dirStamp(d *os.File) (dev, ino uint64, st snapStamp, ok bool) {
	info, err := d.Stat()
	if err != nil {
		return 0, 0, st, false
	}
	sys, _ := info.Sys().(*syscall.Stat_t)
	if sys == nil {
		return 0, 0, st, false
	}
	return uint64(sys.Dev), sys.Ino, snapStamp{sys.Mtim, sys.Ctim}, true //nolint:unconvert // Dev's type differs by arch
}

// buildSnapshot reads the whole directory d (of root dir) and sorts it. It
// gives up (nil, nil) when the snapshot would exceed snapMaxBytes.
func buildSnapshot(ctx context.Context, dir *os.Root, d *os.File, rel string, opt ListOptions, order listOrder) (*snapshot, error) {
	snapBuilds.Add(1)
	s := &snapshot{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fsErr(err, apiPath(rel))
		}
		names, err := d.Readdirnames(listBatch)
		for _, n := range names {
			// Names of temporaries in flight stay in: whether one is still
			// in flight is decided when a page is served.
			if !opt.ShowHidden && n[0] == '.' {
				continue
			}
			it := snapItem{name: n}
			if order.keyed {
				info, err := dir.Lstat(n)
				if err != nil {
					if isNotExist(err) {
						continue // removed since we read the directory
					}
					return nil, fsErr(err, apiPath(joinRel(rel, n)))
				}
				it.key = sortKey(opt.Sort, info)
			}
			s.items = append(s.items, it)
			// The name's bytes and allocation header, and the slice's slot.
			s.bytes += snapItemSize + int64(len(n)) + 16
			if s.bytes > snapMaxBytes {
				return nil, nil
			}
		}
		if err == io.EOF || (err == nil && len(names) == 0) {
			break
		}
		if err != nil {
			return nil, fsErr(err, apiPath(rel))
		}
	}
	slices.SortFunc(s.items, func(a, b snapItem) int {
		if order.before(listItem{name: a.name, key: a.key}, listItem{name: b.name, key: b.key}) {
			return -1
		}
		return 1
	})
	return s, nil
}

// pageOf serves one page of the snapshot: the limit first entries after
// the cursor that still exist.
func (s *snapshot) pageOf(dir *os.Root, rel string, order listOrder, after *listItem, limit int) (Page, error) {
	i := 0
	if after != nil {
		a := *after
		i = sort.Search(len(s.items), func(i int) bool {
			it := s.items[i]
			return order.before(a, listItem{name: it.name, key: it.key})
		})
	}
	page := Page{Entries: make([]Entry, 0, min(len(s.items)-i, limit))}
	for ; i < len(s.items) && len(page.Entries) < limit; i++ {
		it := s.items[i]
		if inFlight(it.name) {
			continue
		}
		info, err := dir.Lstat(it.name)
		if err != nil {
			if isNotExist(err) {
				continue // removed since the snapshot was taken
			}
			return Page{}, fsErr(err, apiPath(joinRel(rel, it.name)))
		}
		page.Entries = append(page.Entries, newEntry(joinRel(rel, it.name), info))
		if len(page.Entries) == limit && i+1 < len(s.items) {
			page.HasMore = true
			page.NextCursor = encodeCursor(listItem{name: it.name, key: it.key}, order.keyed)
		}
	}
	return page, nil
}

func (st snapStamp) newest() time.Time {
	m, c := time.Unix(st.mtime.Unix()), time.Unix(st.ctime.Unix())
	if c.After(m) {
		return c
	}
	return m
}
