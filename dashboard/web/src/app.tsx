// The app shell: sign-in gate, header with navigation, the page for the
// current route, and the notices.
import { useEffect } from "preact/hooks";
import { Link, match, navigate, useRoute } from "./router";
import { isAdmin, restore, session, signOut } from "./session";
import { useStore } from "./store";
import { Notices, showError } from "./ui";
import { routes, nav } from "./routes";
import { SignIn } from "./pages/signin";

export function App() {
  const s = useStore(session);
  const { path } = useRoute();
  useEffect(() => {
    restore().catch(showError);
  }, []);

  if (s === undefined) {
    return (
      <main class="center">
        <p aria-busy="true">Loading…</p>
        <Notices />
      </main>
    );
  }
  if (s === null) {
    return (
      <>
        <SignIn />
        <Notices />
      </>
    );
  }
  if (path === "/" || path === "/signin") {
    navigate("/workspaces", true);
    return null;
  }
  let page = null;
  for (const r of routes) {
    const params = match(r.pattern, path);
    if (params) {
      page = r.render(params);
      break;
    }
  }
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/workspaces" class="brand">
          berth
        </Link>
        <nav aria-label="Main">
          <ul>
            {nav
              .filter((n) => !n.admin || isAdmin(s))
              .map((n) => (
                <li key={n.href}>
                  <Link href={n.href} aria-current={path.startsWith(n.href) ? "page" : undefined}>
                    {n.label}
                  </Link>
                </li>
              ))}
          </ul>
        </nav>
        <div class="who">
          <span class="who-name" title={s.org.name}>
            {s.user.name} · {s.role}
          </span>
          <button type="button" id="signout" onClick={() => signOut().catch(showError)}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page || (
          <section>
            <h1>Not found</h1>
            <p>
              No page at <code>{path}</code>. <Link href="/workspaces">Go to workspaces</Link>.
            </p>
          </section>
        )}
      </main>
      <Notices />
    </>
  );
}
