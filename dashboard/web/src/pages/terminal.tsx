// The sandbox page's terminal: a shell on a pseudo-terminal in the sandbox
// over GET /v1/sandboxes/{id}/pty (a WebSocket signed in by the session
// cookie; the server checks its Origin), drawn by xterm.js. Loaded lazily
// with the terminal library when the Terminal tab is opened.
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "preact/hooks";
import type { Sandbox } from "../types";

/**
 * xterm.js writes its computed styles into <style> elements, which the
 * dashboard's Content-Security-Policy (style-src 'self') refuses. A style
 * element made on this page is an inert stand-in whose text is applied as a
 * constructed stylesheet instead (CSSOM, which the policy allows); the page
 * itself never makes style elements.
 */
function constructedStyles() {
  const d = document as Document & { berthStyles?: boolean };
  if (d.berthStyles) return;
  d.berthStyles = true;
  const create = d.createElement.bind(d) as (tag: string, opts?: ElementCreationOptions) => HTMLElement;
  d.createElement = ((tag: string, opts?: ElementCreationOptions) => {
    if (tag.toLowerCase() !== "style") return create(tag, opts);
    // Even an empty <style> element is a violation: an inert <template>
    // stands in for it in the DOM.
    const el = create("template");
    const sheet = new CSSStyleSheet();
    d.adoptedStyleSheets = [...d.adoptedStyleSheets, sheet];
    let text = "";
    Object.defineProperty(el, "textContent", {
      get: () => text,
      set: (v: string | null) => {
        text = v ?? "";
        sheet.replaceSync(text);
      },
    });
    const remove = el.remove.bind(el);
    el.remove = () => {
      d.adoptedStyleSheets = d.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return el;
  }) as typeof d.createElement;
}

type State = { kind: "connecting" } | { kind: "open" } | { kind: "exit"; code: number } | { kind: "error"; message: string };

export function TerminalPane({ sb }: { sb: Sandbox }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: "connecting" });
  const [session, setSession] = useState(0);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    constructedStyles();
    const rows = 24;
    const cols = 100;
    const term = new Terminal({ rows, cols, convertEol: false, cursorBlink: true, fontSize: 13 });
    term.open(el);
    term.focus();
    setState({ kind: "connecting" });
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/v1/sandboxes/${encodeURIComponent(sb.id)}/pty?rows=${rows}&cols=${cols}`);
    ws.binaryType = "arraybuffer";
    const enc = new TextEncoder();
    let ended = false;
    ws.onopen = () => setState({ kind: "open" });
    ws.onmessage = (ev) => {
      if (ev.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(ev.data));
        return;
      }
      try {
        const m = JSON.parse(ev.data as string);
        if (m.type === "exit") {
          ended = true;
          setState({ kind: "exit", code: m.exitCode });
        } else if (m.type === "error") {
          ended = true;
          setState({ kind: "error", message: m.error?.message || "the terminal ended" });
        }
      } catch {
        // not a control message: ignored
      }
    };
    ws.onclose = () => {
      if (!ended) setState({ kind: "error", message: "the connection closed (is the sandbox running?)" });
    };
    const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    const resize = term.onResize(
      (s) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: "resize", rows: s.rows, cols: s.cols })),
    );
    return () => {
      ended = true;
      input.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [sb.id, session]);

  return (
    <section class="terminal card" aria-labelledby="terminal-h">
      <div class="row">
        <h2 id="terminal-h">Terminal</h2>
        <span class="spacer" />
        <button type="button" id="term-restart" onClick={() => setSession((n) => n + 1)} disabled={state.kind === "connecting" || state.kind === "open"}>
          New session
        </button>
      </div>
      <div class="terminal-screen" id="terminal" ref={host} aria-label="Terminal" />
      <p class="exec-status" id="term-status" role="status">
        {state.kind === "connecting" ? (
          <span aria-busy="true">Connecting…</span>
        ) : state.kind === "open" ? (
          "Connected: /bin/sh in the sandbox. Closing this tab ends the shell."
        ) : state.kind === "exit" ? (
          <>
            Exited with code{" "}
            <strong id="term-exit" class={state.code === 0 ? "ok" : "bad"}>
              {state.code}
            </strong>
          </>
        ) : (
          <span class="error">{state.message}</span>
        )}
      </p>
    </section>
  );
}
