// Markdown preview: marked renders, DOMPurify sanitizes. Loaded only when a
// Markdown file is previewed (a separate chunk). Workspace files are
// untrusted: raw HTML inside the Markdown is shown as text, never parsed
// (not even by the sanitizer: a parsed <img onerror> makes the browser log a
// CSP violation), and DOMPurify then removes anything active that Markdown
// itself can make (javascript: links). The page's CSP refuses inline script
// anyway.
import DOMPurify from "dompurify";
import { Marked } from "marked";

const escape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const md = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html({ text }) {
      return escape(text);
    },
  },
});

export function renderMarkdown(src: string): string {
  const html = md.parse(src) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input"] });
}
