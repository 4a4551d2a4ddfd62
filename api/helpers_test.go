package api_test

import (
	"net/http"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
)

// closeBody closes an answer's body once the test has read what it needs:
// the close's error says nothing about the answer.
func closeBody(resp *http.Response) { _ = resp.Body.Close() }

// destroyOnCleanup destroys sandbox id when t ends, unless the test did;
// any other failure fails t.
func destroyOnCleanup(t testing.TB, c *client.Client, id string) {
	t.Cleanup(func() {
		ctx, cancel := testctx.Cleanup()
		defer cancel()
		sb, err := c.Sandbox(ctx, id)
		if client.ErrorCode(err) == "not_found" || (err == nil && (sb.Status == "destroyed" || sb.Status == "destroying")) {
			return // the test destroyed it (or is; servertest removes what is left)
		}
		if err := c.DestroySandbox(ctx, id); err != nil {
			t.Errorf("destroy sandbox %s: %v", id, err)
		}
	})
}
