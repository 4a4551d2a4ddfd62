// Shared UI pieces: error notices with request ids, dialogs, progress bars,
// formatting.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { ApiError } from "./api";
import { store, useStore } from "./store";

export interface Notice {
  id: number;
  kind: "error" | "info";
  message: string;
  code?: string;
  requestId?: string;
}

const notices = store<Notice[]>([]);
let seq = 0;

/** showError shows any error; an ApiError with its code and request id. */
export function showError(e: unknown) {
  if (e instanceof Error && e.name === "AbortError") return;
  const n: Notice = { id: ++seq, kind: "error", message: String((e as Error)?.message || e) };
  if (e instanceof ApiError) {
    n.code = e.code;
    n.requestId = e.requestId;
  }
  notices.set([...notices.get(), n].slice(-5));
}

export function showInfo(message: string) {
  const n: Notice = { id: ++seq, kind: "info", message };
  notices.set([...notices.get(), n].slice(-5));
  setTimeout(() => dismiss(n.id), 4000);
}

function dismiss(id: number) {
  notices.set(notices.get().filter((n) => n.id !== id));
}

/** Notices renders the notices; errors stay until dismissed. */
export function Notices() {
  const ns = useStore(notices);
  return (
    <div class="notices" aria-live="assertive">
      {ns.map((n) => (
        <div key={n.id} class={"notice notice-" + n.kind} role={n.kind === "error" ? "alert" : "status"}>
          <div class="notice-body">
            <span class="notice-message">{n.message}</span>
            {n.requestId && (
              <span class="notice-rid">
                Request ID: <code class="request-id">{n.requestId}</code>
              </span>
            )}
          </div>
          <button type="button" class="icon" aria-label="Dismiss" onClick={() => dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

/** ErrorText is an inline error (at a form field or in a dialog). */
export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as ApiError;
  return (
    <p class="error-text" role="alert">
      {e.message}
      {e.requestId && (
        <>
          {" "}
          (request ID <code class="request-id">{e.requestId}</code>)
        </>
      )}
    </p>
  );
}

/** Dialog is a modal <dialog>: focus stays inside, Escape closes it. */
export function Dialog(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const onClose = useRef(props.onClose);
  onClose.current = props.onClose;
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    const close = () => onClose.current();
    d.addEventListener("close", close);
    return () => d.removeEventListener("close", close);
  }, []);
  return (
    <dialog ref={ref} class={props.wide ? "wide" : ""} aria-label={props.title}>
      <header class="dialog-head">
        <h2>{props.title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={() => props.onClose()}>
          ×
        </button>
      </header>
      {props.children}
    </dialog>
  );
}

/** Meter is a labelled bar of used against total (total < 0: unlimited). */
export function Meter({ used, total, label }: { used: number; total: number; label: string }) {
  const unlimited = total < 0;
  const pct = unlimited || total === 0 ? 0 : Math.min(100, (used / total) * 100);
  return (
    <div class="meter-wrap">
      <progress class={pct > 90 ? "meter full" : "meter"} max={100} value={pct} aria-label={label} />
      <span class="meter-text">
        {bytes(used)} {unlimited ? "used (no quota)" : `of ${bytes(total)}`}
      </span>
    </div>
  );
}

export function bytes(n: number): string {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do {
    n /= 1024;
    i++;
  } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + " " + u[i];
}

export function when(s: string | undefined): string {
  if (!s) return "";
  const d = new Date(s);
  return isNaN(d.getTime()) ? s : d.toLocaleString();
}

/** parseBytes reads "10G", "500 MiB", "1024" into bytes; NaN when invalid. */
export function parseBytes(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) return NaN;
  const mult: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.round(parseFloat(m[1]) * mult[m[2].toLowerCase()]);
}
