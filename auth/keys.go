package auth

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

const keyCols = `id, org_id, user_id, name, key_prefix, scopes, expires_at, last_used_at, revoked_at, created_at`

// KeyInput is the body of POST /v1/api-keys.
type KeyInput struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	ExpiresIn string   `json:"expiresIn"`
	UserID    string   `json:"userId"`
}

var expiries = map[string]time.Duration{
	"30d": 30 * 24 * time.Hour,
	"90d": 90 * 24 * time.Hour,
	"1y":  365 * 24 * time.Hour,
}

// ListKeys lists the caller's keys, or with all every key of the org (admin):
// at most limit (0: the default) after cursor, oldest first, and the next
// page's cursor ("" on the last).
func (s *Service) ListKeys(ctx context.Context, all bool, limit int, cursor string) ([]APIKey, string, error) {
	c, err := Require(ctx, "org:read")
	if err != nil {
		return nil, "", err
	}
	page, err := db.ParsePage(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := `SELECT `+keyCols+` FROM api_keys k WHERE k.org_id = ? AND k.user_id = ?`, []any{c.OrgID, c.UserID}
	if all {
		if !c.IsAdmin() {
			return nil, "", berth.Errorf(berth.Forbidden, "only organization admins may list every key (all=true)")
		}
		q, args = `SELECT `+keyCols+` FROM api_keys k WHERE k.org_id = ?`, []any{c.OrgID}
	}
	if cond, cargs, ok := page.Where("k"); ok {
		q += ` AND ` + cond
		args = append(args, cargs...)
	}
	keys := []APIKey{}
	if err := s.db.SelectContext(ctx, &keys, s.db.Rebind(q+page.OrderLimit("k")), args...); err != nil {
		return nil, "", db.Err(err)
	}
	keys, next := db.Trim(page, keys, func(k APIKey) (time.Time, string) { return k.CreatedAt, k.ID })
	now := s.now()
	for i := range keys {
		if err := keys[i].fill(now); err != nil {
			return nil, "", err
		}
	}
	return keys, next, nil
}

// CreateKey mints a key (org:write). Its scopes default to ["*"], must be
// known, and may not exceed the calling key's own; it expires no later than
// the calling key. Admins may mint keys for another member with UserID. The
// secret is in the answer's Key, only here.
func (s *Service) CreateKey(ctx context.Context, in KeyInput) (*APIKey, error) {
	c, err := Require(ctx, "org:write")
	if err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 200 {
		return nil, berth.FieldErrorf(berth.Invalid, "name", "name is required (1..200 characters)")
	}
	if len(in.Scopes) == 0 {
		in.Scopes = []string{"*"}
	}
	for _, sc := range in.Scopes {
		if !ValidScope(sc) {
			return nil, berth.FieldErrorf(berth.Invalid, "scopes", "unknown scope %q", sc)
		}
		if !covers(c.Scopes, sc) {
			return nil, berth.Errorf(berth.Forbidden, "a key cannot grant %q: the calling key does not hold it", sc)
		}
	}
	var expires *time.Time
	if in.ExpiresIn != "" {
		d, ok := expiries[in.ExpiresIn]
		if !ok {
			return nil, berth.FieldErrorf(berth.Invalid, "expiresIn", "expiresIn must be one of \"30d\", \"90d\", \"1y\"")
		}
		t := s.now().Add(d)
		expires = &t
	}
	// A key never outlives the key that mints it: a leaked 30-day key must
	// not buy its holder one that never expires.
	if c.KeyID != "" {
		var parent struct {
			ExpiresAt *time.Time `db:"expires_at"`
		}
		if err := s.db.GetContext(ctx, &parent, s.db.Rebind(`SELECT expires_at FROM api_keys WHERE id = ?`), c.KeyID); err != nil {
			return nil, db.Err(err)
		}
		if p := parent.ExpiresAt; p != nil && (expires == nil || expires.After(*p)) {
			t := p.UTC()
			expires = &t
		}
	}
	owner := c.UserID
	if in.UserID != "" && in.UserID != c.UserID {
		if !c.IsAdmin() {
			return nil, berth.Errorf(berth.Forbidden, "only organization admins may create keys for another member")
		}
		if _, err := s.getMember(ctx, c.OrgID, in.UserID); err != nil {
			if berth.IsKind(err, berth.NotFound) {
				return nil, berth.FieldErrorf(berth.Invalid, "userId", "userId %q is not a member of this organization", in.UserID)
			}
			return nil, err
		}
		owner = in.UserID
	}
	secret := newSecret()
	err = s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		return insertKey(ctx, tx, c.OrgID, owner, in.Name, secret, in.Scopes, expires, s.now())
	})
	if err != nil {
		return nil, err
	}
	var k APIKey
	if err := s.db.GetContext(ctx, &k, s.db.Rebind(`SELECT `+keyCols+` FROM api_keys WHERE key_hash = ?`), hashKey(secret)); err != nil {
		return nil, db.Err(err)
	}
	if err := k.fill(s.now()); err != nil {
		return nil, err
	}
	k.Key = secret
	return &k, nil
}

// RevokeKey revokes a key: the caller's own, or any key of the org for an
// admin (org:write). Revoking twice is harmless.
func (s *Service) RevokeKey(ctx context.Context, id string) (*APIKey, error) {
	c, err := Require(ctx, "org:write")
	if err != nil {
		return nil, err
	}
	var k APIKey
	err = s.db.GetContext(ctx, &k, s.db.Rebind(`SELECT `+keyCols+` FROM api_keys WHERE org_id = ? AND id = ?`), c.OrgID, id)
	if err == nil && k.OwnerUserID != c.UserID && !c.IsAdmin() {
		err = berth.Errorf(berth.NotFound, "API key %q not found", id)
	}
	if err != nil {
		if berth.IsKind(db.Err(err), berth.NotFound) {
			return nil, berth.Errorf(berth.NotFound, "API key %q not found", id)
		}
		return nil, db.Err(err)
	}
	if k.RevokedAt == nil {
		now := s.now()
		if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`), now, id); err != nil {
			return nil, db.Err(err)
		}
		k.RevokedAt = &now
	}
	if err := k.fill(s.now()); err != nil {
		return nil, err
	}
	return &k, nil
}

// Expiries lists the values expiresIn takes (the OpenAPI document's enum).
func Expiries() []string {
	out := make([]string, 0, len(expiries))
	for k := range expiries {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
