package workspace

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace/files"
)

// Default watch limits (FilesOptions). Each workspace that streams keep
// open holds one inotify instance of the process-wide budget of files (64):
// one organization may take half of it, and all streams together three
// quarters, the rest staying for workspaces that other requests open (their
// usage trackers watch them too). Streams on one workspace share its
// instance, so those two limits count workspaces; one user's limit counts
// streams, which also bounds the connections they hold.
const (
	DefaultWatchesPerUser          = 16
	DefaultWatchedWorkspacesPerOrg = 32
	DefaultWatchedWorkspaces       = 48
)

// watchRetryAfter is the wait suggested to a caller past a watch limit. A
// stream lasts as long as its client keeps it, so no better estimate exists;
// this keeps retrying clients from hammering the server.
const watchRetryAfter = 10 * time.Second

// watchCounts are the watch streams in flight: by user, and by workspace
// (server-wide and per organization; the number of keys is how many
// workspaces streams keep open).
type watchCounts struct {
	byUser      map[string]int
	byWorkspace map[string]int
	byOrg       map[string]map[string]int // org → workspace → streams
	total       int
}

// Watch starts a stream of the changes below the directory p of w (see
// files.Workspace.Watch) for the caller on ctx, within the watch limits:
// past WatchesPerUser streams of the caller, or for a workspace the caller's
// organization does not watch yet while it watches WatchedWorkspacesPerOrg,
// it fails with TooManyRequests; for a workspace no stream watches yet while
// WatchedWorkspaces are, with Unavailable. Both carry a retry hint. A stream
// on a workspace already watched shares its inotify instance, so the
// workspace limits do not refuse it. Call stop when done: it ends the
// stream and frees its slot. The events channel also closes when the
// workspace is closed.
func (f *Files) Watch(ctx context.Context, w *Workspace, p string) (events <-chan files.Event, stop func(), err error) {
	user, org := "", w.OrgID
	if c := berth.CallerFrom(ctx); c != nil {
		user, org = c.UserID, c.OrgID
	}
	if err := f.takeWatch(user, org, w.ID); err != nil {
		return nil, nil, err
	}
	fw, release, err := f.Acquire(ctx, w)
	if err != nil {
		f.dropWatch(user, org, w.ID)
		return nil, nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	events, err = fw.Watch(wctx, p)
	if err != nil {
		cancel()
		release()
		f.dropWatch(user, org, w.ID)
		return nil, nil, err
	}
	return events, sync.OnceFunc(func() {
		cancel()
		release()
		f.dropWatch(user, org, w.ID)
	}), nil
}

func (f *Files) takeWatch(user, org, ws string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.watches
	if c.byUser == nil {
		c.byUser, c.byWorkspace, c.byOrg = map[string]int{}, map[string]int{}, map[string]map[string]int{}
	}
	limited := func(format string, args ...any) error {
		return &berth.Error{Kind: berth.TooManyRequests, Msg: fmt.Sprintf(format, args...), RetryAfter: watchRetryAfter}
	}
	orgWS := c.byOrg[org]
	switch {
	case c.byUser[user] >= f.opt.WatchesPerUser:
		return limited("you have %d watch streams open, the most one user may hold at once; close one first", c.byUser[user])
	case orgWS[ws] == 0 && len(orgWS) >= f.opt.WatchedWorkspacesPerOrg:
		return limited("your organization watches %d workspaces, the most it may watch at once; close a watch of another workspace first", len(orgWS))
	case c.byWorkspace[ws] == 0 && len(c.byWorkspace) >= f.opt.WatchedWorkspaces:
		return &berth.Error{Kind: berth.Unavailable, RetryAfter: watchRetryAfter,
			Msg: "too many workspaces are watched at once; try again later"}
	}
	if orgWS == nil {
		orgWS = map[string]int{}
		c.byOrg[org] = orgWS
	}
	c.byUser[user]++
	orgWS[ws]++
	c.byWorkspace[ws]++
	c.total++
	return nil
}

func (f *Files) dropWatch(user, org, ws string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.watches
	dec := func(m map[string]int, k string) {
		if m[k]--; m[k] <= 0 {
			delete(m, k)
		}
	}
	dec(c.byUser, user)
	dec(c.byWorkspace, ws)
	if dec(c.byOrg[org], ws); len(c.byOrg[org]) == 0 {
		delete(c.byOrg, org)
	}
	c.total--
}
