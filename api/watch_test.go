package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// Trees a sandbox makes in one quick burst (mkdir -p a/b/c && touch
// a/b/c/f) are reported completely through the API: a new directory is
// watched, then scanned. Each batch ends with a marker file, the barrier:
// once its create arrives, every event of the batch has.
func TestWatchSandboxBurst(t *testing.T) {
	env := servertest.Start(t, "")
	needEngine(t, env)
	ctx := context.Background()
	a := env.Admin
	w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "burst"})
	must(t, err)
	sb := newSandbox(t, a, client.SandboxRequest{Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}})
	events := make(chan client.FileEvent, 1024)
	_, err = openWatch(t, a, w.ID, events)
	must(t, err)

	const batches, rounds = 5, 10
	for b := range batches {
		script := fmt.Sprintf(`cd /workspace && i=0 && while [ $i -lt %d ]; do mkdir -p b%d-$i/a/b/c && touch b%d-$i/a/b/c/f; i=$((i+1)); done && touch b%d.done`,
			rounds, b, b, b)
		sh(t, a, sb.ID, script)
		want := map[string]bool{}
		for i := range rounds {
			for _, p := range []string{"", "/a", "/a/b", "/a/b/c", "/a/b/c/f"} {
				want[fmt.Sprintf("/b%d-%d%s", b, i, p)] = false
			}
		}
		for done := false; !done; {
			e, ok := <-events
			if !ok {
				t.Fatalf("batch %d: the watch ended", b)
			}
			switch {
			case e.Type == "overflow":
				t.Fatalf("batch %d: events overflowed", b)
			case e.Type == "create" && e.Path == fmt.Sprintf("/b%d.done", b):
				done = true
			case e.Type == "create":
				if _, ok := want[e.Path]; ok {
					want[e.Path] = true
				}
			}
		}
		for p, seen := range want {
			if !seen {
				t.Errorf("batch %d: no create for %s", b, p)
			}
		}
	}
}
