// History-API routing: the server answers index.html for every dashboard
// path, so deep links and reloads work.
import type { AnchorHTMLAttributes, ComponentChildren } from "preact";
import { store, useStore } from "./store";

const path = store(location.pathname + location.search);

addEventListener("popstate", () => path.set(location.pathname + location.search));

/** navigate goes to a dashboard path without a reload. */
export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  path.set(location.pathname + location.search);
  scrollTo(0, 0);
}

/** useRoute returns the current path (without the query) and query. */
export function useRoute(): { path: string; query: URLSearchParams } {
  const p = useStore(path);
  const u = new URL(p, location.origin);
  return { path: u.pathname, query: u.searchParams };
}

/** Link is an <a> that navigates in place on a plain click. */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren }) {
  const { href, ...rest } = props;
  return (
    <a
      {...rest}
      href={href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    />
  );
}

/** match matches "/a/:id/*" against a path; "*" takes the rest. */
export function match(pattern: string, p: string): Record<string, string> | null {
  const ps = pattern.split("/");
  const xs = p.split("/");
  const out: Record<string, string> = {};
  for (let i = 0; i < ps.length; i++) {
    if (ps[i] === "*") {
      out["*"] = xs.slice(i).map(decodeURIComponent).join("/");
      return out;
    }
    if (i >= xs.length) return null;
    if (ps[i].startsWith(":")) out[ps[i].slice(1)] = decodeURIComponent(xs[i]);
    else if (ps[i] !== xs[i]) return null;
  }
  return xs.length === ps.length ? out : null;
}
