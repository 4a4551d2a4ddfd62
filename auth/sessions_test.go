package auth_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
)

func TestSessionStore(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s := auth.New(d, &berth.AccessFeed{}, slog.New(slog.DiscardHandler))
		key, _, err := s.Bootstrap(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		tok, sess, err := s.OpenSession(ctx, key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		tok2, sess2, err := s.OpenSession(ctx, key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if tok == tok2 || sess.ID == sess2.ID || sess.CSRFToken == sess2.CSRFToken || tok == sess.CSRFToken {
			t.Errorf("two sessions share a token: %q %q, csrf %q %q", tok, tok2, sess.CSRFToken, sess2.CSRFToken)
		}
		if got := sess.ExpiresAt.Sub(sess.CreatedAt); got != time.Hour {
			t.Errorf("session life %v, want the TTL 1h", got)
		}
		got, err := s.AuthenticateSession(ctx, tok)
		if err != nil || got.ID != sess.ID || got.Caller.Role != berth.RoleAdmin || got.Caller.KeyID == "" {
			t.Fatalf("AuthenticateSession: %+v, %v", got, err)
		}
		if !got.CheckCSRF(sess.CSRFToken) || got.CheckCSRF("") || got.CheckCSRF(sess2.CSRFToken) {
			t.Errorf("CheckCSRF accepts the wrong tokens or refuses the right one")
		}
		for _, bad := range []string{"", tok + "x", tok2[:len(tok2)-1], sess.CSRFToken} {
			if _, err := s.AuthenticateSession(ctx, bad); !berth.IsKind(err, berth.Unauthorized) {
				t.Errorf("AuthenticateSession(%q): %v, want unauthorized", bad, err)
			}
		}
		if _, _, err := s.OpenSession(ctx, key+"x", time.Hour); !berth.IsKind(err, berth.Unauthorized) {
			t.Errorf("OpenSession with a wrong key: %v, want unauthorized", err)
		}
		if err := s.EndSession(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateSession(ctx, tok); !berth.IsKind(err, berth.Unauthorized) {
			t.Errorf("ended session: %v, want unauthorized", err)
		}
		if _, err := s.AuthenticateSession(ctx, tok2); err != nil {
			t.Errorf("the other session after one ended: %v", err)
		}
	})
}
