package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/db"
)

// DefaultLeaseTTL is how long a replica's leases (sandbox, leader,
// process) outlive its last renewal: the time another replica waits
// before it takes over from one that died.
const DefaultLeaseTTL = 15 * time.Second

// leaderLease is the lease of the replica running the singleton loops.
const leaderLease = "leader"

// elector keeps this replica's process lease and competes for the leader
// lease, renewing both every third of their TTL. It is the leader while
// its last successful renewal is younger than two thirds of the TTL: a
// replica that cannot reach the database stops acting as leader before
// another can take over.
type elector struct {
	leases *db.Leases
	log    *slog.Logger

	mu      sync.Mutex
	renewed time.Time // last successful take or renewal of the leader lease; zero: not leader

	stop chan struct{}
	done chan struct{}
}

func newElector(ctx context.Context, leases *db.Leases, log *slog.Logger) (*elector, error) {
	e := &elector{leases: leases, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	// The process lease first: from now on this instance counts as alive.
	if _, err := leases.TryAcquire(ctx, db.ProcessLease(leases.Holder())); err != nil {
		return nil, err
	}
	e.tick(ctx)
	go e.run()
	return e, nil
}

// Leader reports whether this replica runs the singleton loops now.
func (e *elector) Leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.renewed.IsZero() && time.Since(e.renewed) < e.leases.TTL()*2/3
}

func (e *elector) tick(ctx context.Context) {
	if _, err := e.leases.TryAcquire(ctx, db.ProcessLease(e.leases.Holder())); err != nil {
		e.log.Warn("renew this replica's process lease", "err", err)
	}
	was := e.Leader()
	start := time.Now()
	ok, err := e.leases.TryAcquire(ctx, leaderLease)
	if err != nil {
		e.log.Warn("leader lease", "err", err)
		return
	}
	e.mu.Lock()
	if ok {
		e.renewed = start
	} else {
		e.renewed = time.Time{}
	}
	e.mu.Unlock()
	switch {
	case ok && !was:
		e.log.Info("this replica is the leader: it runs reconcile, idle pause and recovery of stopped replicas' runs", "instance", e.leases.Holder())
	case !ok && was:
		e.log.Warn("this replica is no longer the leader", "instance", e.leases.Holder())
	}
}

func (e *elector) run() {
	defer close(e.done)
	t := time.NewTicker(e.leases.TTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.leases.TTL()/3)
		e.tick(ctx)
		cancel()
	}
}

// Close stops renewing and gives up the leader and process leases, so that
// another replica takes over at once rather than after their TTL.
func (e *elector) Close() error {
	close(e.stop)
	<-e.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(e.leases.Release(ctx, leaderLease), e.leases.Release(ctx, db.ProcessLease(e.leases.Holder())))
}
