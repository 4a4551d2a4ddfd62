package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Leases are named, expiring claims in the leases table, shared by every
// server on the database (--replicas): a per-sandbox lease makes one
// lifecycle operation at a time across servers, the "leader" lease makes
// one server run the singleton loops, and a "process:<instance>" lease says
// a server is alive. A holder renews its lease while it works; one that
// died stops renewing, and its lease is taken over once expired.
//
// Expiry is judged by the database's clock (PostgreSQL), so the servers'
// clocks need not agree.
type Leases struct {
	db     *DB
	holder string
	ttl    time.Duration
}

// NewLeases returns the leases held as holder (this process's instance id),
// each valid for ttl past its last renewal.
func (d *DB) NewLeases(holder string, ttl time.Duration) *Leases {
	return &Leases{db: d, holder: holder, ttl: ttl}
}

// Holder is the instance id the leases are taken as.
func (l *Leases) Holder() string { return l.holder }

// TTL is how long a lease lives without renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// now is the database's clock as an SQL expression (SQLite keeps UTC text).
func (l *Leases) now() string {
	if l.db.Engine == Postgres {
		return `clock_timestamp()`
	}
	return `strftime('%Y-%m-%d %H:%M:%f', 'now')`
}

func (l *Leases) expiry() string {
	ms := l.ttl.Milliseconds()
	if l.db.Engine == Postgres {
		return fmt.Sprintf(`clock_timestamp() + interval '%d milliseconds'`, ms)
	}
	return fmt.Sprintf(`strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '+%.3f seconds')`, float64(ms)/1000)
}

// TryAcquire takes name (or renews it, when this holder has it) unless
// another holder's lease on it is still valid. One conditional upsert: two
// servers racing for a free or expired lease cannot both win.
func (l *Leases) TryAcquire(ctx context.Context, name string) (bool, error) {
	res, err := l.db.ExecContext(ctx, l.db.Rebind(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, `+l.expiry()+`)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < `+l.now()), name, l.holder)
	if err != nil {
		return false, Err(err)
	}
	n, err := res.RowsAffected()
	return n == 1, Err(err)
}

// Release gives name up, if this holder has it.
func (l *Leases) Release(ctx context.Context, name string) error {
	_, err := l.db.ExecContext(ctx, l.db.Rebind(`DELETE FROM leases WHERE name = ? AND holder = ?`), name, l.holder)
	return Err(err)
}

// AnyValid reports whether a valid lease's name starts with prefix.
func (l *Leases) AnyValid(ctx context.Context, prefix string) (bool, error) {
	var n int
	err := l.db.GetContext(ctx, &n, l.db.Rebind(`SELECT COUNT(*) FROM leases WHERE name LIKE ? ESCAPE '\' AND expires_at >= `+l.now()),
		strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(prefix)+"%")
	return n > 0, Err(err)
}

// Alive is an SQL condition true when the process lease of the instance id
// in column col is valid.
func (l *Leases) Alive(col string) string {
	return `EXISTS (SELECT 1 FROM leases WHERE leases.name = 'process:' || ` + col + ` AND leases.expires_at >= ` + l.now() + `)`
}

// ProcessLease names the lease that says instance is alive.
func ProcessLease(instance string) string { return "process:" + instance }

// ErrLeaseLost says a held lease could not be renewed before it expired.
var ErrLeaseLost = errors.New("lease lost")

// Held is a lease taken by Hold, renewed in the background until Release.
type Held struct {
	l      *Leases
	name   string
	stop   chan struct{}
	done   chan struct{}
	lostMu sync.Mutex
	lost   bool
}

// Hold takes name if free (false when another holder has it) and keeps
// renewing it every third of its ttl until Release.
func (l *Leases) Hold(ctx context.Context, name string) (*Held, bool, error) {
	ok, err := l.TryAcquire(ctx, name)
	if err != nil || !ok {
		return nil, false, err
	}
	h := &Held{l: l, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go h.renew()
	return h, true, nil
}

func (h *Held) renew() {
	defer close(h.done)
	t := time.NewTicker(h.l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.l.ttl/3)
		ok, err := h.l.TryAcquire(ctx, h.name)
		cancel()
		if err == nil && !ok {
			// Taken over: this holder was presumed dead (a long stall).
			h.lostMu.Lock()
			h.lost = true
			h.lostMu.Unlock()
			return
		}
	}
}

// Lost reports whether another holder took the lease meanwhile.
func (h *Held) Lost() bool {
	h.lostMu.Lock()
	defer h.lostMu.Unlock()
	return h.lost
}

// Release stops renewing and gives the lease up, within its own deadline.
func (h *Held) Release() error {
	close(h.stop)
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.l.Release(ctx, h.name)
}
