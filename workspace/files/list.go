package files

import (
	"container/heap"
	"context"
	"encoding/base64"
	"io"
	"slices"

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
}

// Page is one page of a listing. NextCursor is "" when HasMore is false.
type Page struct {
	Entries    []Entry
	HasMore    bool
	NextCursor string
}

// listBatch is how many names one getdents round reads.
const listBatch = 1024

// List returns one page of the directory at p, ordered by the raw bytes of the
// names. The cursor is the last name returned (opaque: base64url of its raw
// bytes), so a page is "the Limit smallest names greater than the cursor".
//
// Why this order: directories come back from the kernel in hash order, which
// is stable only while nothing changes; sorting the whole directory per page
// would hold every name in memory. Instead each page streams the directory in
// batches of listBatch names and keeps only the Limit+1 smallest names past
// the cursor in a bounded heap. Memory per page is O(Limit + listBatch)
// whatever the directory size; time is one pass over the directory. A name
// cursor also stays correct while the directory changes between pages: no
// entry that exists throughout is skipped or repeated.
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
	after := ""
	if opt.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(opt.Cursor)
		if err != nil || len(b) == 0 || len(b) > MaxNameLen {
			return Page{}, berth.Errorf(berth.Invalid, "invalid cursor")
		}
		after = string(b)
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
	defer closeRead(d)

	h := &nameHeap{}
	for {
		if err := ctx.Err(); err != nil {
			return Page{}, fsErr(err, apiPath(rel))
		}
		names, err := d.Readdirnames(listBatch)
		for _, n := range names {
			if n <= after || (!opt.ShowHidden && n[0] == '.') || inFlight(n) {
				continue
			}
			if h.Len() <= limit {
				heap.Push(h, n)
			} else if n < (*h)[0] {
				(*h)[0] = n
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

	names := []string(*h)
	slices.Sort(names)
	page := Page{Entries: make([]Entry, 0, min(len(names), limit))}
	if len(names) > limit {
		names = names[:limit]
		page.HasMore = true
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(names[limit-1]))
	}
	for _, n := range names {
		info, err := dir.Lstat(n)
		if err != nil {
			if isNotExist(err) {
				continue // removed since we read the directory
			}
			return Page{}, fsErr(err, apiPath(joinRel(rel, n)))
		}
		page.Entries = append(page.Entries, newEntry(joinRel(rel, n), info))
	}
	return page, nil
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

// nameHeap is a max-heap of names: its top is the largest name kept, the one
// to drop when a smaller one arrives.
type nameHeap []string

func (h nameHeap) Len() int           { return len(h) }
func (h nameHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h nameHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nameHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *nameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
