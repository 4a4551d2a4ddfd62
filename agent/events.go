package agent

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

// Event types.
const (
	EventPrompt = "prompt" // text: the prompt
	EventStatus = "status" // data: {"status", "reason"?, "runId", "threadId"}
	EventStdout = "stdout" // text: an output chunk
	EventStderr = "stderr"
	EventResult = "result" // data: the run's Result; always the run's last event
)

// Event is one entry of a thread's history; the thread file holds one per
// line in the same JSON.
type Event struct {
	Seq       int64           `json:"seq" db:"seq"`
	ThreadID  string          `json:"threadId" db:"thread_id"`
	RunID     string          `json:"runId" db:"run_id"`
	Type      string          `json:"type" db:"type"`
	Text      string          `json:"text,omitempty" db:"text"`
	Data      json.RawMessage `json:"data,omitempty" db:"-"`
	CreatedAt time.Time       `json:"createdAt" db:"created_at"`

	RawData string `json:"-" db:"data"`
}

const eventCols = `seq, thread_id, run_id, type, text, data, created_at`

// clean makes text storable on both engines: valid UTF-8, no NUL bytes
// (PostgreSQL's TEXT refuses both).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// appendEvent numbers an event on its thread and stores it, then wakes the
// run's followers.
func (s *Service) appendEvent(ctx context.Context, threadID, runID, typ, text string, data any) error {
	var dj []byte
	if data != nil {
		dj, _ = json.Marshal(data)
	}
	now := s.now()
	err := s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		var seq int64
		if err := tx.GetContext(ctx, &seq, tx.Rebind(`UPDATE threads SET next_seq = next_seq + 1, updated_at = ? WHERE id = ? RETURNING next_seq`), now, threadID); err != nil {
			return db.Err(err)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO run_events (thread_id, seq, run_id, type, text, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			threadID, seq, runID, typ, clean(text), string(dj), now)
		if err == nil && s.opts.Leases != nil {
			// Delivered at commit, to every server's listener.
			_, err = tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, eventsChannel, runID)
		}
		return db.Err(err)
	})
	s.notify(runID)
	return err
}

// eventsChannel is the PostgreSQL notification channel on which servers
// announce the runs they stored events of (payload: the run id).
const eventsChannel = "berth_run_events"

// cancelChannel carries the ids of runs cancelled through a server other
// than the one executing them.
const cancelChannel = "berth_run_cancel"

// notified handles a notification of another server (or of this one).
func (s *Service) notified(channel, payload string) {
	switch channel {
	case cancelChannel:
		s.mu.Lock()
		lr := s.live[payload]
		s.mu.Unlock()
		if lr != nil {
			lr.cancel(errCancelled)
		}
	default:
		s.remoteEvent(payload)
	}
}

// remoteEvent wakes this process's streams of runID ("": of every run,
// after the listener reconnected and may have missed notifications).
func (s *Service) remoteEvent(runID string) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	for id, ws := range s.wakers {
		if runID != "" && id != runID {
			continue
		}
		for w := range ws {
			select {
			case w <- struct{}{}:
			default: // already due to look again
			}
		}
	}
}

// wake registers a stream of runID for remoteEvent until the returned stop.
func (s *Service) wake(runID string) (<-chan struct{}, func()) {
	w := make(chan struct{}, 1)
	s.wakeMu.Lock()
	if s.wakers[runID] == nil {
		s.wakers[runID] = map[chan struct{}]struct{}{}
	}
	s.wakers[runID][w] = struct{}{}
	s.wakeMu.Unlock()
	return w, func() {
		s.wakeMu.Lock()
		delete(s.wakers[runID], w)
		if len(s.wakers[runID]) == 0 {
			delete(s.wakers, runID)
		}
		s.wakeMu.Unlock()
	}
}

func hydrateEvents(evs []Event) []Event {
	for i := range evs {
		e := &evs[i]
		e.CreatedAt = e.CreatedAt.UTC()
		if e.RawData != "" {
			e.Data = json.RawMessage(e.RawData)
		}
	}
	return evs
}

// events returns up to limit events of a thread (or of one run when runID
// is set) after seq, in order.
func (s *Service) events(ctx context.Context, threadID, runID string, after int64, limit int) ([]Event, error) {
	q := `SELECT ` + eventCols + ` FROM run_events WHERE thread_id = ? AND seq > ?`
	args := []any{threadID, after}
	if runID != "" {
		q += ` AND run_id = ?`
		args = append(args, runID)
	}
	q += ` ORDER BY seq`
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	evs := []Event{}
	if err := s.db.SelectContext(ctx, &evs, s.db.Rebind(q), args...); err != nil {
		return nil, db.Err(err)
	}
	return hydrateEvents(evs), nil
}

// Page selects a slice of an event list: events after the cursor (a
// sequence number), at most Limit (1..500, default 50).
type Page struct {
	Cursor string
	Limit  int
}

func (p Page) parse() (int64, int, error) {
	limit := p.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > 500 {
		return 0, 0, berth.Errorf(berth.Invalid, "limit must be between 1 and 500")
	}
	var after int64
	if p.Cursor != "" {
		n, err := strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, berth.Errorf(berth.Invalid, "cursor is not one this server gave out")
		}
		after = n
	}
	return after, limit, nil
}

// page lists events and the next cursor ("" on the last page).
func (s *Service) page(ctx context.Context, threadID, runID string, p Page) ([]Event, string, error) {
	after, limit, err := p.parse()
	if err != nil {
		return nil, "", err
	}
	evs, err := s.events(ctx, threadID, runID, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(evs) > limit {
		evs = evs[:limit]
		return evs, strconv.FormatInt(evs[len(evs)-1].Seq, 10), nil
	}
	return evs, "", nil
}

// liveRun is a run executing in this process.
type liveRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new event
}

// notify wakes whoever follows runID.
func (s *Service) notify(runID string) {
	s.mu.Lock()
	lr := s.live[runID]
	s.mu.Unlock()
	if lr == nil {
		return
	}
	lr.mu.Lock()
	close(lr.changed)
	lr.changed = make(chan struct{})
	lr.mu.Unlock()
}

// watch returns channels that close on runID's next event and when it ends;
// nil when the run does not execute in this process.
func (s *Service) watch(runID string) (changed, done <-chan struct{}) {
	s.mu.Lock()
	lr := s.live[runID]
	s.mu.Unlock()
	if lr == nil {
		return nil, nil
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.changed, lr.done
}

// Follow calls fn with a visible run's events after cursor (a sequence
// number, "" for all) — first the backlog, then live events as they come —
// and returns once the run has ended and its last event was sent, or when
// ctx ends or fn fails.
func (s *Service) Follow(ctx context.Context, runID, cursor string, fn func(Event) error) error {
	return s.FollowAs(ctx, runID, cursor, "agent:read", fn)
}

// FollowAs is Follow for a caller holding scope (agent:run streams the run
// it started).
func (s *Service) FollowAs(ctx context.Context, runID, cursor, scope string, fn func(Event) error) error {
	r, err := s.GetRunAs(ctx, runID, scope)
	if err != nil {
		return err
	}
	after, _, err := Page{Cursor: cursor}.parse()
	if err != nil {
		return err
	}
	return s.follow(ctx, r.ThreadID, r.RunID, after, fn)
}

func (s *Service) follow(ctx context.Context, threadID, runID string, after int64, fn func(Event) error) error {
	// A run executing on another server: its events wake the stream through
	// a notification (replicas); the poll is the backstop.
	every := time.Second
	if s.opts.Leases != nil {
		every = 10 * time.Second
	}
	poll := time.NewTicker(every)
	defer poll.Stop()
	remote, stop := s.wake(runID)
	defer stop()
	for {
		// Watch before reading, so that an event stored after the read
		// still wakes us.
		changed, done := s.watch(runID)
		evs, err := s.events(ctx, threadID, runID, after, 500)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
			if e.Type == EventResult {
				// The run settles after its result (thread file mirrored,
				// a managed sandbox destroyed): end the stream after that.
				if done != nil {
					select {
					case <-done:
					case <-ctx.Done():
					}
				}
				return nil
			}
		}
		if len(evs) == 500 {
			continue
		}
		if changed == nil {
			var st string
			if err := s.db.GetContext(ctx, &st, s.db.Rebind(`SELECT status FROM runs WHERE id = ?`), runID); err != nil {
				return db.Err(err)
			}
			if Terminal(st) {
				// Ended without a result event; nothing more will come.
				if more, err := s.events(ctx, threadID, runID, after, 1); err != nil || len(more) == 0 {
					return err
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-done:
		case <-remote:
		case <-poll.C:
		}
	}
}

// output collects a run's stdout and stderr: it keeps a capped copy of each
// for the run's answer and stores them as events, coalescing small writes
// (one event per burst, not per write) and never splitting a UTF-8 sequence
// across events.
type output struct {
	s               *Service
	ctx             context.Context // the run's, without its cancellation: output is stored after a kill too
	threadID, runID string
	mu              sync.Mutex
	stream          string // what buf holds
	buf             []byte
	timer           *time.Timer
	stored          int64
	stdout, stderr  capped
	eventsTruncated bool
	closed          bool // late writes of a killed process are dropped
}

// Output limits.
const (
	maxRunOutput   = 1 << 20  // kept per stream in the run's answer
	maxEventOutput = 16 << 20 // stored as events per run
	flushBytes     = 32 << 10
	flushDelay     = 50 * time.Millisecond
)

// capped keeps the first max bytes written and notes whether more came.
type capped struct {
	b         strings.Builder
	truncated bool
}

func (c *capped) write(p []byte) {
	room := maxRunOutput - c.b.Len()
	if len(p) > room {
		p = p[:max(room, 0)]
		c.truncated = true
	}
	c.b.Write(p)
}

func (o *output) writer(stream string) writerFunc {
	return func(p []byte) (int, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.closed {
			return len(p), nil
		}
		if stream == EventStdout {
			o.stdout.write(p)
		} else {
			o.stderr.write(p)
		}
		if o.stream != stream {
			o.flushLocked(true)
			o.stream = stream
		}
		o.buf = append(o.buf, p...)
		if len(o.buf) >= flushBytes {
			o.flushLocked(false)
		} else if o.timer == nil {
			o.timer = time.AfterFunc(flushDelay, func() {
				o.mu.Lock()
				defer o.mu.Unlock()
				o.timer = nil
				if !o.closed {
					o.flushLocked(false)
				}
			})
		}
		return len(p), nil
	}
}

// flushLocked stores what is buffered; unless all, an incomplete UTF-8
// sequence at the end waits for the next write.
func (o *output) flushLocked(all bool) {
	if len(o.buf) == 0 {
		return
	}
	n := len(o.buf)
	if !all {
		// Back off over at most 3 trailing bytes of an unfinished rune.
		for i := 1; i <= 3 && i <= n; i++ {
			if b := o.buf[n-i]; utf8.RuneStart(b) {
				if !utf8.FullRune(o.buf[n-i:]) {
					n -= i
				}
				break
			}
		}
	}
	chunk := string(o.buf[:n])
	o.buf = append(o.buf[:0], o.buf[n:]...)
	if chunk == "" {
		return
	}
	if o.stored+int64(len(chunk)) > maxEventOutput {
		o.eventsTruncated = true
		return
	}
	o.stored += int64(len(chunk))
	ctx, cancel := context.WithTimeout(o.ctx, recordTimeout)
	defer cancel()
	if err := o.s.appendEvent(ctx, o.threadID, o.runID, o.stream, chunk, nil); err != nil {
		o.s.log.Warn("store run output", "run", o.runID, "err", err)
	}
}

// close flushes everything.
func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	o.flushLocked(true)
	o.closed = true
}

// writerFunc adapts a function to io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
