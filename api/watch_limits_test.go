package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
	"github.com/berth-dev/berth/workspace"
)

// openWatch starts a watch stream of ws for c and waits until it is ready
// (nil error, stop ends it) or refused (the API error). events, if not nil,
// gets the stream's events and is closed when the stream ends.
func openWatch(t *testing.T, c *client.Client, ws string, events chan<- client.FileEvent) (stop func(), err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.WatchFiles(ctx, ws, "/", func() { close(ready) }, func(e client.FileEvent) error {
			if events != nil {
				events <- e
			}
			return nil
		})
		if events != nil {
			close(events) // the stream ended: no more events
		}
	}()
	select {
	case <-ready:
		t.Cleanup(cancel)
		return cancel, nil
	case err := <-done:
		cancel()
		if err == nil {
			t.Fatal("watch ended before it was ready, without an error")
		}
		return nil, err
	}
}

// wantLimited checks a refusal past a watch limit: 429, rate_limited, a
// Retry-After and a message naming the limit.
func wantLimited(t *testing.T, what string, err error, word string) {
	t.Helper()
	var e *client.Error
	if !asClientError(err, &e) || e.Status != http.StatusTooManyRequests || e.Code != "rate_limited" {
		t.Fatalf("%s: %v, want 429 rate_limited", what, err)
	}
	if e.RetryAfter <= 0 {
		t.Errorf("%s: no Retry-After", what)
	}
	if !strings.Contains(e.Message, word) || e.RequestID == "" {
		t.Errorf("%s: envelope %+v, want a message about the %s and a request id", what, e, word)
	}
}

func asClientError(err error, out **client.Error) bool {
	e, ok := err.(*client.Error)
	*out = e
	return ok
}

// waitWatches waits until the server counts n watch streams: a closed
// stream frees its slot once the server has seen the client go.
func waitWatches(t *testing.T, env *servertest.Env, n int) {
	t.Helper()
	testctx.Eventually(t, fmt.Sprintf("the server to count %d watch streams", n), func() bool {
		return env.API.Files.Stats().Watches == n
	})
}

// One member holding many watch streams must not take watch away from
// everybody (it answered 503 for all once 64 were open): streams are capped
// per user, and the workspaces they keep open (one inotify instance each)
// per organization, with 429 + Retry-After; all streams together keep only
// part of the inotify budget, so other members, other organizations and new
// workspaces still get watch.
func TestWatchLimits(t *testing.T) {
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.MaxWatchesPerUser, cfg.MaxWatchedWorkspacesPerOrg, cfg.MaxWatchedWorkspaces = 2, 3, 4
	env := servertest.StartConfig(t, cfg)
	ctx := context.Background()
	_, alice := env.Member(t, "alice", "member")
	_, bob := env.Member(t, "bob", "member")
	_, carol := env.Member(t, "carol", "member")
	newWS := func(c *client.Client, name string) string {
		w, err := c.CreateWorkspace(ctx, client.WorkspaceRequest{Name: name})
		must(t, err)
		return w.ID
	}
	a1, a2, a3 := newWS(alice, "a1"), newWS(alice, "a2"), newWS(alice, "a3")
	b1, c1 := newWS(bob, "b1"), newWS(carol, "c1")

	// Alice up to her limit; one more is refused, on any workspace.
	stopA1, err := openWatch(t, alice, a1, nil)
	must(t, err)
	_, err = openWatch(t, alice, a2, nil)
	must(t, err)
	_, err = openWatch(t, alice, a3, nil)
	wantLimited(t, "alice's third stream", err, "user")
	_, err = openWatch(t, alice, a1, nil)
	wantLimited(t, "alice's third stream on a watched workspace", err, "user")

	// Bob, on a brand-new workspace, still gets watch, and its events.
	events := make(chan client.FileEvent, 16)
	_, err = openWatch(t, bob, b1, events)
	must(t, err)
	_, err = bob.CreateFile(ctx, b1, "/", "hello", "file", ptr("x"))
	must(t, err)
	if e, ok := <-events; !ok || e.Path != "/hello" {
		t.Errorf("bob's first event: %+v", e)
	}

	// The organization watches as many workspaces as it may now: another
	// is refused, a stream on one it watches costs nothing more.
	_, err = openWatch(t, carol, c1, nil)
	wantLimited(t, "carol's stream with the organization at its limit", err, "organization")
	stopC, err := openWatch(t, env.Admin, a1, nil) // admins see every workspace
	must(t, err)

	// Another organization is not affected by this one's streams; all
	// streams together keep MaxWatchedWorkspaces workspaces open at most,
	// and a stream on one already watched costs none.
	other := berth.WithCaller(ctx, &berth.Caller{UserID: "usr_other", OrgID: "org_other", Role: berth.RoleMember})
	_, stopO1, err := env.API.Files.Watch(other, &workspace.Workspace{ID: c1, OrgID: "org_other"}, "/")
	must(t, err)
	defer stopO1()
	_, _, err = env.API.Files.Watch(other, &workspace.Workspace{ID: a3, OrgID: "org_other"}, "/")
	if !berth.IsKind(err, berth.Unavailable) || berth.RetryAfter(err) <= 0 {
		t.Errorf("a fifth watched workspace: %v, want unavailable with a retry hint", err)
	}
	_, stopO2, err := env.API.Files.Watch(other, &workspace.Workspace{ID: a1, OrgID: "org_other"}, "/")
	must(t, err)
	defer stopO2()
	waitWatches(t, env, 6)
	stopO1()
	stopO2()

	// Closing streams frees their slots, once the server has seen them go.
	waitWatches(t, env, 4)
	stopA1()
	stopC()
	waitWatches(t, env, 2)
	_, err = openWatch(t, alice, a3, nil)
	must(t, err)
}

// Streams must not take the inotify instances of workspaces opened later
// (each open workspace's usage tracker watches it): callers of many
// organizations hold as many streams as they can on distinct workspaces,
// and a brand-new workspace still notices a change made in it by a sandbox
// (with no instance its usage would only see it at its 10-minute rescan).
func TestWatchLeavesInotifyForNewWorkspaces(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	a := env.Admin
	const tries = 64 // the process-wide inotify budget
	var ids []string
	for i := range tries + 1 {
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: fmt.Sprintf("w%d", i)})
		must(t, err)
		ids = append(ids, w.ID)
	}
	held := 0
	for i, id := range ids[:tries] {
		org := fmt.Sprintf("org_%d", i/8)
		cctx := berth.WithCaller(ctx, &berth.Caller{UserID: fmt.Sprintf("usr_%d", i), OrgID: org, Role: berth.RoleMember})
		_, stop, err := env.API.Files.Watch(cctx, &workspace.Workspace{ID: id, OrgID: org}, "/")
		if err != nil {
			if !berth.IsKind(err, berth.Unavailable) {
				t.Fatalf("stream %d: %v", i, err)
			}
			continue
		}
		held++
		t.Cleanup(stop)
	}
	if held != workspace.DefaultWatchedWorkspaces {
		t.Errorf("streams kept %d workspaces open, want %d", held, workspace.DefaultWatchedWorkspaces)
	}

	fresh := ids[tries]
	_, err := a.CreateFile(ctx, fresh, "/", "api", "file", ptr("12345"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(wsDir(env, fresh), "direct"), make([]byte, 1000), 0o644))
	// Without change notifications the usage would only move at the
	// tracker's 10-minute rescan: the bound of 2 minutes (far more than a
	// notification takes on a loaded machine) is what tells the two apart.
	within, cancel := context.WithTimeout(testctx.Context(t), 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sp, err := a.WorkspaceSpace(ctx, fresh)
		must(t, err)
		if sp.Used == 1005 {
			break
		}
		select {
		case <-within.Done():
			t.Fatalf("the new workspace's usage is %d, not 1005: it has no change notifications", sp.Used)
		case <-tick.C:
		}
	}
}
