// One sandbox: its settings, lifecycle actions and an exec console whose
// output streams in as the command writes it (exec?stream=true, SSE).
import { lazy, Suspense } from "preact/compat";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, stream } from "../api";
import { Link, navigate } from "../router";
import type { Sandbox, WorkspaceRef } from "../types";
import { ErrorText, showError, when } from "../ui";
import { REFRESH_MS, SandboxActions, StatusBadge, useRefresh } from "./sandboxes";

export function SandboxDetail({ id }: { id: string }) {
  const [sb, setSb] = useState<Sandbox | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [names, setNames] = useState<Record<string, string>>({});
  // gen drops a read that an action overtook (it would show the old status).
  const gen = useRef(0);
  useRefresh(
    () => {
      const g = ++gen.current;
      api
        .get<Sandbox>(`/v1/sandboxes/${encodeURIComponent(id)}`)
        .then((r) => {
          if (g !== gen.current) return;
          setSb(r.data);
          setErr(null);
        })
        .catch((e) => g === gen.current && setErr(e));
    },
    REFRESH_MS,
    [id],
  );
  useEffect(() => {
    // Workspace names for the mounts; without them the ids are shown.
    api
      .get<{ workspaces: WorkspaceRef[] }>("/v1/workspaces")
      .then((r) => setNames(Object.fromEntries(r.data.workspaces.map((w) => [w.id, w.name]))))
      .catch(() => {});
  }, []);
  if (err && !sb) {
    return (
      <section>
        <h1>Sandbox</h1>
        <ErrorText error={err} />
        <p>
          <Link href="/sandboxes">All sandboxes</Link>
        </p>
      </section>
    );
  }
  if (!sb) return <p aria-busy="true">Loading…</p>;
  return (
    <section class="sandbox-detail">
      <p class="crumbs">
        <Link href="/sandboxes">Sandboxes</Link> /
      </p>
      <div class="row page-head">
        <h1>{sb.name}</h1>
        <StatusBadge status={sb.status} />
        <span class="spacer" />
        <SandboxActions
          sb={sb}
          onChange={(n) => {
            gen.current++;
            if (n) setSb(n);
            else navigate("/sandboxes");
          }}
        />
      </div>
      {sb.statusReason && <p class="hint">{sb.statusReason}</p>}
      <dl class="props">
        <dt>ID</dt>
        <dd>
          <code>{sb.id}</code>
        </dd>
        <dt>Template</dt>
        <dd>{sb.template}</dd>
        <dt>Network</dt>
        <dd>
          {sb.network}
          {sb.ip ? ` · ${sb.ip}` : ""}
        </dd>
        <dt>Resources</dt>
        <dd>
          {[
            sb.resources.vcpus ? `${sb.resources.vcpus} vCPU` : "",
            sb.resources.memory || "",
            sb.resources.disk ? `${sb.resources.disk} disk` : "",
            sb.resources.pids ? `${sb.resources.pids} processes` : "",
          ]
            .filter(Boolean)
            .join(" · ") || "template defaults"}
        </dd>
        <dt>Idle timeout</dt>
        <dd>{sb.idleTimeout > 0 ? `${sb.idleTimeout} s` : "never"}</dd>
        <dt>Last activity</dt>
        <dd>{when(sb.lastActivityAt)}</dd>
        <dt>Mounts</dt>
        <dd>
          {sb.mounts.length === 0 ? (
            "none"
          ) : (
            <ul class="mount-list">
              {sb.mounts.map((m) => (
                <li key={m.path}>
                  <code>{m.path}</code> ←{" "}
                  <Link href={`/workspaces/${encodeURIComponent(m.workspaceId)}/files`}>
                    {names[m.workspaceId] || m.workspaceId}
                  </Link>
                  {m.readOnly ? " (read-only)" : ""}
                </li>
              ))}
            </ul>
          )}
        </dd>
      </dl>
      {sb.status !== "destroyed" && <Tools sb={sb} />}
    </section>
  );
}

// The terminal and its library load only when its tab is opened.
const TerminalPane = lazy(() => import("./terminal").then((m) => ({ default: m.TerminalPane })));

/** The console and terminal tabs. */
function Tools({ sb }: { sb: Sandbox }) {
  const [tab, setTab] = useState<"console" | "terminal">("console");
  const tabs: [typeof tab, string][] = [
    ["console", "Console"],
    ["terminal", "Terminal"],
  ];
  return (
    <>
      <div class="tabs" role="tablist" aria-label="Sandbox tools">
        {tabs.map(([k, label]) => (
          <button
            key={k}
            type="button"
            role="tab"
            id={"tab-" + k}
            aria-selected={tab === k}
            aria-controls={"panel-" + k}
            class={tab === k ? "tab active" : "tab"}
            onClick={() => setTab(k)}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={"panel-" + tab} aria-labelledby={"tab-" + tab}>
        {tab === "console" ? (
          <Console sb={sb} />
        ) : (
          <Suspense fallback={<p aria-busy="true">Loading the terminal…</p>}>
            <TerminalPane sb={sb} />
          </Suspense>
        )}
      </div>
    </>
  );
}

interface Chunk {
  kind: "cmd" | "stdout" | "stderr" | "exit" | "error";
  text: string;
}

/** The most console text kept; older output is dropped from the top. */
const MAX_CONSOLE = 1 << 20;

function Console({ sb }: { sb: Sandbox }) {
  const [cmd, setCmd] = useState("");
  const [cwd, setCwd] = useState(sb.mounts.length ? sb.mounts[0].path : "");
  const [chunks, setChunks] = useState<Chunk[]>([]);
  const [running, setRunning] = useState(false);
  const [exit, setExit] = useState<{ exitCode: number; durationMs: number; timedOut?: boolean } | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const abort = useRef<AbortController | null>(null);
  const out = useRef<HTMLPreElement>(null);
  const history = useRef<string[]>([]);
  const hpos = useRef(0);

  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    const el = out.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [chunks]);

  const add = (c: Chunk) =>
    setChunks((cs) => {
      const last = cs[cs.length - 1];
      let next = last && last.kind === c.kind && c.kind !== "cmd" ? [...cs.slice(0, -1), { ...last, text: last.text + c.text }] : [...cs, c];
      let size = next.reduce((n, x) => n + x.text.length, 0);
      while (size > MAX_CONSOLE && next.length > 1) {
        size -= next[0].text.length;
        next = next.slice(1);
      }
      return next;
    });

  const run = async (e: Event) => {
    e.preventDefault();
    const c = cmd.trim();
    if (!c || running) return;
    history.current.push(c);
    hpos.current = history.current.length;
    setCmd("");
    setExit(null);
    setErr(null);
    setRunning(true);
    add({ kind: "cmd", text: "$ " + c + "\n" });
    const ac = new AbortController();
    abort.current = ac;
    const body: Record<string, unknown> = { command: c, timeout: 10 * 60 * 1000 };
    let rid = "";
    if (cwd.trim()) body.cwd = cwd.trim();
    try {
      await stream(
        "POST",
        `/v1/sandboxes/${encodeURIComponent(sb.id)}/exec?stream=true`,
        (ev) => {
          switch (ev.event) {
            case "stdout":
            case "stderr":
              add({ kind: ev.event, text: ev.data });
              break;
            case "exit": {
              const x = JSON.parse(ev.data);
              setExit(x);
              add({ kind: "exit", text: `[exit ${x.exitCode}${x.timedOut ? ", timed out" : ""}]\n` });
              break;
            }
            case "error": {
              const x = JSON.parse(ev.data);
              const ae = new ApiError(0, x.code || "error", x.message || "the command failed", rid);
              setErr(ae);
              add({ kind: "error", text: `[error: ${ae.message}]\n` });
              break;
            }
          }
        },
        { body, signal: ac.signal, onOpen: (h) => (rid = h.get("X-Request-Id") || "") },
      );
      if (ac.signal.aborted) add({ kind: "error", text: "[cancelled: the command was killed]\n" });
    } catch (x) {
      setErr(x);
      if (!(x instanceof ApiError)) showError(x);
    } finally {
      setRunning(false);
      abort.current = null;
    }
  };

  return (
    <section class="console card" aria-labelledby="console-h">
      <div class="row">
        <h2 id="console-h">Console</h2>
        <span class="spacer" />
        <button type="button" id="exec-clear" onClick={() => setChunks([])} disabled={chunks.length === 0}>
          Clear
        </button>
      </div>
      <pre class="console-out" id="exec-output" ref={out} tabIndex={0} aria-label="Command output" aria-live="polite">
        {chunks.length === 0 ? <span class="hint">Output appears here as the command writes it.</span> : null}
        {chunks.map((c, i) => (
          <span key={i} class={"out-" + c.kind}>
            {c.text}
          </span>
        ))}
      </pre>
      <p class="exec-status" id="exec-status" role="status">
        {running ? (
          <span aria-busy="true">Running…</span>
        ) : exit ? (
          <>
            Exit code <strong id="exec-exit" class={exit.exitCode === 0 ? "ok" : "bad"}>{exit.exitCode}</strong> ·{" "}
            {exit.durationMs} ms{exit.timedOut ? " · timed out" : ""}
          </>
        ) : null}
      </p>
      {err ? <ErrorText error={err} /> : null}
      <form class="exec-form" onSubmit={run}>
        <div class="field grow">
          <label for="exec-command">Command</label>
          <input
            id="exec-command"
            value={cmd}
            spellcheck={false}
            autocomplete="off"
            placeholder="ls -la"
            aria-describedby="exec-hint"
            onInput={(e) => setCmd((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              // Up and Down walk the commands run in this page.
              const h = history.current;
              if (e.key === "ArrowUp" && hpos.current > 0) {
                hpos.current--;
                setCmd(h[hpos.current]);
                e.preventDefault();
              } else if (e.key === "ArrowDown" && hpos.current < h.length) {
                hpos.current++;
                setCmd(h[hpos.current] || "");
                e.preventDefault();
              }
            }}
          />
          <span class="hint" id="exec-hint">
            Run by /bin/sh -c; Enter runs, ↑/↓ recall earlier commands.
          </span>
        </div>
        <div class="field">
          <label for="exec-cwd">Directory</label>
          <input id="exec-cwd" value={cwd} spellcheck={false} placeholder="/" onInput={(e) => setCwd((e.target as HTMLInputElement).value)} />
        </div>
        <div class="row exec-buttons">
          {running ? (
            <button type="button" id="exec-stop" onClick={() => abort.current?.abort()}>
              Cancel
            </button>
          ) : (
            <button type="submit" class="primary" id="exec-run" disabled={!cmd.trim()}>
              Run
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
