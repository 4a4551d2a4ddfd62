package files

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/base64"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth"
)

// List limits, as in API.md's conventions.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// ListOptions select one page of a directory listing.
type ListOptions struct {
	ShowHidden bool   // include names starting with "."
	Limit      int    // 1..MaxListLimit; 0 means DefaultListLimit
	Cursor     string // NextCursor of the previous page, or ""
	// Sort is SortName (also ""), SortSize or SortMTime; ties are broken by
	// name. Desc reverses the order.
	Sort string
	Desc bool
}

// Listing orders.
const (
	SortName  = "name"
	SortSize  = "size"
	SortMTime = "mtime"
)

// Page is one page of a listing. NextCursor is "" when HasMore is false.
type Page struct {
	Entries    []Entry
	HasMore    bool
	NextCursor string
}

// listBatch is how many names one getdents round reads.
const listBatch = 1024

// listItem is one name of a listing with its sort key (size or mtime; 0 for
// the name order) and, for the keyed orders, its stat.
type listItem struct {
	name string
	key  int64
	info fs.FileInfo
}

// listOrder is a listing's total order: key, then name, maybe reversed.
type listOrder struct {
	keyed, desc bool
}

func (o listOrder) before(a, b listItem) bool {
	c := 0
	if o.keyed {
		c = cmp.Compare(a.key, b.key)
	}
	if c == 0 {
		c = strings.Compare(a.name, b.name)
	}
	if o.desc {
		return c > 0
	}
	return c < 0
}

// sortKey is an entry's key in the keyed orders, as the listing shows it:
// directories have size 0.
func sortKey(sort string, info fs.FileInfo) int64 {
	if sort == SortMTime {
		return info.ModTime().UnixNano()
	}
	if info.IsDir() {
		return 0
	}
	return info.Size()
}

// List returns one page of the directory at p in the order opt asks for
// (by default the raw bytes of the names). The cursor is the last entry
// returned (opaque: base64url of its raw name, preceded by its key for the
// size and mtime orders), so a page is "the Limit first entries after the
// cursor".
//
// Why this order: directories come back from the kernel in hash order, which
// is stable only while nothing changes. A page is cut out of a sorted
// snapshot of the directory, kept between pages while the directory does
// not change (see listcache.go), so that paging through n entries costs
// O(n log n) in all rather than one read of the directory per page. A
// directory too large for a snapshot is listed by streaming it in batches
// of listBatch names and keeping only the Limit+1 first entries past the
// cursor in a bounded heap: memory O(Limit + listBatch), one pass over the
// directory per page (plus one lstat per entry for the size and mtime
// orders). Either way a cursor stays correct while the directory changes
// between pages: no entry that exists throughout (and keeps its key) is
// skipped or repeated.
func (w *Workspace) List(ctx context.Context, p string, opt ListOptions) (Page, error) {
	rel, err := Clean(p)
	if err != nil {
		return Page{}, err
	}
	limit := opt.Limit
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return Page{}, berth.Errorf(berth.Invalid, "limit must be 1..%d", MaxListLimit)
	}
	switch opt.Sort {
	case "":
		opt.Sort = SortName
	case SortName, SortSize, SortMTime:
	default:
		return Page{}, berth.Errorf(berth.Invalid, "sort must be %s, %s or %s", SortName, SortSize, SortMTime)
	}
	order := listOrder{keyed: opt.Sort != SortName, desc: opt.Desc}
	var after *listItem
	if opt.Cursor != "" {
		c, err := decodeCursor(opt.Cursor, order.keyed)
		if err != nil {
			return Page{}, err
		}
		after = &c
	}

	// OpenRoot follows a symlinked directory only inside the workspace.
	dir, err := openDir(w.root, rel)
	if err != nil {
		return Page{}, fsErr(err, apiPath(rel))
	}
	defer closeRead(dir)
	d, err := dir.Open(".")
	if err != nil {
		return Page{}, fsErr(err, apiPath(rel))
	}
	defer func() { closeRead(d) }()

	if dev, ino, stamp, ok := dirStamp(d); ok {
		k := snapKey{dev: dev, ino: ino, sort: opt.Sort, desc: opt.Desc, hidden: opt.ShowHidden}
		var s *snapshot
		// A first page in the size or mtime order reads the directory
		// again: its entries' keys may have changed without it.
		if after != nil || !order.keyed {
			s = snapshots.get(k, stamp)
		}
		if s == nil {
			read := time.Now()
			if s, err = buildSnapshot(ctx, dir, d, rel, opt, order); err != nil {
				return Page{}, err
			}
			if s != nil && len(s.items) > limit && read.Sub(stamp.newest()) >= snapRacy {
				s.key, s.stamp = k, stamp
				snapshots.put(s)
			}
		}
		if s != nil {
			return s.pageOf(dir, rel, order, after, limit)
		}
		// Too large to keep: the bounded heap pass, from the start.
		closeRead(d)
		if d, err = dir.Open("."); err != nil {
			return Page{}, fsErr(err, apiPath(rel))
		}
	}
	return heapPage(ctx, dir, d, rel, opt, order, after, limit)
}

// heapPage reads the whole directory d and keeps the limit+1 first entries
// after the cursor in a bounded heap.
func heapPage(ctx context.Context, dir *os.Root, d *os.File, rel string, opt ListOptions, order listOrder, after *listItem, limit int) (Page, error) {
	h := &itemHeap{order: order}
	for {
		if err := ctx.Err(); err != nil {
			return Page{}, fsErr(err, apiPath(rel))
		}
		names, err := d.Readdirnames(listBatch)
		for _, n := range names {
			if (!opt.ShowHidden && n[0] == '.') || inFlight(n) {
				continue
			}
			it := listItem{name: n}
			if order.keyed {
				info, err := dir.Lstat(n)
				if err != nil {
					if isNotExist(err) {
						continue // removed since we read the directory
					}
					return Page{}, fsErr(err, apiPath(joinRel(rel, n)))
				}
				it.key, it.info = sortKey(opt.Sort, info), info
			}
			if after != nil && !order.before(*after, it) {
				continue
			}
			if h.Len() <= limit {
				heap.Push(h, it)
			} else if order.before(it, h.items[0]) {
				h.items[0] = it
				heap.Fix(h, 0)
			}
		}
		if err == io.EOF || (err == nil && len(names) == 0) {
			break
		}
		if err != nil {
			return Page{}, fsErr(err, apiPath(rel))
		}
	}

	items := h.items
	slices.SortFunc(items, func(a, b listItem) int {
		if order.before(a, b) {
			return -1
		}
		return 1
	})
	page := Page{Entries: make([]Entry, 0, min(len(items), limit))}
	if len(items) > limit {
		items = items[:limit]
		page.HasMore = true
		page.NextCursor = encodeCursor(items[limit-1], order.keyed)
	}
	for _, it := range items {
		info := it.info
		if info == nil {
			var err error
			if info, err = dir.Lstat(it.name); err != nil {
				if isNotExist(err) {
					continue // removed since we read the directory
				}
				return Page{}, fsErr(err, apiPath(joinRel(rel, it.name)))
			}
		}
		page.Entries = append(page.Entries, newEntry(joinRel(rel, it.name), info))
	}
	return page, nil
}

func encodeCursor(it listItem, keyed bool) string {
	if !keyed {
		return base64.RawURLEncoding.EncodeToString([]byte(it.name))
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(it.key, 10) + "/" + it.name))
}

func decodeCursor(c string, keyed bool) (listItem, error) {
	bad := berth.Errorf(berth.Invalid, "invalid cursor (a cursor is only valid with the sort it was made for)")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return listItem{}, bad
	}
	s := string(b)
	var it listItem
	if keyed {
		k, name, ok := strings.Cut(s, "/")
		if !ok {
			return listItem{}, bad
		}
		if it.key, err = strconv.ParseInt(k, 10, 64); err != nil {
			return listItem{}, bad
		}
		s = name
	}
	if s == "" || len(s) > MaxNameLen || strings.Contains(s, "/") {
		return listItem{}, bad
	}
	it.name = s
	return it, nil
}

// inFlight reports whether name is a temporary entry this process is
// using right now, which listings leave out. Every other name is listed,
// including ones that only look temporary (a sandbox may make them; they
// take space and count against the quota).
func inFlight(name string) bool {
	if !isTemp(name) {
		return false
	}
	_, live := liveTemp(name)
	return live
}

// itemHeap is a heap whose top is the last item kept in the listing's
// order: the one to drop when one that comes before it arrives.
type itemHeap struct {
	order listOrder
	items []listItem
}

func (h *itemHeap) Len() int           { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool { return h.order.before(h.items[j], h.items[i]) }
func (h *itemHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *itemHeap) Push(x any)         { h.items = append(h.items, x.(listItem)) }
func (h *itemHeap) Pop() any {
	old := h.items
	x := old[len(old)-1]
	h.items = old[:len(old)-1]
	return x
}
