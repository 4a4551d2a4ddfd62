// The route table and the main navigation. To add a page: write
// pages/<name>.tsx exporting a component, add its routes here (most specific
// first) and, for a top-level page, a nav entry. See ../PAGES.md.
import type { JSX } from "preact";
import { lazy, Suspense } from "preact/compat";
import { Workspaces } from "./pages/workspaces";

// The file browser, sandboxes, agents and organization pages are
// code-split: the first page does not load them.
const Files = lazy(() => import("./pages/files").then((m) => ({ default: m.Files })));
const Sandboxes = lazy(() => import("./pages/sandboxes").then((m) => ({ default: m.Sandboxes })));
const SandboxDetail = lazy(() => import("./pages/sandbox").then((m) => ({ default: m.SandboxDetail })));
const Agents = lazy(() => import("./pages/agents").then((m) => ({ default: m.Agents })));
const AgentDetail = lazy(() => import("./pages/agent").then((m) => ({ default: m.AgentDetail })));
const ThreadDetail = lazy(() => import("./pages/agent").then((m) => ({ default: m.ThreadDetail })));
const Organization = lazy(() => import("./pages/organization").then((m) => ({ default: m.Organization })));

export interface Route {
  pattern: string;
  render: (p: Record<string, string>) => JSX.Element;
}

const wait = (el: JSX.Element) => <Suspense fallback={<p aria-busy="true">Loading…</p>}>{el}</Suspense>;

export const routes: Route[] = [
  { pattern: "/workspaces", render: () => <Workspaces /> },
  { pattern: "/workspaces/:id/files/*", render: (p) => wait(<Files ws={p.id} path={"/" + p["*"]} />) },
  { pattern: "/workspaces/:id/files", render: (p) => wait(<Files ws={p.id} path="/" />) },
  { pattern: "/sandboxes", render: () => wait(<Sandboxes />) },
  { pattern: "/sandboxes/:id", render: (p) => wait(<SandboxDetail key={p.id} id={p.id} />) },
  { pattern: "/agents", render: () => wait(<Agents />) },
  { pattern: "/agents/:slug", render: (p) => wait(<AgentDetail key={p.slug} slug={p.slug} />) },
  { pattern: "/threads/:id", render: (p) => wait(<ThreadDetail key={p.id} id={p.id} />) },
  { pattern: "/organization", render: () => wait(<Organization />) },
];

export const nav: { href: string; label: string; admin?: boolean }[] = [
  { href: "/workspaces", label: "Workspaces" },
  { href: "/sandboxes", label: "Sandboxes" },
  { href: "/agents", label: "Agents" },
  { href: "/organization", label: "Organization", admin: true },
];
