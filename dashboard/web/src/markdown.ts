// Markdown preview: marked renders, DOMPurify sanitizes. Loaded only when a
// Markdown file is previewed (a separate chunk). Workspace files are
// untrusted: the HTML is sanitized (no script, no event handlers, no
// javascript: URLs), and the page's CSP would refuse inline script anyway.
import DOMPurify from "dompurify";
import { marked } from "marked";

export function renderMarkdown(src: string): string {
  const html = marked.parse(src, { async: false, gfm: true }) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input"] });
}
