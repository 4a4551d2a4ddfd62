// Package auth owns organizations, users (members) and API keys, the scope
// vocabulary, and the bootstrap of a fresh installation. Keys are random
// secrets shown once and stored only as SHA-256 hashes.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/db"
)

// KeyPrefix starts every API key so that secret scanners can find leaked ones.
const KeyPrefix = "berth_"

// Service is the org, member and key store.
type Service struct {
	db     *db.DB
	access AccessNotifier
	log    *slog.Logger
	now    func() time.Time
}

// AccessNotifier is told, after a change is committed, that users may
// have lost access to workspaces (berth.AccessFeed implements it).
type AccessNotifier interface {
	AccessLost(ctx context.Context, l berth.AccessLoss)
}

// New returns a Service on d; access is told when a member is removed or
// demoted, and log gets the failures the service does not return (neither
// may be nil).
func New(d *db.DB, access AccessNotifier, log *slog.Logger) *Service {
	if access == nil || log == nil {
		panic("auth.New: nil AccessNotifier or logger")
	}
	return &Service{db: d, access: access, log: log, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// Member is a user of the organization.
type Member struct {
	ID        string     `json:"id" db:"id"`
	OrgID     string     `json:"-" db:"org_id"`
	Name      string     `json:"name" db:"name"`
	Email     string     `json:"email" db:"email"`
	Role      berth.Role `json:"role" db:"role"`
	CreatedAt time.Time  `json:"createdAt" db:"created_at"`
}

// Org is an organization.
type Org struct {
	ID   string `json:"id" db:"id"`
	Name string `json:"name" db:"name"`
}

// APIKey describes a key; Key (the secret) is set only in a creation answer.
type APIKey struct {
	ID          string     `json:"id" db:"id"`
	Name        string     `json:"name" db:"name"`
	KeyPrefix   string     `json:"keyPrefix" db:"key_prefix"`
	Scopes      []string   `json:"scopes" db:"-"`
	ScopesJSON  string     `json:"-" db:"scopes"`
	OwnerUserID string     `json:"ownerUserId" db:"user_id"`
	OrgID       string     `json:"-" db:"org_id"`
	ExpiresAt   *time.Time `json:"expiresAt" db:"expires_at"`
	LastUsedAt  *time.Time `json:"lastUsedAt" db:"last_used_at"`
	RevokedAt   *time.Time `json:"revokedAt" db:"revoked_at"`
	CreatedAt   time.Time  `json:"createdAt" db:"created_at"`
	Status      string     `json:"status" db:"-"`
	Key         string     `json:"key,omitempty" db:"-"`
}

// fill sets the fields derived from the stored ones. Scopes that do not
// decode are a corrupt row: an error, not a key shown without scopes.
func (k *APIKey) fill(now time.Time) error {
	if err := json.Unmarshal([]byte(k.ScopesJSON), &k.Scopes); err != nil {
		return berth.Wrap(berth.Internal, err, "API key "+k.ID+": stored scopes")
	}
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	switch {
	case k.RevokedAt != nil:
		k.Status = "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		k.Status = "expired"
	default:
		k.Status = "active"
	}
	return nil
}

func hashKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return KeyPrefix + strings.ToLower(keyEncoding.EncodeToString(b[:]))
}

// keyPrefixOf is the part of a secret that is safe to show in listings.
func keyPrefixOf(secret string) string {
	if len(secret) > 14 {
		return secret[:14]
	}
	return secret
}

// ValidBootstrapKey checks a key supplied through BERTH_BOOTSTRAP_KEY.
func ValidBootstrapKey(k string) error {
	if !strings.HasPrefix(k, KeyPrefix) || len(k) < 40 {
		return fmt.Errorf("BERTH_BOOTSTRAP_KEY must start with %q and be at least 40 characters", KeyPrefix)
	}
	return nil
}

// Bootstrap prepares an empty database: org "default", user "admin" with the
// admin role and an API key with scope "*" (preset when non-empty, random
// otherwise). It returns the key and true only when it created them; on a
// database that already has an organization it does nothing.
func (s *Service) Bootstrap(ctx context.Context, preset string) (string, bool, error) {
	if preset != "" {
		if err := ValidBootstrapKey(preset); err != nil {
			return "", false, err
		}
	}
	var key string
	var created bool
	err := s.db.Tx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM orgs`); err != nil {
			return db.Err(err)
		}
		if n > 0 {
			return nil
		}
		now := s.now()
		orgID := db.NewID("org")
		userID := db.NewID("usr")
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)`),
			orgID, "default", now); err != nil {
			return db.Err(err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO users (id, org_id, name, email, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
			userID, orgID, "admin", "", berth.RoleAdmin, now); err != nil {
			return db.Err(err)
		}
		key = preset
		if key == "" {
			key = newSecret()
		}
		if err := insertKey(ctx, tx, orgID, userID, "bootstrap", key, []string{"*"}, nil, now); err != nil {
			return err
		}
		created = true
		return nil
	})
	return key, created, err
}

func insertKey(ctx context.Context, tx *sqlx.Tx, orgID, userID, name, secret string, scopes []string, expires *time.Time, now time.Time) error {
	sj, _ := json.Marshal(scopes)
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO api_keys
		(id, org_id, user_id, name, key_prefix, key_hash, scopes, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		db.NewID("key"), orgID, userID, name, keyPrefixOf(secret), hashKey(secret), string(sj), expires, now)
	return db.Err(err)
}

// Authenticate resolves an API key secret to its caller. Every call reads the
// database, so a revocation takes effect on the very next request.
func (s *Service) Authenticate(ctx context.Context, secret string) (*berth.Caller, error) {
	if secret == "" {
		return nil, berth.Errorf(berth.Unauthorized, "an API key is required (X-API-Key or Authorization: Bearer)")
	}
	const q = `SELECT k.id, k.scopes, k.expires_at, k.revoked_at, k.last_used_at,
		u.id AS user_id, u.name, u.role, u.org_id
		FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?`
	var row struct {
		ID         string     `db:"id"`
		Scopes     string     `db:"scopes"`
		ExpiresAt  *time.Time `db:"expires_at"`
		RevokedAt  *time.Time `db:"revoked_at"`
		LastUsedAt *time.Time `db:"last_used_at"`
		UserID     string     `db:"user_id"`
		Name       string     `db:"name"`
		Role       berth.Role `db:"role"`
		OrgID      string     `db:"org_id"`
	}
	err := s.db.GetContext(ctx, &row, s.db.Rebind(q), hashKey(secret))
	if err != nil {
		if berth.IsKind(db.Err(err), berth.NotFound) {
			return nil, berth.Errorf(berth.Unauthorized, "unknown API key")
		}
		return nil, db.Err(err)
	}
	now := s.now()
	if row.RevokedAt != nil {
		return nil, berth.Errorf(berth.Unauthorized, "this API key has been revoked")
	}
	if row.ExpiresAt != nil && !now.Before(*row.ExpiresAt) {
		return nil, berth.Errorf(berth.Unauthorized, "this API key has expired")
	}
	s.touchKey(ctx, row.ID, row.LastUsedAt, now)
	var scopes []string
	if err := json.Unmarshal([]byte(row.Scopes), &scopes); err != nil {
		return nil, fmt.Errorf("key %s: bad scopes: %w", row.ID, err)
	}
	return &berth.Caller{UserID: row.UserID, UserName: row.Name, OrgID: row.OrgID, Role: row.Role, KeyID: row.ID, Scopes: scopes}, nil
}

// touchKey records a use of the key (directly or through a session).
// Recording every use would turn each read into a write; a minute's
// precision is enough for "last used".
func (s *Service) touchKey(ctx context.Context, id string, last *time.Time, now time.Time) {
	if last != nil && now.Sub(*last) <= time.Minute {
		return
	}
	// Only "last used" goes stale if this fails: the key is still good.
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`), now, id); err != nil {
		s.log.Warn("record API key use", "key", id, "err", db.Err(err))
	}
}

// Me describes the caller.
type Me struct {
	User   Member     `json:"user"`
	Org    Org        `json:"org"`
	Role   berth.Role `json:"role"`
	Scopes []string   `json:"scopes"`
}

// Me returns the caller's user, org, role and key scopes.
func (s *Service) Me(ctx context.Context) (*Me, error) {
	c := berth.CallerFrom(ctx)
	if c == nil {
		return nil, berth.Errorf(berth.Unauthorized, "an API key is required")
	}
	m, err := s.getMember(ctx, c.OrgID, c.UserID)
	if err != nil {
		return nil, err
	}
	var o Org
	if err := s.db.GetContext(ctx, &o, s.db.Rebind(`SELECT id, name FROM orgs WHERE id = ?`), c.OrgID); err != nil {
		return nil, db.Err(err)
	}
	return &Me{User: *m, Org: o, Role: c.Role, Scopes: c.Scopes}, nil
}
