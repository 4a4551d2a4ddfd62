package auth

import (
	"context"
	"strings"

	"github.com/berth-dev/berth"
)

// Scopes an API key may carry. "X:*" grants every "X:..." scope; "*" grants all.
var knownScopes = []string{
	"sandbox:create", "sandbox:read", "sandbox:write", "sandbox:*",
	"agent:run", "agent:read", "agent:write", "agent:*",
	"files:read", "files:write", "files:*",
	"org:read", "org:write", "org:members", "org:*",
	"admin:*", "*",
}

// ValidScope reports whether s is a scope berth knows.
func ValidScope(s string) bool {
	for _, k := range knownScopes {
		if s == k {
			return true
		}
	}
	return false
}

// Allows reports whether a key holding scopes may use need (an exact scope
// such as "files:read").
func Allows(scopes []string, need string) bool {
	family, _, _ := strings.Cut(need, ":")
	for _, s := range scopes {
		if s == "*" || s == need || s == family+":*" {
			return true
		}
	}
	return false
}

// covers reports whether holder grants at least everything s grants; used so
// that a key can never mint a key stronger than itself.
func covers(holder []string, s string) bool {
	switch {
	case s == "*":
		return containsStar(holder)
	case strings.HasSuffix(s, ":*"):
		family := strings.TrimSuffix(s, ":*")
		for _, h := range holder {
			if h == "*" || h == s || h == family+":*" {
				return true
			}
		}
		return false
	}
	return Allows(holder, s)
}

func containsStar(scopes []string) bool {
	for _, s := range scopes {
		if s == "*" {
			return true
		}
	}
	return false
}

// Require fails with Unauthorized when ctx has no caller and Forbidden when
// the caller's key lacks scope.
func Require(ctx context.Context, scope string) (*berth.Caller, error) {
	c := berth.CallerFrom(ctx)
	if c == nil {
		return nil, berth.Errorf(berth.Unauthorized, "an API key is required")
	}
	if !Allows(c.Scopes, scope) {
		return nil, berth.Errorf(berth.Forbidden, "this API key lacks the %q scope", scope)
	}
	return c, nil
}

// RequireAdmin is Require plus the admin role.
func RequireAdmin(ctx context.Context, scope string) (*berth.Caller, error) {
	c, err := Require(ctx, scope)
	if err != nil {
		return nil, err
	}
	if !c.IsAdmin() {
		return nil, berth.Errorf(berth.Forbidden, "only organization admins may do this")
	}
	return c, nil
}

// KnownScopes lists every scope a key may carry (the OpenAPI document's enum).
func KnownScopes() []string { return append([]string(nil), knownScopes...) }
