package files

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth"
)

// Watching many workspaces at once (or one with a huge tree) must not use up
// the inotify instances and watches the kernel grants the whole user: past
// the process-wide budget Watch is Unavailable, and a freed slot is reusable.
func TestInotifyBudget(t *testing.T) {
	oldI, oldW := maxInotifyInstances, maxInotifyWatches
	maxInotifyInstances, maxInotifyWatches = inotifyInstances.Load()+2, inotifyWatches.Load()+5
	t.Cleanup(func() { maxInotifyInstances, maxInotifyWatches = oldI, oldW })

	ctx := context.Background()
	open := func(dirs int) *Workspace {
		dir := t.TempDir()
		for i := range dirs {
			if err := os.Mkdir(filepath.Join(dir, "d"+string(rune('a'+i))), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		w, err := Open(dir, Options{NoUsageWatch: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeWS(t, w) })
		return w
	}
	a, b, c := open(10), open(0), open(0)
	actx, cancelA := context.WithCancel(ctx)
	if _, err := a.Watch(actx, "/"); err != nil {
		t.Fatalf("first watch: %v", err)
	}
	if got := len(a.hub.wds); got > 5 {
		t.Errorf("a watches %d directories, over the budget of 5", got)
	}
	// The watch budget is spent: b's watch has no room for its root.
	if _, err := b.Watch(ctx, "/"); !berth.IsKind(err, berth.Unavailable) {
		t.Errorf("watch past the watch budget: %v, want unavailable", err)
	}
	cancelA()
	waitFor(t, func() bool { return inotifyWatches.Load() == maxInotifyWatches-5 })
	bctx, cancelB := context.WithCancel(ctx)
	defer cancelB()
	if _, err := b.Watch(bctx, "/"); err != nil {
		t.Fatalf("watch after a freed slot: %v", err)
	}
	if _, err := a.Watch(ctx, "/"); err != nil {
		t.Fatalf("second instance: %v", err)
	}
	if _, err := c.Watch(ctx, "/"); !berth.IsKind(err, berth.Unavailable) || berth.RetryAfter(err) <= 0 {
		t.Errorf("watch past the instance budget: %v, want unavailable with a retry hint", err)
	}
}
