package workspace

import (
	"context"
	"sync"
	"time"

	"github.com/berth-dev/berth"
)

// ArchiveLimits bound the directory downloads (zip, tar.gz) that run at
// once, server-wide. Each holds a compressor (about 1 MiB), a walk, a spool
// for the zip directory and a client connection for as long as the client
// reads, and costs CPU: without a bound, a few clients asking for large trees
// starve every other request. The zero value is usable.
type ArchiveLimits struct {
	// Max is how many archives are made at once (default 4).
	Max int
	// Wait is how long a request waits for a turn before it is refused with
	// 503 and Retry-After (default 15s).
	Wait time.Duration
}

func (l ArchiveLimits) withDefaults() ArchiveLimits {
	if l.Max <= 0 {
		l.Max = 4
	}
	if l.Wait <= 0 {
		l.Wait = 15 * time.Second
	}
	return l
}

// archiveGate is the server-wide semaphore of ArchiveLimits.
type archiveGate struct {
	lim ArchiveLimits

	mu      sync.Mutex
	running int
	waiting int
	changed chan struct{} // closed and replaced at every change of the counts
}

func newArchiveGate(lim ArchiveLimits) *archiveGate {
	return &archiveGate{lim: lim.withDefaults(), changed: make(chan struct{})}
}

// notifyLocked wakes everyone waiting for a change.
func (g *archiveGate) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// start takes a slot, waiting up to lim.Wait, until ctx ends or stop closes.
func (g *archiveGate) start(ctx context.Context, stop <-chan struct{}) (done func(), err error) {
	release := sync.OnceFunc(func() {
		g.mu.Lock()
		g.running--
		g.notifyLocked()
		g.mu.Unlock()
	})
	var timeout <-chan time.Time
	g.mu.Lock()
	for {
		if g.running < g.lim.Max {
			g.running++
			g.notifyLocked()
			g.mu.Unlock()
			return release, nil
		}
		changed := g.changed
		if timeout == nil {
			t := time.NewTimer(g.lim.Wait)
			defer t.Stop()
			timeout = t.C
			g.waiting++
			g.notifyLocked()
			changed = g.changed
			defer func() {
				g.mu.Lock()
				g.waiting--
				g.notifyLocked()
				g.mu.Unlock()
			}()
		}
		g.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			return nil, &berth.Error{Kind: berth.Unavailable, Msg: "too many archive downloads in progress; retry later",
				Err: &BusyError{RetryAfter: g.lim.Wait}}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-stop:
			return nil, berth.Errorf(berth.Unavailable, "server is shutting down")
		}
		g.mu.Lock()
	}
}

// BusyError is the cause of the Unavailable error of a request that found
// no archive slot in time; RetryAfter is what the client should wait before
// trying again.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return "the server is making as many archives as it allows"
}

// StartArchive takes one of the server's archive slots, waiting up to
// ArchiveLimits.Wait for one to free. Call done when the archive is finished
// (or abandoned). When no slot frees in time it returns an Unavailable error
// wrapping a *BusyError; when ctx ends first, ctx's error.
func (f *Files) StartArchive(ctx context.Context) (done func(), err error) {
	return f.archives.start(ctx, f.stop)
}

// ArchiveStats is a snapshot of the archive slots.
type ArchiveStats struct {
	Running, Waiting int
	// Changed is closed at the next change of either count (tests wait on
	// it rather than poll).
	Changed <-chan struct{}
}

// ArchiveStats reports archives running and requests waiting for a turn.
func (f *Files) ArchiveStats() ArchiveStats { return f.archives.stats() }

func (g *archiveGate) stats() ArchiveStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return ArchiveStats{Running: g.running, Waiting: g.waiting, Changed: g.changed}
}
