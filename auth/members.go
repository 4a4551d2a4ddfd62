package auth

import (
	"context"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

const memberCols = `id, org_id, name, email, role, created_at`

func (s *Service) getMember(ctx context.Context, orgID, id string) (*Member, error) {
	var m Member
	err := s.db.GetContext(ctx, &m, s.db.Rebind(`SELECT `+memberCols+` FROM users WHERE org_id = ? AND id = ?`), orgID, id)
	if err != nil {
		err = db.Err(err)
		if berth.IsKind(err, berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "member %q not found", id)
		}
		return nil, err
	}
	return &m, nil
}

// GetMember returns one member of the caller's org (org:read).
func (s *Service) GetMember(ctx context.Context, id string) (*Member, error) {
	c, err := Require(ctx, "org:read")
	if err != nil {
		return nil, err
	}
	return s.getMember(ctx, c.OrgID, id)
}

// ListMembers lists the caller's org (org:read).
// A page holds at most limit members (0: the default) after cursor, oldest
// first; the second result is the next page's cursor ("" on the last).
func (s *Service) ListMembers(ctx context.Context, limit int, cursor string) ([]Member, string, error) {
	c, err := Require(ctx, "org:read")
	if err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := `SELECT `+memberCols+` FROM users u WHERE u.org_id = ?`, []any{c.OrgID}
	if cond, cargs, ok := page.Where("u"); ok {
		q += ` AND ` + cond
		args = append(args, cargs...)
	}
	ms := []Member{}
	if err := s.db.SelectContext(ctx, &ms, s.db.Rebind(q+page.OrderLimit("u")), args...); err != nil {
		return nil, "", db.Err(err)
	}
	ms, next := db.Trim(page, ms, func(m Member) (time.Time, string) { return m.CreatedAt, m.ID })
	return ms, next, nil
}

// MemberInput is the body of POST /v1/members.
type MemberInput struct {
	Name  string     `json:"name"`
	Email string     `json:"email"`
	Role  berth.Role `json:"role"`
}

func validRole(r berth.Role) error {
	if r != berth.RoleAdmin && r != berth.RoleMember {
		return berth.FieldErrorf(berth.Invalid, "role", "role must be \"admin\" or \"member\"")
	}
	return nil
}

// AddMember adds a user to the org (admin, org:members).
func (s *Service) AddMember(ctx context.Context, in MemberInput) (*Member, error) {
	c, err := RequireAdmin(ctx, "org:members")
	if err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 200 {
		return nil, berth.FieldErrorf(berth.Invalid, "name", "name is required (1..200 characters)")
	}
	if len(in.Email) > 320 || (in.Email != "" && !strings.Contains(in.Email, "@")) {
		return nil, berth.FieldErrorf(berth.Invalid, "email", "email is not a valid address")
	}
	if in.Role == "" {
		in.Role = berth.RoleMember
	}
	if err := validRole(in.Role); err != nil {
		return nil, err
	}
	m := Member{ID: db.NewID("usr"), OrgID: c.OrgID, Name: in.Name, Email: in.Email, Role: in.Role, CreatedAt: s.now()}
	_, err = s.db.NamedExecContext(ctx, `INSERT INTO users (id, org_id, name, email, role, created_at)
		VALUES (:id, :org_id, :name, :email, :role, :created_at)`, &m)
	if err != nil {
		return nil, db.Err(err)
	}
	return &m, nil
}

// lastAdminGuard refuses changes that would leave the org with no admin.
func lastAdminGuard(ctx context.Context, tx *sqlx.Tx, orgID, userID string) error {
	var n int
	err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM users WHERE org_id = ? AND role = 'admin' AND id <> ?`), orgID, userID)
	if err != nil {
		return db.Err(err)
	}
	if n == 0 {
		return berth.Errorf(berth.Conflict, "the organization must keep at least one admin")
	}
	return nil
}

// UpdateMember changes a member's role (admin, org:members). Since a key's
// powers are checked against its owner's current role, a demotion limits the
// member's existing keys at once.
func (s *Service) UpdateMember(ctx context.Context, id string, role berth.Role) (*Member, error) {
	c, err := RequireAdmin(ctx, "org:members")
	if err != nil {
		return nil, err
	}
	if err := validRole(role); err != nil {
		return nil, err
	}
	demoted := false
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		m, err := s.getMember(ctx, c.OrgID, id)
		if err != nil {
			return err
		}
		if m.Role == berth.RoleAdmin && role != berth.RoleAdmin {
			if err := lastAdminGuard(ctx, tx, c.OrgID, id); err != nil {
				return err
			}
			demoted = true
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET role = ? WHERE id = ?`), role, id)
		return db.Err(err)
	})
	if err != nil {
		return nil, err
	}
	if demoted {
		// An admin reaches every workspace; a member only theirs and granted ones.
		s.access.AccessLost(ctx, berth.AccessLoss{OrgID: c.OrgID, UserID: id})
	}
	return s.getMember(ctx, c.OrgID, id)
}

// RemoveMember deletes a member with their keys and grants (admin,
// org:members). Workspaces they own stay with the org.
func (s *Service) RemoveMember(ctx context.Context, id string) error {
	c, err := RequireAdmin(ctx, "org:members")
	if err != nil {
		return err
	}
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		m, err := s.getMember(ctx, c.OrgID, id)
		if err != nil {
			return err
		}
		if m.Role == berth.RoleAdmin {
			if err := lastAdminGuard(ctx, tx, c.OrgID, id); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM users WHERE id = ?`), id)
		return db.Err(err)
	})
	if err != nil {
		return err
	}
	// Their sandboxes stay (an admin may inspect or destroy them) but reach
	// no workspace any more.
	s.access.AccessLost(ctx, berth.AccessLoss{OrgID: c.OrgID, UserID: id})
	return nil
}
