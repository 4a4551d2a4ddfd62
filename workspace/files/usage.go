package files

import (
	"context"
	"sync"
	"time"

	"github.com/berth-dev/berth"
)

// Usage tracks a workspace's size without walking the tree on every request:
// the sum over its regular files, each inode once, of the data bytes the
// disk holds for them (see spaceOf: a sparse file counts its allocated
// blocks, not its apparent size). Everything on disk counts, whoever made
// it, except the temporary files of writes in flight, whose bytes are held
// by their reservations instead.
//
// The total comes from a full scan, kept in memory. Writes through this
// package adjust it directly as they commit. Changes made behind the server's
// back (by a sandbox) are caught by a rescan in the background, triggered by a
// change notification (Invalidate, gathered for the debounce interval) or,
// failing those, when the cached value is older than the TTL. Used never
// waits for a scan: the value it returns is eventually exact.
//
// In-flight writes reserve their bytes as they stream (Reserve), so that
// concurrent writes cannot together pass the quota.
type Usage struct {
	scan     func(context.Context) (int64, error)
	ttl      time.Duration
	debounce time.Duration
	onClose  func()

	mu       sync.Mutex
	used     int64
	reserved int64
	scanned  time.Time // when the last scan finished; zero before the first
	changed  bool      // API commits happened while a scan was running
	scanning bool
	lastErr  error

	kick      chan struct{}
	ready     chan struct{} // closed when the first scan has ended
	readyOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
}

func newUsage(scan func(context.Context) (int64, error), ttl, debounce time.Duration) *Usage {
	ctx, cancel := context.WithCancel(context.Background())
	u := &Usage{
		scan: scan, ttl: ttl, debounce: debounce,
		kick: make(chan struct{}, 1), ready: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	go u.loop()
	u.Invalidate() // first scan right away
	return u
}

// newUnmeasured is the Usage of a tree opened with NoUsage: no goroutine,
// no scan, ever.
func newUnmeasured() *Usage {
	errNo := berth.Errorf(berth.NotSupported, "this tree is not measured (a snapshot: its storage driver reports its size)")
	u := &Usage{
		scan:    func(context.Context) (int64, error) { return 0, errNo },
		ttl:     time.Duration(1<<63 - 1), // Used never asks for a rescan
		kick:    make(chan struct{}, 1),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		lastErr: errNo,
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	close(u.ready)
	close(u.done)
	return u
}

// Used returns the cached total in bytes (plus nothing in flight). If the
// cache is older than the TTL it asks for a rescan in the background.
func (u *Usage) Used() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.scanning && time.Since(u.scanned) > u.ttl {
		u.kickLocked()
	}
	return u.used
}

// wait blocks until the first scan has ended, so that quota checks right
// after Open do not start from zero.
func (u *Usage) wait(ctx context.Context) error {
	select {
	case <-u.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until the first scan has ended, then reports why no scan has
// succeeded yet, if none has: after it, Used is a real total.
func (u *Usage) Wait(ctx context.Context) error {
	if err := u.wait(ctx); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.scanned.IsZero() {
		if u.lastErr != nil {
			return u.lastErr
		}
		return berth.Errorf(berth.Unavailable, "workspace closed before its size was known")
	}
	return nil
}

// Refresh rescans now and waits for the result.
func (u *Usage) Refresh(ctx context.Context) error {
	n, err := u.scan(ctx)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.used, u.scanned, u.changed = n, time.Now(), false
	u.mu.Unlock()
	return nil
}

// Invalidate says the tree changed: rescan after the debounce interval.
func (u *Usage) Invalidate() {
	u.mu.Lock()
	u.kickLocked()
	u.mu.Unlock()
}

func (u *Usage) kickLocked() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// Close stops the background scans.
func (u *Usage) Close() {
	u.cancel()
	<-u.done
	if u.onClose != nil {
		u.onClose()
	}
}

func (u *Usage) loop() {
	defer close(u.done)
	defer u.readyOnce.Do(func() { close(u.ready) })
	first := true
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-u.kick:
		}
		if !first {
			// Gather a burst of notifications into one scan.
			select {
			case <-u.ctx.Done():
				return
			case <-time.After(u.debounce):
			}
			select {
			case <-u.kick:
			default:
			}
		}
		u.mu.Lock()
		u.scanning, u.changed = true, false
		u.mu.Unlock()
		n, err := u.scan(u.ctx)
		u.mu.Lock()
		u.scanning = false
		u.lastErr = err
		if err == nil {
			u.scanned = time.Now()
			if u.changed {
				// A commit raced the scan, which may or may not have seen
				// it: keep the total the commits maintain (the scan's
				// could be missing a commit, and a later delete would
				// then take the total below the truth) and scan again.
				u.kickLocked()
			} else {
				u.used = n
			}
		}
		u.mu.Unlock()
		if first {
			first = false
			u.readyOnce.Do(func() { close(u.ready) })
		}
	}
}

// reservation is the bytes one write (or copy) holds against the quota.
type reservation struct {
	u       *Usage
	quota   int64
	credit  int64 // bytes the write frees when it commits (the file it replaces)
	written int64
	held    int64
}

// grow accounts n more bytes written, holding more against the quota as
// needed. It fails with QuotaExceeded once the write would cross the quota.
func (r *reservation) grow(n int64) error {
	r.written += n
	need := r.written - r.credit - r.held
	if need <= 0 {
		return nil
	}
	u := r.u
	u.mu.Lock()
	defer u.mu.Unlock()
	if r.quota > 0 && u.used+u.reserved+need > r.quota {
		return berth.Errorf(berth.QuotaExceeded, "workspace quota of %d bytes exceeded", r.quota)
	}
	u.reserved += need
	r.held += need
	return nil
}

// done releases the reservation and, if the write committed, moves its net
// bytes (written minus credit) into the total.
func (r *reservation) done(committed bool) {
	r.u.commit(-r.held, committed, r.written-r.credit)
	r.held = 0
}

func (u *Usage) commit(reserved int64, committed bool, delta int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reserved += reserved
	if committed {
		u.used = max(u.used+delta, 0)
		if u.scanning {
			u.changed = true
		}
	}
}

// add moves delta bytes into the total (for deletes and overwrites).
func (u *Usage) add(delta int64) { u.commit(0, true, delta) }
