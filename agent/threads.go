package agent

import (
	"context"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
)

// Thread is the API's thread object; Runs is filled by GetThread only.
type Thread struct {
	ID          string    `json:"id" db:"id"`
	AgentID     string    `json:"agentId" db:"agent_id"`
	AgentSlug   string    `json:"agentSlug" db:"agent_slug"`
	Title       string    `json:"title" db:"title"`
	Archived    bool      `json:"archived" db:"archived"`
	OwnerUserID string    `json:"ownerUserId" db:"owner_user_id"`
	EventCount  int64     `json:"eventCount" db:"next_seq"`
	CreatedAt   time.Time `json:"createdAt" db:"created_at"`
	UpdatedAt   time.Time `json:"updatedAt" db:"updated_at"`
	Runs        []Run     `json:"runs,omitempty" db:"-"`

	OrgID string `json:"-" db:"org_id"`
	// FileWorkspaceID is where an earlier berth wrote the thread's file
	// (.berth/threads/<id>.jsonl); thread files now live in the run's
	// sandbox (writeThreadFile) and it stays empty for new threads.
	FileWorkspaceID string `json:"-" db:"file_workspace_id"`
}

const threadCols = `t.id, t.org_id, t.owner_user_id, t.agent_id, t.agent_slug, t.title, t.archived, t.next_seq,
	t.file_workspace_id, t.created_at, t.updated_at`

func (s *Service) findThread(ctx context.Context, c *berth.Caller, id string) (*Thread, error) {
	where, args := visible("t", c)
	var t Thread
	err := s.db.GetContext(ctx, &t, s.db.Rebind(`SELECT `+threadCols+` FROM threads t WHERE t.id = ? AND `+where), append([]any{id}, args...)...)
	if err != nil {
		if err = db.Err(err); berth.IsKind(err, berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "thread %q not found", id)
		}
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return &t, nil
}

// ThreadFilter selects threads for ListThreads.
type ThreadFilter struct {
	Agent  string // slug; "" for all
	All    bool   // admins: every thread of the org
	Limit  int
	Cursor string
}

// ListThreads returns a page of visible threads, oldest first, and the next
// cursor ("" on the last page).
func (s *Service) ListThreads(ctx context.Context, f ThreadFilter) ([]Thread, string, error) {
	c, err := auth.Require(ctx, "agent:read")
	if err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(f.Limit, f.Cursor)
	if err != nil {
		return nil, "", err
	}
	where := []string{`t.org_id = ?`}
	args := []any{c.OrgID}
	if f.All {
		if !c.IsAdmin() {
			return nil, "", berth.Errorf(berth.Forbidden, "only organization admins may list every thread (all=true)")
		}
	} else {
		where = append(where, `t.owner_user_id = ?`)
		args = append(args, c.UserID)
	}
	if f.Agent != "" {
		where = append(where, `t.agent_slug = ?`)
		args = append(args, f.Agent)
	}
	if cond, cargs, ok := page.Where("t"); ok {
		where = append(where, cond)
		args = append(args, cargs...)
	}
	out := []Thread{}
	q := `SELECT ` + threadCols + ` FROM threads t WHERE ` + strings.Join(where, " AND ") + page.OrderLimit("t")
	if err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...); err != nil {
		return nil, "", db.Err(err)
	}
	out, next := db.Trim(page, out, func(t Thread) (time.Time, string) { return t.CreatedAt, t.ID })
	for i := range out {
		out[i].CreatedAt, out[i].UpdatedAt = out[i].CreatedAt.UTC(), out[i].UpdatedAt.UTC()
	}
	return out, next, nil
}

// GetThread returns a visible thread with its runs, oldest first.
func (s *Service) GetThread(ctx context.Context, id string) (*Thread, error) {
	c, err := auth.Require(ctx, "agent:read")
	if err != nil {
		return nil, err
	}
	t, err := s.findThread(ctx, c, id)
	if err != nil {
		return nil, err
	}
	t.Runs = []Run{}
	if err := s.db.SelectContext(ctx, &t.Runs, s.db.Rebind(`SELECT `+runCols+` FROM runs r WHERE r.thread_id = ? ORDER BY r.created_at, r.id`), t.ID); err != nil {
		return nil, db.Err(err)
	}
	for i := range t.Runs {
		t.Runs[i].utc()
	}
	return t, nil
}

// ThreadEvents lists the events of every run of a visible thread, in order.
func (s *Service) ThreadEvents(ctx context.Context, id string, p Page) ([]Event, string, error) {
	c, err := auth.Require(ctx, "agent:read")
	if err != nil {
		return nil, "", err
	}
	t, err := s.findThread(ctx, c, id)
	if err != nil {
		return nil, "", err
	}
	return s.page(ctx, t.ID, "", p)
}

// ThreadUpdate is the body of PATCH /v1/threads/{id}.
type ThreadUpdate struct {
	Title    *string `json:"title"`
	Archived *bool   `json:"archived"`
}

// UpdateThread retitles or (un)archives a visible thread.
func (s *Service) UpdateThread(ctx context.Context, id string, in ThreadUpdate) (*Thread, error) {
	c, err := auth.Require(ctx, "agent:write")
	if err != nil {
		return nil, err
	}
	if in.Title == nil && in.Archived == nil {
		return nil, berth.Errorf(berth.Invalid, "nothing to change: give title and/or archived")
	}
	t, err := s.findThread(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if in.Title != nil {
		title := strings.TrimSpace(*in.Title)
		if len(title) > 200 || strings.ContainsAny(title, "\x00\n\r") {
			return nil, berth.Errorf(berth.Invalid, "title is at most 200 characters without control characters")
		}
		t.Title = title
	}
	if in.Archived != nil {
		t.Archived = *in.Archived
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE threads SET title = ?, archived = ?, updated_at = ? WHERE id = ?`), t.Title, t.Archived, s.now(), t.ID)
	if err != nil {
		return nil, db.Err(err)
	}
	return s.findThread(ctx, c, id)
}

// DeleteThread deletes a visible thread with its runs, events and thread
// file. A thread with a run in flight is a Conflict: cancel the run first.
func (s *Service) DeleteThread(ctx context.Context, id string) error {
	c, err := auth.Require(ctx, "agent:write")
	if err != nil {
		return err
	}
	t, err := s.findThread(ctx, c, id)
	if err != nil {
		return err
	}
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM runs WHERE thread_id = ? AND status IN ('queued', 'running')`), t.ID); err != nil {
			return db.Err(err)
		}
		if n > 0 {
			return berth.Errorf(berth.Conflict, "thread %q has a run in flight; cancel it first", t.ID)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM threads WHERE id = ?`), t.ID)
		return db.Err(err)
	})
	if err != nil {
		return err
	}
	if t.FileWorkspaceID != "" {
		if err := s.removeThreadFile(t.FileWorkspaceID, t.ID); err != nil {
			s.log.Warn("remove thread file", "thread", t.ID, "err", err)
		}
	}
	return nil
}
