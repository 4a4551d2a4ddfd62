package berth_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-dev/berth"
)

// A line logged with a request's context names the request, once, however
// the logger was derived; a line without one names none.
func TestRequestIDHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(berth.RequestIDHandler(slog.NewTextHandler(&buf, nil)))
	ctx := berth.WithRequestID(context.Background(), "req_1")

	log.InfoContext(ctx, "plain")
	log.With("svc", "sandbox").WarnContext(context.WithoutCancel(ctx), "derived, outliving the request")
	log.InfoContext(ctx, "explicit", berth.LogKeyRequestID, "req_1")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for _, l := range lines[:3] {
		if strings.Count(l, "requestId=req_1") != 1 {
			t.Errorf("want requestId=req_1 once: %s", l)
		}
	}
	if strings.Contains(lines[3], "requestId") {
		t.Errorf("a line without request names one: %s", lines[3])
	}
	if h := berth.RequestIDHandler(log.Handler()); h != log.Handler() {
		t.Error("wrapping twice adds a second layer")
	}
}
