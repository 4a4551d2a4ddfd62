package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

// DefaultSessionTTL is how long a browser session lasts unless configured.
const DefaultSessionTTL = 12 * time.Hour

// Session is a signed-in browser session. The token that names it goes to
// the browser (in an HttpOnly cookie) and only its SHA-256 hash is stored;
// the CSRF token is not a credential on its own and is stored as is, so
// that a reloaded page can get it back.
type Session struct {
	ID        string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
	// Caller is the key's user with the key's scopes and the user's role
	// as they are now.
	Caller *berth.Caller
}

// CheckCSRF reports whether token is the session's CSRF token, in constant
// time.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRFToken)) == 1
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// OpenSession signs in with an API key: the key is checked as for any
// request, and a session of its user with its scopes is stored. The session
// ends after ttl, or when the key expires if that is sooner. The token is
// returned once, here; expired sessions of every user are swept on the way.
func (s *Service) OpenSession(ctx context.Context, secret string, ttl time.Duration) (string, *Session, error) {
	if ttl <= 0 {
		return "", nil, berth.Errorf(berth.Internal, "session TTL must be positive")
	}
	if secret == "" {
		return "", nil, berth.FieldErrorf(berth.Invalid, "apiKey", "apiKey is required")
	}
	c, err := s.Authenticate(ctx, secret)
	if err != nil {
		return "", nil, err
	}
	var key struct {
		ExpiresAt *time.Time `db:"expires_at"`
	}
	if err := s.db.GetContext(ctx, &key, s.db.Rebind(`SELECT expires_at FROM api_keys WHERE id = ?`), c.KeyID); err != nil {
		return "", nil, db.Err(err)
	}
	now := s.now()
	expires := now.Add(ttl)
	// A session never outlives the key it was opened with.
	if key.ExpiresAt != nil && key.ExpiresAt.Before(expires) {
		expires = key.ExpiresAt.UTC()
	}
	if _, err := s.SweepSessions(ctx); err != nil {
		// Only dead rows stay, for the next sweep.
		s.log.Warn("sweep expired sessions", "err", err)
	}
	token := randomToken()
	sess := &Session{ID: db.NewID("ses"), CSRFToken: randomToken(), CreatedAt: now, ExpiresAt: expires, Caller: c}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO sessions
		(id, token_hash, key_id, user_id, org_id, csrf_token, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		sess.ID, hashKey(token), c.KeyID, c.UserID, c.OrgID, sess.CSRFToken, now, expires)
	if err != nil {
		return "", nil, db.Err(err)
	}
	return token, sess, nil
}

// AuthenticateSession resolves a session token. Like Authenticate it reads
// the database every time: the key's scopes and revocation, its expiry and
// the user's role and membership are those of now. A session that has
// ended for any of these reasons is deleted.
func (s *Service) AuthenticateSession(ctx context.Context, token string) (*Session, error) {
	if token == "" {
		return nil, berth.Errorf(berth.Unauthorized, "not signed in: no session cookie")
	}
	const q = `SELECT s.id, s.csrf_token, s.created_at, s.expires_at,
		k.id AS key_id, k.scopes, k.expires_at AS key_expires_at, k.revoked_at, k.last_used_at,
		u.id AS user_id, u.name, u.role, u.org_id
		FROM sessions s
		JOIN api_keys k ON k.id = s.key_id AND k.user_id = s.user_id
		JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id
		WHERE s.token_hash = ?`
	var row struct {
		ID           string     `db:"id"`
		CSRF         string     `db:"csrf_token"`
		CreatedAt    time.Time  `db:"created_at"`
		ExpiresAt    time.Time  `db:"expires_at"`
		KeyID        string     `db:"key_id"`
		Scopes       string     `db:"scopes"`
		KeyExpiresAt *time.Time `db:"key_expires_at"`
		RevokedAt    *time.Time `db:"revoked_at"`
		LastUsedAt   *time.Time `db:"last_used_at"`
		UserID       string     `db:"user_id"`
		Name         string     `db:"name"`
		Role         berth.Role `db:"role"`
		OrgID        string     `db:"org_id"`
	}
	hash := hashKey(token)
	if err := s.db.GetContext(ctx, &row, s.db.Rebind(q), hash); err != nil {
		err = db.Err(err)
		if berth.IsKind(err, berth.NotFound) {
			// The key or the member is gone (their rows take the session
			// with them), or it was signed out: nothing to keep either way.
			s.deleteSession(ctx, `token_hash = ?`, hash)
			return nil, berth.Errorf(berth.Unauthorized, "this session has ended: sign in again")
		}
		return nil, err
	}
	now := s.now()
	var reason string
	switch {
	case !now.Before(row.ExpiresAt):
		reason = "this session has expired: sign in again"
	case row.RevokedAt != nil:
		reason = "the API key of this session has been revoked"
	case row.KeyExpiresAt != nil && !now.Before(*row.KeyExpiresAt):
		reason = "the API key of this session has expired"
	}
	if reason != "" {
		s.deleteSession(ctx, `id = ?`, row.ID)
		return nil, berth.Errorf(berth.Unauthorized, "%s", reason)
	}
	s.touchKey(ctx, row.KeyID, row.LastUsedAt, now)
	var scopes []string
	if err := json.Unmarshal([]byte(row.Scopes), &scopes); err != nil {
		return nil, berth.Wrap(berth.Internal, err, "API key "+row.KeyID+": stored scopes")
	}
	return &Session{ID: row.ID, CSRFToken: row.CSRF, CreatedAt: row.CreatedAt.UTC(), ExpiresAt: row.ExpiresAt.UTC(),
		Caller: &berth.Caller{UserID: row.UserID, UserName: row.Name, OrgID: row.OrgID, Role: row.Role, KeyID: row.KeyID, Scopes: scopes}}, nil
}

// EndSession signs a session out: its row is deleted, so its token
// authenticates nothing any more.
func (s *Service) EndSession(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM sessions WHERE id = ?`), id)
	return db.Err(err)
}

// SweepSessions deletes the sessions that have expired and returns how many.
func (s *Service) SweepSessions(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM sessions WHERE expires_at <= ?`), s.now())
	if err != nil {
		return 0, db.Err(err)
	}
	return res.RowsAffected()
}

// deleteSession removes the session matching cond; the caller is already
// answering 401, so a failure is only logged (the row stays unusable).
func (s *Service) deleteSession(ctx context.Context, cond string, arg any) {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM sessions WHERE `+cond), arg); err != nil {
		s.log.Warn("delete ended session", "err", db.Err(err))
	}
}
