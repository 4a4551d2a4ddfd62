package berth

import (
	"context"
	"sync"
)

// AccessLoss says that users may have lost access to workspaces: a grant
// was revoked, a member removed or demoted. It names the scope to re-check,
// not a verdict: whoever acts on it asks the workspace policy again.
type AccessLoss struct {
	OrgID       string
	UserID      string // "" = any user of the org
	WorkspaceID string // "" = any workspace of the org
}

// AccessFeed carries AccessLoss notices from the services that change access
// (auth, workspace) to those that must act at once (the sandbox manager
// stops sandboxes that mount what their owner may no longer use). server.New
// makes one, gives it to the publishers' constructors and subscribes the
// consumers before it serves. Publishers call AccessLost after their change
// is committed and before they answer, so the effect is in place when the
// revoking request returns.
type AccessFeed struct {
	mu   sync.RWMutex
	subs []func(context.Context, AccessLoss)
}

// Subscribe adds fn to the consumers. fn must handle its own errors (log
// them): the change is committed already, and a periodic re-check (the
// sandbox reconciler) is the backstop.
func (f *AccessFeed) Subscribe(fn func(context.Context, AccessLoss)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, fn)
}

// AccessLost tells every consumer, in order, and returns when they are done.
func (f *AccessFeed) AccessLost(ctx context.Context, l AccessLoss) {
	f.mu.RLock()
	subs := f.subs
	f.mu.RUnlock()
	for _, fn := range subs {
		fn(ctx, l)
	}
}
