// Sign-in: the API key is posted once and dropped; the form is never
// submitted as a navigation (the key must not land in a URL).
import { useState } from "preact/hooks";
import { signIn } from "../session";
import { ErrorText } from "../ui";

export function SignIn() {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<unknown>(null);
  return (
    <main class="center">
      <form
        class="card signin"
        method="post"
        action="/"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          try {
            await signIn(key.trim());
            setKey("");
          } catch (x) {
            setErr(x);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1>Sign in to berth</h1>
        <label for="apikey">API key</label>
        <input
          id="apikey"
          name="apikey"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          autoFocus
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        <p class="hint">
          Paste an API key (the admin key is printed by <code>berth serve</code> on first start). It is exchanged for
          a session cookie and not kept by the browser.
        </p>
        <ErrorText error={err} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
