package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/berth-dev/berth"
)

// Deadlines are the per-request I/O limits on a connection that net/http's
// whole-request ReadTimeout and WriteTimeout cannot express without cutting
// off long uploads, downloads, SSE and exec streams: both are enforced as a
// minimum of progress instead of a maximum of time.
type Deadlines struct {
	// BodyMinRate (bytes/s) and BodyWindow: a request body must deliver at
	// least BodyMinRate×BodyWindow bytes in every BodyWindow, or be complete
	// within it; otherwise reading it fails and the connection is closed.
	// Zero BodyWindow disables the limit.
	BodyMinRate int64
	BodyWindow  time.Duration
	// WriteStall: a response write that cannot hand anything to the client
	// for this long fails (a client that stopped reading). Every write that
	// goes through starts a new period, so a stream that keeps making
	// progress, or waits between events, lives as long as it needs. Zero
	// disables the limit.
	WriteStall time.Duration
}

// Wrap enforces d on every request h serves.
func (d Deadlines) Wrap(h http.Handler) http.Handler {
	if d.BodyWindow <= 0 && d.WriteStall <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if d.WriteStall > 0 {
			dw := &deadlineWriter{ResponseWriter: w, rc: rc, stall: d.WriteStall}
			// A fresh period for this request: the connection's deadline
			// may be left over from the previous request on it.
			dw.extend()
			// And one for the final flush, however long the handler ran
			// since its last write.
			defer dw.extend()
			w = dw
		}
		if d.BodyWindow > 0 && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			need := d.BodyMinRate * int64(d.BodyWindow) / int64(time.Second)
			br := &rateReader{ReadCloser: r.Body, rc: rc, window: d.BodyWindow, rate: d.BodyMinRate, need: max(need, 1)}
			if br.extend() {
				r.Body = br
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineWriter moves the connection's write deadline forward before each
// write, so that only a write stalled for the whole period fails.
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (d *deadlineWriter) extend() {
	// ErrNotSupported: a writer that is not a connection (tests' recorders).
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.stall))
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.extend()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(b)
}

func (d *deadlineWriter) Flush() {
	// http.Flusher has no error to return: the next write reports it.
	_ = d.FlushError()
}

// FlushError lets ResponseController.Flush callers see flush errors.
func (d *deadlineWriter) FlushError() error {
	d.extend()
	return d.rc.Flush()
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// rateReader holds a request body to a minimum transfer rate with the
// connection's read deadline: each time need bytes have arrived, the
// deadline moves one window forward. Time the handler spends between reads
// (writing to disk, waiting for a lock) is the server's, not the client's:
// it moves the deadline forward too. At the end of the body the deadline is
// cleared, since net/http then reads the connection in the background to
// notice a client going away, and a deadline there would cancel the request
// of a response still streaming.
type rateReader struct {
	io.ReadCloser
	rc       *http.ResponseController
	window   time.Duration
	rate     int64
	need     int64
	got      int64
	deadline time.Time
	returned time.Time // when the last Read returned
	done     bool
}

// extend moves the deadline one window ahead; false when the connection
// has no deadlines (tests' recorders).
func (b *rateReader) extend() bool {
	b.returned = time.Now()
	b.deadline = b.returned.Add(b.window)
	return b.rc.SetReadDeadline(b.deadline) == nil
}

func (b *rateReader) Read(p []byte) (int, error) {
	if !b.done {
		if busy := time.Since(b.returned); busy > b.window/16 {
			b.deadline = b.deadline.Add(busy)
			_ = b.rc.SetReadDeadline(b.deadline) // supported: extend succeeded
		}
	}
	n, err := b.ReadCloser.Read(p)
	if b.done {
		return n, err
	}
	b.returned = time.Now()
	b.got += int64(n)
	if b.got >= b.need {
		b.got = 0
		b.extend()
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.done = true
		if derr := b.rc.SetReadDeadline(time.Time{}); derr != nil {
			return n, errors.Join(err, derr)
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.done = true
		return n, berth.Wrap(berth.Invalid, err, fmt.Sprintf(
			"the request body arrived slower than the server's minimum of %d bytes/s over %s", b.rate, b.window))
	}
	return n, err
}
