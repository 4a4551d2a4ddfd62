package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBodyRateCountsClientTimeOnly: time the handler spends between reads
// of a body (a slow disk, a lock) does not count against the client's
// minimum rate.
func TestBodyRateCountsClientTimeOnly(t *testing.T) {
	const window = 200 * time.Millisecond
	srv := httptest.NewServer(Deadlines{BodyMinRate: 100_000, BodyWindow: window}.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		time.Sleep(3 * window) // the server busy, the whole body sent meanwhile
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprint(w, 1+len(rest)) // a failed write shows in the client's check below
	})))
	defer srv.Close()
	const size = 4 << 20 // more than the connection's buffers hold
	resp, err := http.Post(srv.URL, "application/octet-stream", bytes.NewReader(make([]byte, size)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // only the status and body matter
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != fmt.Sprint(size) {
		t.Errorf("a body the server was slow to read: %d %q", resp.StatusCode, b)
	}
}
