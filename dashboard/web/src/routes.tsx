// The route table and the main navigation. To add a page: write
// pages/<name>.tsx exporting a component, add its routes here (most specific
// first) and, for a top-level page, a nav entry. See ../PAGES.md.
import type { JSX } from "preact";
import { lazy, Suspense } from "preact/compat";
import { Workspaces } from "./pages/workspaces";
import { Placeholder } from "./pages/placeholder";

// The file browser is code-split: the first page does not load it.
const Files = lazy(() => import("./pages/files").then((m) => ({ default: m.Files })));

export interface Route {
  pattern: string;
  render: (p: Record<string, string>) => JSX.Element;
}

const wait = (el: JSX.Element) => <Suspense fallback={<p aria-busy="true">Loading…</p>}>{el}</Suspense>;

export const routes: Route[] = [
  { pattern: "/workspaces", render: () => <Workspaces /> },
  { pattern: "/workspaces/:id/files/*", render: (p) => wait(<Files ws={p.id} path={"/" + p["*"]} />) },
  { pattern: "/workspaces/:id/files", render: (p) => wait(<Files ws={p.id} path="/" />) },
  { pattern: "/sandboxes", render: () => <Placeholder title="Sandboxes" /> },
  { pattern: "/agents", render: () => <Placeholder title="Agents" /> },
  { pattern: "/organization", render: () => <Placeholder title="Organization" /> },
];

export const nav: { href: string; label: string; admin?: boolean }[] = [
  { href: "/workspaces", label: "Workspaces" },
  { href: "/sandboxes", label: "Sandboxes" },
  { href: "/agents", label: "Agents" },
  { href: "/organization", label: "Organization", admin: true },
];
