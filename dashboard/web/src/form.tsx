// Form pieces shared by the create/define forms: a labelled field that shows
// the API's message for it, and a confirmation dialog.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { Dialog, ErrorText } from "./ui";

/**
 * Field is a label, its control (children, which must carry id=`id`), an
 * optional hint and the error for that field. The control should set
 * aria-invalid and aria-describedby={errId(id)} when err is set (invalid()).
 */
export function Field(props: { id: string; label: string; hint?: string; err?: unknown; children: ComponentChildren }) {
  return (
    <div class={"field" + (props.err ? " has-error" : "")} data-field={props.id}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint && <span class="hint">{props.hint}</span>}
      {props.err ? (
        <div id={errId(props.id)} class="field-error">
          <ErrorText error={props.err} />
        </div>
      ) : null}
    </div>
  );
}

export const errId = (id: string) => id + "-error";

/** invalid gives a control's ARIA attributes for an error (or none). */
export function invalid(id: string, err: unknown) {
  return err ? { "aria-invalid": true as const, "aria-describedby": errId(id) } : {};
}

/**
 * Confirm asks before a destructive action; it shows the action's error in
 * place (with its request id) and closes when the action succeeds.
 */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  action: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      <form
        method="dialog"
        class="confirm"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          try {
            await props.onConfirm();
            props.onClose();
          } catch (x) {
            setErr(x);
            setBusy(false);
          }
        }}
      >
        <div class="dialog-body">
          {props.children}
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="danger confirm-ok" disabled={busy} autoFocus>
            {busy ? "Working…" : props.action}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** useFieldErrors keeps one error, either at a field (key) or for the form. */
export function useFieldErrors() {
  const [state, set] = useState<{ key: string | null; err: unknown } | null>(null);
  return {
    clear: () => set(null),
    set: (key: string | null, err: unknown) => set({ key, err }),
    at: (key: string) => (state && state.key === key ? state.err : null),
    form: () => (state && state.key === null ? state.err : null),
    key: () => (state ? state.key : null),
    err: () => (state ? state.err : null),
  };
}
