// Package berth holds the vocabulary shared by every other package: the error
// kinds, and the caller and request id attached to a request's context. It
// imports nothing of the project so that everything may import it.
package berth

import "context"

// Role of a user in an organization.
type Role string

const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// Caller is the authenticated principal of a request: a user, in an org,
// acting through one API key with a set of scopes.
type Caller struct {
	UserID   string
	UserName string
	OrgID    string
	Role     Role
	KeyID    string
	Scopes   []string
}

// IsAdmin reports whether the caller is an org admin.
func (c *Caller) IsAdmin() bool { return c != nil && c.Role == RoleAdmin }

type callerKey struct{}

// WithCaller returns a context carrying c.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller on ctx, or nil.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}
