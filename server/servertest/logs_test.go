package servertest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/server/servertest"
)

// fakeT is a test that fails and reports into a buffer, so that the
// failure report of servertest can be read by the real test. Everything
// else (TempDir, Helper, Context, Deadline) is the real test's.
type fakeT struct {
	*testing.T
	mu       sync.Mutex
	failed   bool
	out      strings.Builder
	cleanups []func()
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	fmt.Fprintf(&f.out, format+"\n", args...)
}

func (f *fakeT) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Fatalf(format string, args ...any) {
	f.T.Fatalf("the fake test called Fatalf: "+format, args...)
}

func (f *fakeT) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintln(&f.out, args...)
}

func (f *fakeT) Logf(format string, args ...any) { f.Log(fmt.Sprintf(format, args...)) }

// end runs the cleanups as the testing package does, last first.
func (f *fakeT) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func (f *fakeT) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// A test that got a 500 and failed prints the server's log lines of that
// request, found by its request id.
func TestFailureReportHasServerLogOfThe5xx(t *testing.T) {
	ft := &fakeT{T: t}
	env := servertest.Start(ft, "")
	ctx := context.Background()
	if _, err := env.Admin.Me(ctx); err != nil {
		t.Fatal(err)
	}
	// The database goes away under the running server: the next request
	// fails inside (500), and the server logs why.
	if err := env.DB.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := env.Admin.Me(ctx)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 500 || ae.RequestID == "" {
		ft.end()
		t.Fatalf("with the database closed: %v, want a 500 with a request id", err)
	}
	ft.Errorf("unexpected: %v", err)
	ft.end()
	out := ft.output()
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "request failed") && strings.Contains(l, "requestId="+ae.RequestID) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("the failure output lacks the server's log line of request %s:\n%s", ae.RequestID, out)
	}
	if !strings.Contains(line, "database is closed") {
		t.Errorf("the log line does not say why: %s", line)
	}
	if !strings.Contains(out, "server answered 500 to GET /v1/me (request "+ae.RequestID+")") {
		t.Errorf("the failure output does not name the request:\n%s", out)
	}
}

// A test that passes prints nothing of the server's log, 5xx or not (some
// tests expect a 503).
func TestNoReportWhenTheTestPasses(t *testing.T) {
	ft := &fakeT{T: t}
	env := servertest.Start(ft, "")
	if err := env.DB.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Admin.Me(context.Background()); err == nil {
		t.Error("with the database closed: no error")
	}
	ft.end()
	if out := ft.output(); strings.Contains(out, "server answered") {
		t.Errorf("a passing test printed a report:\n%s", out)
	}
}

// A test that failed without any 5xx (a wrong status, a container left
// running) still prints what went wrong in the background: the server's
// warnings and errors, and not its routine lines.
func TestFailureReportHasServerWarnings(t *testing.T) {
	ft := &fakeT{T: t}
	env := servertest.Start(ft, "")
	env.Log.Info("routine line")
	env.Log.Warn("background work went wrong", "sandbox", "sbx_1")
	env.Log.Error("could not cut a sandbox off", "err", "engine said no")
	ft.Errorf("the sandbox is not stopped")
	ft.end()
	out := ft.output()
	for _, want := range []string{"server warnings and errors (2):", "background work went wrong", "could not cut a sandbox off", "engine said no"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "routine line") {
		t.Errorf("the failure output has an info line:\n%s", out)
	}
}

// An answer that the OpenAPI document does not describe fails the test
// that received it, naming the route, the status and what is wrong; so do
// a stream's undocumented events. (A stand-in server answers here: the
// real one answers as documented.)
func TestAnswerNotInTheOpenAPIDocumentFailsTheTest(t *testing.T) {
	ft := &fakeT{T: t}
	env := servertest.Start(ft, "")
	if _, err := env.Admin.Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ft.Failed() {
		ft.end()
		t.Fatalf("a documented answer failed the test:\n%s", ft.output())
	}
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/runs/run_1/events" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "event: stdout\ndata: hi\n\nevent: surprise\ndata: {}\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"user":"admin"},"meta":{"requestId":"req_1"}}`)
	}))
	defer wrong.Close()
	for _, path := range []string{"/v1/me", "/v1/runs/run_1/events"} {
		resp, err := env.HTTP().Get(wrong.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || len(b) == 0 {
			t.Fatalf("the caller did not get the body of %s: %v", path, err)
		}
	}
	ft.end()
	out := ft.output()
	for _, want := range []string{
		"does not match the OpenAPI document: GET /v1/me (/v1/me) answered 200",
		"at /data/user: value must be an object",
		`GET /v1/runs/{runId}/events (/v1/runs/run_1/events) answered 200: event "surprise" is not documented`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure output lacks %q:\n%s", want, out)
		}
	}
	if !ft.Failed() {
		t.Error("the test did not fail")
	}
}
