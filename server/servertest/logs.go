package servertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/api/openapitest"
)

// Bounds of the captured server log: a test that logs more keeps the most
// recent lines, and a huge line is cut.
const (
	maxLogLines   = 20000
	maxLogLineLen = 4 << 10
	// maxNearLines bounds the lines without a request id printed next to
	// a failed request (background work: reconciler, async create, runs).
	maxNearLines = 50
	// nearSlack widens the window of a failed request for the lines
	// without a request id: the log line of the failure may be written by
	// work the request started just before or finished just after.
	nearSlack = time.Second
	// maxWarnLines bounds the warnings and errors printed for a failed
	// test: a failure seen through a 4xx, a status or the engine leaves no
	// 5xx to follow, but background work that went wrong says so at
	// these levels.
	maxWarnLines = 100
	// maxMismatches bounds the OpenAPI mismatches reported for a test.
	maxMismatches = 50
)

// logLine is one captured log record, formatted as text.
type logLine struct {
	at    time.Time
	level slog.Level
	id    string // the requestId attribute, "" for lines outside requests
	text  string
}

// failedCall is an answer with a 5xx status seen by one of the env's clients.
type failedCall struct {
	method, path string
	status       int
	id           string // X-Request-Id of the answer
	start, end   time.Time
}

// logBook holds the server's recent log lines and the 5xx answers its
// clients received, so that a failing test can print what the server said
// about each of them.
type logBook struct {
	mu      sync.Mutex
	buf     bytes.Buffer // the text handler's output for the record at hand
	lines   []logLine    // a ring of at most maxLogLines
	next    int          // where the next line goes once the ring is full
	dropped int
	failed  []failedCall

	mismatches []string // answers the OpenAPI document does not describe
	nmismatch  int
}

func (b *logBook) add(l logLine) {
	if len(l.text) > maxLogLineLen {
		l.text = l.text[:maxLogLineLen] + "…(cut)"
	}
	if len(b.lines) < maxLogLines {
		b.lines = append(b.lines, l)
		return
	}
	b.lines[b.next] = l
	b.next = (b.next + 1) % maxLogLines
	b.dropped++
}

// ordered returns the kept lines, oldest first.
func (b *logBook) ordered() []logLine {
	out := make([]logLine, 0, len(b.lines))
	out = append(out, b.lines[b.next:]...)
	return append(out, b.lines[:b.next]...)
}

// recordMismatch notes an answer that the OpenAPI document does not
// describe (at most maxMismatches are kept).
func (b *logBook) recordMismatch(m string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.mismatches) < maxMismatches {
		b.mismatches = append(b.mismatches, m)
	}
	b.nmismatch++
}

// checkMismatches fails t for every answer the document did not describe.
func checkMismatches(t testing.TB, b *logBook) {
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, m := range b.mismatches {
			t.Errorf("the answer does not match the OpenAPI document: %s", m)
		}
		if b.nmismatch > len(b.mismatches) {
			t.Errorf("(and %d more answers that do not match the OpenAPI document)", b.nmismatch-len(b.mismatches))
		}
	})
}

func (b *logBook) recordFailure(f failedCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failed = append(b.failed, f)
}

// report lists the server's warnings and errors, then describes every 5xx
// answer with the server's log lines for its request id, and the lines
// without a request id logged while it ran.
func (b *logBook) report() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.ordered()
	var s strings.Builder
	var warns []string
	for _, l := range lines {
		if l.level >= slog.LevelWarn {
			warns = append(warns, l.text)
		}
	}
	if len(warns) > 0 {
		fmt.Fprintf(&s, "server warnings and errors (%d):\n", len(warns))
		if len(warns) > maxWarnLines {
			fmt.Fprintf(&s, "    (the %d oldest left out)\n", len(warns)-maxWarnLines)
			warns = warns[len(warns)-maxWarnLines:]
		}
		for _, w := range warns {
			fmt.Fprintf(&s, "    %s\n", w)
		}
	}
	for _, f := range b.failed {
		fmt.Fprintf(&s, "server answered %d to %s %s (request %s); its log lines:\n", f.status, f.method, f.path, f.id)
		found, near := 0, 0
		for _, l := range lines {
			switch {
			case f.id != "" && l.id == f.id:
				found++
				fmt.Fprintf(&s, "    %s\n", l.text)
			case l.id == "" && !l.at.Before(f.start.Add(-nearSlack)) && !l.at.After(f.end.Add(nearSlack)):
				if near < maxNearLines {
					fmt.Fprintf(&s, "    (no request id) %s\n", l.text)
				}
				near++
			}
		}
		if found == 0 {
			s.WriteString("    (no log line carries this request id)\n")
		}
		if near > maxNearLines {
			fmt.Fprintf(&s, "    (%d more lines without a request id)\n", near-maxNearLines)
		}
	}
	if b.dropped > 0 && s.Len() > 0 {
		fmt.Fprintf(&s, "(the %d oldest server log lines were dropped: only the last %d are kept)\n", b.dropped, maxLogLines)
	}
	return s.String()
}

// handler is the server's slog handler in tests: it formats each record as
// text into the book, keeping its request id.
type handler struct {
	book  *logBook
	inner slog.Handler // a TextHandler writing into book.buf
	id    string       // a requestId set through WithAttrs
}

func newHandler(b *logBook) *handler {
	return &handler{book: b, inner: slog.NewTextHandler(&b.buf, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	id := h.id
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == berth.LogKeyRequestID {
			id = a.Value.String()
			return false
		}
		return true
	})
	if id == "" {
		id = berth.RequestIDFrom(ctx)
	}
	h.book.mu.Lock()
	defer h.book.mu.Unlock()
	h.book.buf.Reset()
	err := h.inner.Handle(ctx, r)
	at := r.Time
	if at.IsZero() {
		at = time.Now()
	}
	h.book.add(logLine{at: at, level: r.Level, id: id, text: strings.TrimRight(h.book.buf.String(), "\n")})
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		if a.Key == berth.LogKeyRequestID {
			c.id = a.Value.String()
		}
	}
	c.inner = h.inner.WithAttrs(as)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// transport notes every 5xx answer in the book, and checks every answer
// against the server's OpenAPI document: a mismatch fails the test.
type transport struct {
	base  http.RoundTripper
	book  *logBook
	check *openapitest.Validator
}

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.StatusCode >= 500 {
		t.book.recordFailure(failedCall{
			method: req.Method, path: req.URL.RequestURI(), status: resp.StatusCode,
			id: resp.Header.Get("X-Request-Id"), start: start, end: time.Now(),
		})
	}
	if t.check != nil {
		t.validate(req, resp)
	}
	return resp, nil
}

// validate checks resp against the document. A JSON body is read whole
// (and handed on to the caller as read); the events of a stream are
// checked as the caller reads them; of a binary body (a file, an archive)
// only the status and content type are.
func (t transport) validate(req *http.Request, resp *http.Response) {
	plan, err := t.check.Check(req, resp.StatusCode, resp.Header)
	switch {
	case err != nil:
		t.book.recordMismatch(err.Error())
	case plan == nil:
	case plan.Events != nil:
		resp.Body = openapitest.Events(resp.Body, plan.Events, func(err error) { t.book.recordMismatch(err.Error()) })
	case plan.JSON != nil:
		b, err := openapitest.ReadBody(resp)
		if err != nil {
			return // the connection failed: the caller sees the error
		}
		if err := plan.JSON(b); err != nil {
			t.book.recordMismatch(err.Error())
		}
	}
}

// printOnFailure registers a cleanup that, if the test failed, prints the
// server's warnings and errors and the log lines of every request that got
// a 5xx answer. Registered
// before the server's shutdown, it runs after it, so it sees every line.
func printOnFailure(t testing.TB, b *logBook) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if r := b.report(); r != "" {
			t.Log(r)
		}
	})
}
