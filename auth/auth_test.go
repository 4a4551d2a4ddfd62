package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/db"
	"github.com/berth-dev/berth/db/dbtest"
)

func TestAllows(t *testing.T) {
	cases := []struct {
		have []string
		need string
		ok   bool
	}{
		{[]string{"*"}, "files:write", true},
		{[]string{"files:*"}, "files:write", true},
		{[]string{"files:read"}, "files:write", false},
		{[]string{"files:read"}, "files:read", true},
		{[]string{"sandbox:*"}, "files:read", false},
		{[]string{"admin:*"}, "files:read", false},
		{nil, "org:read", false},
	}
	for _, c := range cases {
		if got := auth.Allows(c.have, c.need); got != c.ok {
			t.Errorf("Allows(%v, %s) = %v", c.have, c.need, got)
		}
	}
}

func TestBootstrapConcurrentOnce(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, d *db.DB) {
		s := auth.New(d, &berth.AccessFeed{}, slog.New(slog.DiscardHandler))
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := s.Bootstrap(context.Background(), "")
				if err != nil && !berth.IsKind(err, berth.Conflict) {
					t.Errorf("bootstrap: %v", err)
				}
				mu.Lock()
				if ok {
					created++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		var keys int
		if err := d.Get(&keys, `SELECT COUNT(*) FROM api_keys`); err != nil {
			t.Fatal(err)
		}
		if created != 1 || keys != 1 {
			t.Errorf("concurrent bootstraps created %d times, %d keys", created, keys)
		}
	})
}

func TestKeysStoredHashed(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, d *db.DB) {
		s := auth.New(d, &berth.AccessFeed{}, slog.New(slog.DiscardHandler))
		key, _, err := s.Bootstrap(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		var hash, prefix string
		if err := errors.Join(d.Get(&hash, `SELECT key_hash FROM api_keys`), d.Get(&prefix, `SELECT key_prefix FROM api_keys`)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(hash, key) || hash == "" || len(prefix) >= len(key)/2 {
			t.Errorf("key stored in the clear or prefix too long: hash %q prefix %q", hash, prefix)
		}
		c, err := s.Authenticate(context.Background(), key)
		if err != nil || c.Role != berth.RoleAdmin {
			t.Fatalf("authenticate: %v %+v", err, c)
		}
		if _, err := s.Authenticate(context.Background(), key+"x"); !berth.IsKind(err, berth.Unauthorized) {
			t.Errorf("wrong key: %v", err)
		}
	})
}
