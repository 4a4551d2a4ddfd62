package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Holder names a server process that holds a database (or a data directory).
type Holder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	host := h.Host
	if host == "" {
		host = "an unknown host"
	}
	s := fmt.Sprintf("host %s, pid %d", host, h.PID)
	if !h.Since.IsZero() {
		s += ", since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// HeldError says that another server holds what a server tried to take.
type HeldError struct {
	What   string // "database" or "data directory ..."
	Holder Holder // zero when the holder could not be read
	// Replicas is set when the database is held by servers started with
	// --replicas (a server without it may not join them).
	Replicas bool
}

func (e *HeldError) Error() string {
	who := "another berth server"
	if e.Holder != (Holder{}) {
		who += " (" + e.Holder.String() + ")"
	}
	if e.Replicas {
		return fmt.Sprintf("the %s is in use by %s started with --replicas: start this one with --replicas too, "+
			"or stop them first", e.What, who)
	}
	return fmt.Sprintf("the %s is in use by %s: two servers on one database or data directory "+
		"corrupt each other's sandboxes and runs, unless every one runs with --replicas (PostgreSQL only); "+
		"stop the other server first", e.What, who)
}

// Lock is held by one server process for its whole life: a flock on a file
// (SQLite, data directory) or a PostgreSQL session-level advisory lock on a
// connection of its own. The kernel or the database releases it when the
// process or the connection dies, so a crash never leaves it stale.
type Lock struct {
	file *os.File // flock

	conn   *sql.Conn // advisory lock session
	shared bool      // replicas: a shared advisory lock
	db     *DB
	self   Holder
	lost   chan struct{}
	lostMu sync.Mutex
	err    error
	stop   chan struct{}
	kick   chan struct{} // check now (tests)
	done   chan struct{}
}

// LockFile takes an exclusive flock on path (created if missing) and writes
// self into it, so that a server refused the lock can name the holder. The
// file is never removed: removing a lock file races with its next taker.
func LockFile(path, what string, self Holder) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		var h Holder
		if b, rerr := os.ReadFile(path); rerr == nil {
			// Unreadable (being written this instant): name no holder.
			_ = json.Unmarshal(b, &h)
		}
		cerr := f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.Join(&HeldError{What: what, Holder: h}, cerr)
		}
		return nil, errors.Join(fmt.Errorf("lock %s: %w", path, err), cerr)
	}
	b, err := json.Marshal(self)
	if err == nil {
		if err = f.Truncate(0); err == nil {
			_, err = f.WriteAt(append(b, '\n'), 0)
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("write lock file %s: %w", path, err), f.Close())
	}
	return &Lock{file: f}, nil
}

// serverLockKey is the advisory lock key of a serving berth. Advisory locks
// are scoped to the current database (their tag includes its oid: checked
// against PostgreSQL 15), so one constant serves every database of a cluster.
const serverLockKey int64 = 0x62_65727468 // "berth"

// lockWatchInterval is how often the advisory lock's session is checked.
var lockWatchInterval = 5 * time.Second

// LockServer takes d for this server process alone, or fails with a
// *HeldError naming the server that has it. SQLite: a flock on the file
// <database>.lock. PostgreSQL: a session-level advisory lock on a connection
// kept for the life of the Lock; if that session is lost (the database
// restarted), the lock is taken again on a new one, and Lost is closed when
// that fails.
//
// With replicas (PostgreSQL only) the advisory lock is shared: any number
// of servers started with --replicas hold it together, and a server
// without it is refused while they do (and they while it runs).
func (d *DB) LockServer(ctx context.Context, self Holder, replicas bool) (*Lock, error) {
	if d.Engine == SQLite {
		if replicas {
			return nil, errors.New("--replicas needs PostgreSQL: a SQLite database serves one server only")
		}
		return LockFile(d.path+".lock", "database "+d.path, self)
	}
	conn, err := d.takeAdvisory(ctx, self, replicas)
	if err != nil {
		return nil, err
	}
	l := &Lock{conn: conn, shared: replicas, db: d, self: self, lost: make(chan struct{}), stop: make(chan struct{}),
		kick: make(chan struct{}), done: make(chan struct{})}
	go l.watch(lockWatchInterval)
	return l, nil
}

func (d *DB) takeAdvisory(ctx context.Context, self Holder, shared bool) (*sql.Conn, error) {
	conn, err := d.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("database lock: %w", Err(err))
	}
	// The holder's name goes where a refused server can read it:
	// pg_stat_activity.application_name of the session holding the lock.
	name := fmt.Sprintf("berth serve host=%s pid=%d", self.Host, self.PID)
	take := `pg_try_advisory_lock($2)`
	if shared {
		take = `pg_try_advisory_lock_shared($2)`
	}
	var ok bool
	err = conn.QueryRowContext(ctx, `SELECT set_config('application_name', $1, false) IS NOT NULL, `+take,
		name, serverLockKey).Scan(new(bool), &ok)
	if err == nil && !ok {
		h, replicas := d.advisoryHolder(ctx, conn)
		err = &HeldError{What: "database", Holder: h, Replicas: replicas}
	}
	if err != nil {
		return nil, errors.Join(err, discard(conn))
	}
	return conn, nil
}

// discard closes conn's session instead of returning it to the pool: a
// session that failed a query, or may hold the lock, must not be reused.
func discard(conn *sql.Conn) error {
	err := conn.Raw(func(any) error { return driverBadConn })
	if errors.Is(err, driverBadConn) || errors.Is(err, sql.ErrConnDone) {
		return nil
	}
	return err
}

// advisoryHolder reads who holds the server lock (one of them, when
// replicas hold it shared); a zero Holder when it cannot tell (the session
// may belong to a role whose details are hidden).
func (d *DB) advisoryHolder(ctx context.Context, conn *sql.Conn) (Holder, bool) {
	var (
		app   sql.NullString
		start sql.NullTime
		pid   int
		mode  string
	)
	err := conn.QueryRowContext(ctx, `SELECT a.pid, a.application_name, a.backend_start, l.mode
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid::bigint = $1 AND l.objid::bigint = $2 LIMIT 1`,
		serverLockKey>>32, serverLockKey&0xffffffff).Scan(&pid, &app, &start, &mode)
	if err != nil {
		return Holder{}, false
	}
	h := Holder{Since: start.Time}
	if _, err := fmt.Sscanf(strings.TrimPrefix(app.String, "berth serve "), "host=%s pid=%d", &h.Host, &h.PID); err != nil {
		h = Holder{Host: "PostgreSQL backend pid " + fmt.Sprint(pid) + " (" + app.String + ")", Since: start.Time}
	}
	return h, mode == "ShareLock"
}

// watch checks the advisory lock's session and takes the lock again on a
// new one when it is gone; Lost is closed when that fails because another
// server took it meanwhile. While the database is unreachable nobody else
// can take it either, so that is retried.
func (l *Lock) watch(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if l.conn != nil && l.conn.PingContext(ctx) == nil {
			cancel()
			continue
		}
		if l.conn != nil {
			_ = discard(l.conn) // broken already: nothing to report
			l.conn = nil
		}
		conn, err := l.db.takeAdvisory(ctx, l.self, l.shared)
		cancel()
		var held *HeldError
		switch {
		case err == nil:
			l.conn = conn
		case errors.As(err, &held):
			l.lostMu.Lock()
			l.err = err
			l.lostMu.Unlock()
			close(l.lost)
			return
		}
	}
}

// Lost is closed when the lock was lost to another server (PostgreSQL); the
// holder must stop serving. Err says why.
func (l *Lock) Lost() <-chan struct{} {
	if l.lost == nil {
		return nil // flocks are not lost while the process lives
	}
	return l.lost
}

// Err is why the lock was lost, or nil.
func (l *Lock) Err() error {
	l.lostMu.Lock()
	defer l.lostMu.Unlock()
	return l.err
}

// Close releases the lock.
func (l *Lock) Close() error {
	if l.file != nil {
		// Closing the descriptor releases the flock.
		return l.file.Close()
	}
	close(l.stop)
	<-l.done
	if l.conn == nil {
		return nil
	}
	// Ending the session releases the lock; the pool never gets it back.
	return discard(l.conn)
}

// startLockKey serializes the start-up of replicas starting together.
const startLockKey int64 = 0x62_65727469

// Exclusive runs fn (migrations, bootstrap) while holding an advisory lock
// of its own (PostgreSQL), so that replicas starting at once take turns:
// the first migrates and bootstraps, the others find it done.
func (d *DB) Exclusive(ctx context.Context, fn func() error) error {
	if d.Engine != Postgres {
		return fn()
	}
	conn, err := d.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("start-up lock: %w", Err(err))
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, startLockKey); err != nil {
		return errors.Join(fmt.Errorf("start-up lock: %w", Err(err)), discard(conn))
	}
	// Ending the session releases the lock.
	return errors.Join(fn(), discard(conn))
}
