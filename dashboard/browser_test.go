package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// Browser is one headless Chromium tab on a test server. It records every
// console error, uncaught exception and error log entry; every helper fails
// the test on them. When the test fails, a screenshot of the tab is saved to
// the artifacts directory.
type Browser struct {
	t testing.TB
	// tab lives until the test's cleanups (a failure screenshot needs it);
	// each action runs on it with the test's deadline.
	tab      context.Context
	deadline time.Time
	URL      string
	// Downloads is where the browser saves downloads.
	Downloads string

	mu   sync.Mutex
	errs []string
}

// chromiumPath is the browser the tests drive.
func chromiumPath(t testing.TB) string {
	for _, p := range []string{os.Getenv("BERTH_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but no Chromium found (install Debian's chromium or set BERTH_TEST_CHROMIUM)")
	}
	t.Skip("no Chromium: set BERTH_TEST_CHROMIUM")
	return ""
}

// NewBrowser starts a headless Chromium for the test at width x height.
func NewBrowser(t testing.TB, url string, width, height int) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(width, height),
		chromedp.NoSandbox, // tests may run as root (CI containers)
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Getenv("BERTH_TEST_CHROMIUM_LOG") != "" {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr))
	}
	// The browser outlives the test's context, so that a failed test can
	// still take its screenshot; the test's deadline bounds every action.
	deadline, ok := testctx.Deadline(t)
	if !ok {
		deadline = time.Now().Add(10 * time.Minute)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, tab: ctx, deadline: deadline, URL: url, Downloads: t.TempDir()}
	stop := func() {
		cancel()
		cancelAlloc()
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:      browser.SetDownloadBehaviorBehaviorAllow,
			DownloadPath:  b.Downloads,
			EventsEnabled: new(true),
		})
		return err
	})); err != nil {
		stop()
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	must(t, chromedp.Listen(ctx, func(ev any) {
		// A page that opens an alert or confirm is running script we did not
		// write (or a dialog we forgot): either is a failure.
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.mu.Lock()
			b.errs = append(b.errs, fmt.Sprintf("javascript %s dialog opened: %q", d.Type, d.Message))
			b.mu.Unlock()
		}
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.note(m)
		}
	}()
	t.Cleanup(func() {
		// Console errors that arrived after the test's last action count too.
		if errs := b.Errors(); len(errs) > 0 && !t.Failed() {
			t.Errorf("browser console errors:\n  %s", strings.Join(errs, "\n  "))
		}
		if t.Failed() {
			b.screenshot()
		}
		stop()
		<-done
	})
	return b
}

func (b *Browser) note(m chromedp.ConsoleMessage) {
	switch {
	case m.IsException():
	case m.Type != chromedp.ConsoleError:
		return
	case m.Source == "network" && strings.Contains(m.URL, "/v1/"):
		// The browser logs every API answer >= 400 as a network error. The
		// app handles those and shows them as notices (tests check that);
		// a failed load of the app's own files stays an error.
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, strings.TrimSpace(fmt.Sprintf("%s [%s %s]", m.String(), m.Source, m.URL)))
}

// Errors returns the console errors seen so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// Check fails the test on any console error seen so far.
func (b *Browser) Check() {
	b.t.Helper()
	if errs := b.Errors(); len(errs) > 0 {
		b.t.Fatalf("browser console errors:\n  %s", strings.Join(errs, "\n  "))
	}
}

// Run runs chromedp actions, then checks the console.
func (b *Browser) Run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.ctx()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (console errors: %v)", err, b.Errors())
	}
	b.Check()
}

// stepTimeout bounds one browser step (an action or a wait). A step that
// cannot succeed (a click that missed, a condition that never comes) fails
// the test after this long, with the page's text, instead of holding the
// package until its deadline and failing every test after it. It is long
// enough for a sandbox create on a loaded machine.
const stepTimeout = 4 * time.Minute

// stepDeadline is when a step starting now must end: stepTimeout from now,
// or the test's deadline if that comes first.
func (b *Browser) stepDeadline() time.Time {
	if d := time.Now().Add(stepTimeout); d.Before(b.deadline) {
		return d
	}
	return b.deadline
}

// ctx is the tab's context with the step's deadline.
func (b *Browser) ctx() (context.Context, context.CancelFunc) {
	return context.WithDeadline(b.tab, b.stepDeadline())
}

// Get runs an action that returns a value, then checks the console.
func Get[T any](b *Browser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := b.ctx()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v (console errors: %v)", err, b.Errors())
	}
	b.Check()
	return v
}

// Open navigates to a dashboard path and waits for sel to be visible.
func (b *Browser) Open(path, sel string) {
	b.t.Helper()
	b.Navigate(b.URL + path)
	b.Run(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Navigate loads url in the tab. Chromium aborts a load with
// ERR_NETWORK_CHANGED when a network interface appears or goes (Docker
// making a sandbox's veth on this or another test's behalf): that load is
// tried again, a bounded number of times.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	for i := 0; ; i++ {
		ctx, cancel := b.ctx()
		err := chromedp.Do(ctx, chromedp.Navigate(url))
		cancel()
		if err == nil {
			b.Check()
			return
		}
		b.t.Logf("load %s: %v", url, err)
		if i >= 4 || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			b.t.Fatalf("browser: load %s: %v (console errors: %v)", url, err, b.Errors())
		}
	}
}

// Text returns the text of the first visible element matching sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return Get(b, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

// WaitText waits until the element matching sel contains want.
func (b *Browser) WaitText(sel, want string) {
	b.t.Helper()
	b.WaitJS(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.textContent.includes(%s); })()`, jsString(sel), jsString(want)))
}

// WaitJS waits until the expression is true, polling in the page (a DOM
// condition, not a sleep), for one step at most.
func (b *Browser) WaitJS(expr string) {
	b.t.Helper()
	b.Until(expr)
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	return Get(b, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// SignIn signs in with key through the sign-in page and waits for the
// signed-in shell.
func (b *Browser) SignIn(key string) {
	b.t.Helper()
	b.Open("/", "#apikey")
	b.Run(
		chromedp.SendKeys(chromedp.CSS("#apikey"), key),
		chromedp.Click(chromedp.CSS(`form.signin button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#signout`)),
	)
}

// Cookie returns the value of the named cookie of the dashboard's origin
// (HttpOnly included: read through the DevTools protocol).
func (b *Browser) Cookie(name string) string {
	b.t.Helper()
	res := Get(b, func(ctx context.Context, t *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.URL}})
	})
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// artifactsDir is where failure screenshots go: $BERTH_TEST_ARTIFACTS, or
// test-artifacts/ at the repository root.
func artifactsDir() string {
	if d := os.Getenv("BERTH_TEST_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join("..", "test-artifacts")
}

func (b *Browser) screenshot() {
	// The test's context may be over: take the picture on a fresh deadline.
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("failure screenshot: %v", err)
		return
	}
	dir := artifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("failure screenshot: %v", err)
		return
	}
	p := filepath.Join(dir, unsafeName.ReplaceAllString(b.t.Name(), "_")+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Logf("failure screenshot: %v", err)
		return
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		abs = p
	}
	b.t.Logf("failure screenshot: %s", abs)
}

// start returns a test server and a browser on it.
func start(t *testing.T) (*servertest.Env, *Browser) {
	t.Helper()
	env := servertest.Start(t, "")
	return env, NewBrowser(t, env.URL, 1280, 800)
}

// DropFiles drops files and folders from the local disk onto the element
// matching sel, as a drag from the desktop would (Input.dispatchDragEvent).
func (b *Browser) DropFiles(sel string, paths []string) {
	b.t.Helper()
	box := Get(b, chromedp.Dimensions(chromedp.CSS(sel), chromedp.NodeVisible))
	q := box.Content
	x, y := (q[0]+q[4])/2, (q[1]+q[5])/2
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: paths, DragOperationsMask: 1}
	b.Run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
			if _, err := cdp.Call(ctx, t, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: x, Y: y, Data: data}); err != nil {
				return err
			}
		}
		return nil
	}))
}
