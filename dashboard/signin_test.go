package dashboard_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/berth-dev/berth/internal/testctx"
)

// TestSignInAndOut: the admin key signs in through the form, the key is not
// kept anywhere the page can read, and signing out kills the session on the
// server (the old cookie then gets 401).
func TestSignInAndOut(t *testing.T) {
	env, b := start(t)
	b.SignIn(env.AdminKey)
	b.WaitText("header.top nav", "Workspaces")
	b.WaitText("header.top nav", "Organization")

	// Neither storage nor the URL holds the key.
	leaked := Eval[bool](b, `(() => { const k = `+jsString(env.AdminKey)+`;
		const all = JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage)) + location.href + document.cookie;
		return all.includes(k); })()`)
	if leaked {
		t.Fatal("the API key is readable in storage, the URL or document.cookie")
	}
	cookie := b.Cookie("berth_session")
	if cookie == "" {
		t.Fatal("no berth_session cookie after sign-in")
	}
	if st := getWithCookie(t, env.URL+"/v1/session", cookie); st != http.StatusOK {
		t.Fatalf("GET /v1/session with the cookie: %d, want 200", st)
	}

	// A reload keeps the session (GET /v1/session gives the CSRF token back).
	b.Open("/workspaces", "#signout")

	b.Run(chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#apikey")))
	if st := getWithCookie(t, env.URL+"/v1/session", cookie); st != http.StatusUnauthorized {
		t.Fatalf("GET /v1/session with the signed-out cookie: %d, want 401", st)
	}
	if st := getWithCookie(t, env.URL+"/v1/workspaces", cookie); st != http.StatusUnauthorized {
		t.Fatalf("GET /v1/workspaces with the signed-out cookie: %d, want 401", st)
	}
}

// TestSignInWrongKey shows the API's error with its request id.
func TestSignInWrongKey(t *testing.T) {
	_, b := start(t)
	b.Open("/", "#apikey")
	b.Run(
		chromedp.SendKeys(chromedp.CSS("#apikey"), "brt_not_a_key"),
		chromedp.Click(chromedp.CSS(`form.signin button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signin .error-text .request-id`)),
	)
	if rid := b.Text(`form.signin .request-id`); rid == "" {
		t.Fatal("the sign-in error shows no request id")
	}
}

func getWithCookie(t *testing.T, url, cookie string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testctx.Context(t), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "berth_session", Value: cookie})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Body.Close(); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode
}
