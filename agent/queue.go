package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/db"
)

// queue hands out keys one holder at a time, first come first served: runs
// of one in-sandbox agent (key: the agent) and runs of one thread (key: the
// thread) take turns rather than interleave.
type queue struct {
	mu    sync.Mutex
	lanes map[string][]chan struct{} // key → waiters; the head holds the key
}

// acquire waits for key (or for ctx to end) and returns its release.
func (q *queue) acquire(ctx context.Context, key string) (func(), error) {
	me := make(chan struct{})
	q.mu.Lock()
	if q.lanes == nil {
		q.lanes = map[string][]chan struct{}{}
	}
	q.lanes[key] = append(q.lanes[key], me)
	if len(q.lanes[key]) == 1 {
		close(me)
	}
	q.mu.Unlock()
	release := func() { q.leave(key, me) }
	select {
	case <-me:
		return release, nil
	case <-ctx.Done():
		q.leave(key, me)
		return nil, context.Cause(ctx)
	}
}

// leave removes w from key's lane; if w held the key, the next waiter gets it.
func (q *queue) leave(key string, w chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lane := q.lanes[key]
	i := slices.Index(lane, w)
	if i < 0 {
		return
	}
	lane = slices.Delete(lane, i, i+1)
	if len(lane) == 0 {
		delete(q.lanes, key)
		return
	}
	q.lanes[key] = lane
	if i == 0 {
		close(lane[0])
	}
}

// acquireAll takes keys in order; on failure it releases what it took.
func (q *queue) acquireAll(ctx context.Context, keys ...string) (func(), error) {
	var held []func()
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i]()
		}
	}
	for _, k := range keys {
		r, err := q.acquire(ctx, k)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, r)
	}
	return release, nil
}

// holdAll takes, in order, the database lease of each queue key (replicas),
// so that runs of one agent or thread take turns across servers too; it
// waits while another server holds one. The in-process queue was taken
// first: within this process the key is already the caller's alone.
func (s *Service) holdAll(ctx context.Context, keys []string) (func(), error) {
	var held []*db.Held
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			if err := held[i].Release(); err != nil {
				// It expires on its own.
				s.log.Warn("release a run queue lease", "err", err)
			}
		}
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for _, k := range keys {
		for {
			h, ok, err := s.opts.Leases.Hold(ctx, "queue:"+k)
			if err != nil {
				release()
				if ctx.Err() != nil {
					return nil, context.Cause(ctx)
				}
				return nil, err
			}
			if ok {
				held = append(held, h)
				break
			}
			select {
			case <-ctx.Done():
				release()
				return nil, context.Cause(ctx)
			case <-t.C:
			}
		}
	}
	return release, nil
}
