package main

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

func TestMemberCommands(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, srv *servertest.Env) {
		c := newCLI(t, srv)
		ctx := testctx.Context(t)

		out := c.OK("member", "add", "Ada Lovelace", "--email", "ada@example.com")
		if !strings.HasPrefix(out, "member Ada Lovelace added as member (") {
			t.Errorf("add said %q", out)
		}
		var bob client.Member
		c.JSON(&bob, "member", "add", "Bob", "--role", "admin")
		if bob.ID == "" || bob.Role != "admin" || bob.Name != "Bob" {
			t.Errorf("add -o json: %+v", bob)
		}

		rows := c.Table("member", "list")
		ada := row(t, rows, "EMAIL", "ada@example.com")
		if ada["NAME"] != "Ada Lovelace" || ada["ROLE"] != "member" || ada["ID"] == "" {
			t.Errorf("ada row: %v", ada)
		}
		if row(t, rows, "NAME", "Bob")["ROLE"] != "admin" {
			t.Errorf("bob row: %v", rows)
		}
		var ms []client.Member
		c.JSON(&ms, "member", "list")
		if len(ms) != len(rows) || len(ms) < 3 { // the admin, Ada, Bob
			t.Errorf("list -o json %d members, table %d", len(ms), len(rows))
		}

		// role by email, then by name; remove by name.
		out = c.OK("member", "role", "ada@example.com", "admin")
		if out != "member Ada Lovelace: role member → admin\n" {
			t.Errorf("role said %q", out)
		}
		var m client.Member
		c.JSON(&m, "member", "role", "Ada Lovelace", "member")
		if m.Role != "member" || m.ID != ada["ID"] {
			t.Errorf("role -o json: %+v", m)
		}
		if got, err := srv.Admin.Member(ctx, ada["ID"]); err != nil || got.Role != "member" {
			t.Errorf("after role: %+v %v", got, err)
		}
		if r := c.Fail("member", "role", "Ada Lovelace", "owner"); !strings.Contains(r.Stderr, "(request ") {
			t.Errorf("bad role: %q", r.Stderr)
		}
		if r := c.Fail("member", "remove", "nobody@example.com"); !strings.Contains(r.Stderr, `member "nobody@example.com" not found`) {
			t.Errorf("remove unknown: %q", r.Stderr)
		}
		out = c.OK("member", "remove", "Bob")
		if out != "member Bob removed ("+bob.ID+")\n" {
			t.Errorf("remove said %q", out)
		}
		if _, err := srv.Admin.Member(ctx, bob.ID); client.ErrorCode(err) != "not_found" {
			t.Errorf("Bob after remove: %v", err)
		}
		if out := c.OK("__complete", "member", "remove", ""); !strings.Contains(out, "ada@example.com\tAda Lovelace (member)") {
			t.Errorf("member completion: %q", out)
		}
	})
}

func TestKeyCommands(t *testing.T) {
	servertest.Engines(t, func(t *testing.T, srv *servertest.Env) {
		c := newCLI(t, srv)

		// create: the sentence and the secret on stdout, the warning on
		// stderr.
		r := c.Run("key", "create", "ci", "--scopes", "sandbox:read,files:*")
		if r.Code != 0 {
			t.Fatalf("key create: %d %s", r.Code, r.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "API key ci created (key_") || !strings.Contains(lines[0], "scopes sandbox:read,files:*") {
			t.Fatalf("key create said %q", r.Stdout)
		}
		secret := lines[1]
		if !strings.Contains(r.Stderr, "only time") {
			t.Errorf("no warning on stderr: %q", r.Stderr)
		}
		// The secret works, within its scopes.
		kc := newCLI(t, srv)
		kc.Setenv("BERTH_API_KEY", secret)
		kc.OK("workspace", "list")
		if r := kc.Fail("member", "add", "X"); !strings.Contains(r.Stderr, "(request ") {
			t.Errorf("out of scope: %q", r.Stderr)
		}

		var k client.APIKey
		c.JSON(&k, "key", "create", "other", "--expires-in", "30d")
		if k.Key == "" || k.ExpiresAt == nil || k.Status != "active" || k.Name != "other" {
			t.Errorf("create -o json: %+v", k)
		}
		quiet := strings.TrimSpace(c.OK("key", "create", "quiet", "-q"))
		if !strings.HasPrefix(quiet, strings.Split(k.Key, "_")[0]) || strings.Contains(quiet, " ") {
			t.Errorf("create -q printed %q", quiet)
		}

		rows := c.Table("key", "list")
		ci := row(t, rows, "NAME", "ci")
		if ci["SCOPES"] != "sandbox:read,files:*" || ci["STATUS"] != "active" || ci["EXPIRES"] != "never" || !strings.HasPrefix(secret, ci["PREFIX"]) {
			t.Errorf("ci row: %v", ci)
		}
		if row(t, rows, "NAME", "other")["EXPIRES"] == "never" {
			t.Errorf("other row: %v", rows)
		}
		var ks []client.APIKey
		c.JSON(&ks, "key", "list")
		for _, x := range ks {
			if x.Key != "" {
				t.Errorf("list shows a secret: %+v", x)
			}
		}
		if len(ks) != len(rows) {
			t.Errorf("json %d keys, table %d", len(ks), len(rows))
		}
		if out := c.OK("__complete", "key", "revoke", ""); !strings.Contains(out, ci["ID"]+"\tci") {
			t.Errorf("key completion: %q", out)
		}

		// revoke by name; the key then fails with 401 and a request id.
		out := c.OK("key", "revoke", "ci")
		if out != "API key ci revoked ("+ci["ID"]+")\n" {
			t.Errorf("revoke said %q", out)
		}
		r = kc.Fail("workspace", "list")
		if r.Code != 1 || !strings.HasPrefix(r.Stderr, "berth: this API key has been revoked (request req_") {
			t.Errorf("revoked key: exit %d %q", r.Code, r.Stderr)
		}
		if row(t, c.Table("key", "list"), "ID", ci["ID"])["STATUS"] != "revoked" {
			t.Error("revoked key listed as not revoked")
		}
		var rk client.APIKey
		c.JSON(&rk, "key", "revoke", k.ID)
		if rk.ID != k.ID || rk.Status != "revoked" {
			t.Errorf("revoke -o json: %+v", rk)
		}
		if r := c.Fail("key", "revoke", "ci"); !strings.Contains(r.Stderr, `API key "ci" not found`) {
			t.Errorf("revoke again by name: %q", r.Stderr)
		}
	})
}
