// One agent: its definition, a run form whose output streams in (the run's
// SSE: prompt, status, stdout, stderr, then result), and its threads; and
// one thread with its runs and every event.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, stream } from "../api";
import { Confirm } from "../form";
import { listAll } from "../list";
import { Link, navigate, useRoute } from "../router";
import type { Agent, Run, RunEvent, Thread } from "../types";
import { ErrorText, showError, showInfo, when } from "../ui";
import { AgentForm } from "./agents";

export function AgentDetail({ slug }: { slug: string }) {
  const { query } = useRoute();
  const [agent, setAgent] = useState<Agent | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [threads, setThreads] = useState<Thread[] | null>(null);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    api
      .get<Agent>(`/v1/agents/${encodeURIComponent(slug)}`)
      .then((r) => setAgent(r.data))
      .catch(setErr);
  }, [slug, reload]);
  const loadThreads = () =>
    listAll<Thread>(`/v1/threads?agent=${encodeURIComponent(slug)}`)
      .then((l) => setThreads(l.slice().reverse()))
      .catch(showError);
  useEffect(() => {
    loadThreads();
  }, [slug]);

  if (err) {
    return (
      <section>
        <h1>Agent {slug}</h1>
        <ErrorText error={err} />
        <p>
          <Link href="/agents">All agents</Link>
        </p>
      </section>
    );
  }
  if (!agent) return <p aria-busy="true">Loading…</p>;
  return (
    <section class="agent-detail">
      <p class="crumbs">
        <Link href="/agents">Agents</Link> /
      </p>
      <div class="row page-head">
        <h1>{agent.name || agent.slug}</h1>
        <span class="spacer" />
        <button type="button" id="edit-agent" onClick={() => setEditing(true)}>
          Edit
        </button>
        <button type="button" class="danger" id="delete-agent" onClick={() => setDeleting(true)}>
          Delete
        </button>
      </div>
      {agent.description && <p>{agent.description}</p>}
      <dl class="props">
        <dt>Slug</dt>
        <dd>
          <code>{agent.slug}</code> · version {agent.version}
        </dd>
        <dt>Runs</dt>
        <dd>
          {agent.executionMode === "managed" ? (
            <>in a fresh {agent.template} sandbox per run</>
          ) : (
            <>
              in sandbox <Link href={`/sandboxes/${encodeURIComponent(agent.sandboxId)}`}>{agent.sandboxId}</Link>
            </>
          )}
        </dd>
        {agent.mounts.length > 0 && (
          <>
            <dt>Mounts</dt>
            <dd>{agent.mounts.map((m) => m.path + (m.readOnly ? " (ro)" : "")).join(", ")}</dd>
          </>
        )}
        <dt>Command</dt>
        <dd>
          <code class="wrap">{JSON.stringify(agent.command)}</code>
        </dd>
        {agent.env.length > 0 && (
          <>
            <dt>Environment</dt>
            <dd>{agent.env.join(", ")}</dd>
          </>
        )}
        <dt>Timeout</dt>
        <dd>{agent.timeout ? `${agent.timeout / 1000} s` : "10 min (default)"}</dd>
        <dt>Endpoint</dt>
        <dd>
          <code>POST {agent.endpoint}</code>
        </dd>
      </dl>
      <RunPanel agent={agent} threads={threads || []} initialThread={query.get("thread") || ""} onRun={loadThreads} />
      <section class="threads" aria-labelledby="threads-h">
        <h2 id="threads-h">Threads</h2>
        {threads === null ? (
          <p aria-busy="true">Loading…</p>
        ) : threads.length === 0 ? (
          <p class="empty">No runs yet.</p>
        ) : (
          <ThreadList threads={threads} />
        )}
      </section>
      {editing && (
        <AgentForm
          agent={agent}
          onClose={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            setReload((n) => n + 1);
          }}
        />
      )}
      {deleting && (
        <Confirm
          title={`Delete agent ${agent.slug}?`}
          action="Delete"
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await api.del(`/v1/agents/${encodeURIComponent(agent.slug)}`);
            showInfo(`Agent ${agent.slug} deleted`);
            navigate("/agents");
          }}
        >
          <p>Its threads and runs stay readable until you delete them.</p>
        </Confirm>
      )}
    </section>
  );
}

function ThreadList({ threads }: { threads: Thread[] }) {
  return (
    <div class="table-wrap">
      <table class="thread-list">
        <thead>
          <tr>
            <th scope="col">Thread</th>
            <th scope="col">Events</th>
            <th scope="col" class="hide-narrow">Updated</th>
          </tr>
        </thead>
        <tbody>
          {threads.map((t) => (
            <tr key={t.id} data-thread={t.id}>
              <td class="truncate">
                <Link href={`/threads/${encodeURIComponent(t.id)}`}>{t.title || t.id}</Link>
                {t.archived ? <span class="hint"> (archived)</span> : null}
              </td>
              <td>{t.eventCount}</td>
              <td class="hide-narrow">{when(t.updatedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface Piece {
  kind: string;
  text: string;
}

function RunPanel(props: { agent: Agent; threads: Thread[]; initialThread: string; onRun: () => void }) {
  const [prompt, setPrompt] = useState("");
  const [thread, setThread] = useState(props.initialThread);
  const [pieces, setPieces] = useState<Piece[]>([]);
  const [status, setStatus] = useState("");
  const [result, setResult] = useState<Run | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const [runId, setRunId] = useState("");
  const [cancelling, setCancelling] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const out = useRef<HTMLPreElement>(null);
  useEffect(() => () => abort.current?.abort(), []);
  useEffect(() => {
    if (out.current) out.current.scrollTop = out.current.scrollHeight;
  }, [pieces]);

  const add = (p: Piece) =>
    setPieces((ps) => {
      const last = ps[ps.length - 1];
      if (last && last.kind === p.kind) return [...ps.slice(0, -1), { kind: p.kind, text: last.text + p.text }];
      return [...ps, p];
    });

  const run = async (e: Event) => {
    e.preventDefault();
    if (running) return;
    setPieces([]);
    setResult(null);
    setErr(null);
    setStatus("starting");
    setRunId("");
    setRunning(true);
    const ac = new AbortController();
    abort.current = ac;
    const body: Record<string, unknown> = { prompt, stream: true };
    let rid = "";
    if (thread) body.threadId = thread;
    try {
      await stream(
        "POST",
        `/v1/agents/${encodeURIComponent(props.agent.slug)}/run`,
        (ev) => {
          switch (ev.event) {
            case "prompt":
              break;
            case "status": {
              const x = JSON.parse(ev.data);
              if (x.runId) setRunId(x.runId);
              setStatus(x.status + (x.reason ? ` (${x.reason})` : ""));
              break;
            }
            case "stdout":
            case "stderr":
              add({ kind: ev.event, text: ev.data });
              break;
            case "result": {
              const r = JSON.parse(ev.data) as Run;
              setResult(r);
              setStatus(r.status);
              if (!thread) setThread(r.threadId);
              break;
            }
            case "error": {
              const x = JSON.parse(ev.data);
              setErr(new ApiError(0, x.code || "error", x.message || "the run failed", rid));
              break;
            }
          }
        },
        { body, signal: ac.signal, onOpen: (h) => (rid = h.get("X-Request-Id") || "") },
      );
    } catch (x) {
      setErr(x);
      setStatus("");
    } finally {
      setRunning(false);
      abort.current = null;
      props.onRun();
    }
  };

  return (
    <section class="run card" aria-labelledby="run-h">
      <h2 id="run-h">Run</h2>
      <form class="run-form" onSubmit={run}>
        <div class="field">
          <label for="run-prompt">Prompt</label>
          <textarea
            id="run-prompt"
            rows={3}
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              // Ctrl/Cmd+Enter runs, as in most chat inputs.
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                (e.currentTarget.form as HTMLFormElement).requestSubmit();
              }
            }}
          />
        </div>
        <div class="row">
          <label for="run-thread">Thread</label>
          <select id="run-thread" value={thread} onChange={(e) => setThread((e.target as HTMLSelectElement).value)}>
            <option value="">New thread</option>
            {thread && !props.threads.some((t) => t.id === thread) && <option value={thread}>{thread}</option>}
            {props.threads.map((t) => (
              <option key={t.id} value={t.id}>
                {t.title || t.id}
              </option>
            ))}
          </select>
          <span class="spacer" />
          {running && result === null && runId ? (
            <button
              type="button"
              class="danger"
              id="run-cancel"
              disabled={cancelling}
              onClick={() => {
                setCancelling(true);
                api
                  .post(`/v1/runs/${encodeURIComponent(runId)}/cancel`)
                  .catch(showError)
                  .finally(() => setCancelling(false));
              }}
            >
              Cancel run
            </button>
          ) : null}
          <button type="submit" class="primary" id="run-agent" disabled={running || !prompt.trim()}>
            {running ? "Running…" : "Run"}
          </button>
        </div>
      </form>
      <pre class="console-out" id="run-output" ref={out} tabIndex={0} aria-label="Run output" aria-live="polite">
        {pieces.length === 0 ? <span class="hint">The agent's output appears here as it writes it.</span> : null}
        {pieces.map((p, i) => (
          <span key={i} class={"out-" + p.kind}>
            {p.text}
          </span>
        ))}
      </pre>
      <p id="run-status" role="status" class="exec-status">
        {status && <>Status: <strong class={"run-" + (result ? result.status : "live")}>{status}</strong></>}
        {cancelling && <span id="run-cancelling"> · cancelling…</span>}
        {result && (
          <>
            {" "}
            · exit code <strong id="run-exit">{result.exitCode === null ? "none" : result.exitCode}</strong> · {result.durationMs} ms ·{" "}
            <Link href={`/threads/${encodeURIComponent(result.threadId)}`} id="run-thread-link">
              thread
            </Link>
          </>
        )}
      </p>
      {err ? <ErrorText error={err} /> : null}
    </section>
  );
}

export function ThreadDetail({ id }: { id: string }) {
  const [thread, setThread] = useState<Thread | null>(null);
  const [events, setEvents] = useState<RunEvent[] | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [deleting, setDeleting] = useState(false);
  const load = () => {
    api
      .get<Thread>(`/v1/threads/${encodeURIComponent(id)}`)
      .then((r) => setThread(r.data))
      .catch(setErr);
    listAll<RunEvent>(`/v1/threads/${encodeURIComponent(id)}/events`, 20000)
      .then(setEvents)
      .catch(showError);
  };
  useEffect(load, [id]);
  if (err) {
    return (
      <section>
        <h1>Thread</h1>
        <ErrorText error={err} />
      </section>
    );
  }
  if (!thread) return <p aria-busy="true">Loading…</p>;
  const archive = async (archived: boolean) => {
    try {
      const r = await api.patch<Thread>(`/v1/threads/${encodeURIComponent(id)}`, { archived });
      setThread({ ...thread, ...r.data, runs: thread.runs });
    } catch (e) {
      showError(e);
    }
  };
  return (
    <section class="thread-detail">
      <p class="crumbs">
        <Link href="/agents">Agents</Link> / <Link href={`/agents/${encodeURIComponent(thread.agentSlug)}`}>{thread.agentSlug}</Link> /
      </p>
      <div class="row page-head">
        <h1 class="truncate">{thread.title || thread.id}</h1>
        <span class="spacer" />
        <Link class="button" href={`/agents/${encodeURIComponent(thread.agentSlug)}?thread=${encodeURIComponent(thread.id)}`}>
          Continue
        </Link>
        <button type="button" onClick={() => archive(!thread.archived)}>
          {thread.archived ? "Unarchive" : "Archive"}
        </button>
        <button type="button" class="danger" onClick={() => setDeleting(true)}>
          Delete
        </button>
      </div>
      <h2>Runs</h2>
      <div class="table-wrap">
        <table class="runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status</th>
              <th scope="col">Exit</th>
              <th scope="col" class="hide-narrow">Duration</th>
              <th scope="col" class="hide-narrow">Started</th>
            </tr>
          </thead>
          <tbody>
            {(thread.runs || []).map((r) => (
              <tr key={r.runId} data-run={r.runId}>
                <td>
                  <code>{r.runId}</code>
                </td>
                <td>
                  <span class={"status status-" + r.status}>{r.status}</span>
                  {r.statusReason ? <span class="hint"> {r.statusReason}</span> : null}
                </td>
                <td>{r.exitCode === null ? "" : r.exitCode}</td>
                <td class="hide-narrow">{r.durationMs} ms</td>
                <td class="hide-narrow">{when(r.startedAt || r.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Events</h2>
      {events === null ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <ol class="events" id="thread-events">
          {events.map((e) => (
            <li key={e.seq} class={"event event-" + e.type} data-seq={e.seq}>
              <span class="event-head">
                {e.type} · <code>{e.runId}</code> · {when(e.createdAt)}
              </span>
              {e.text !== undefined && e.text !== "" ? <pre class="event-text">{e.text}</pre> : null}
              {e.data !== undefined && e.type !== "result" ? <code class="event-data">{JSON.stringify(e.data)}</code> : null}
            </li>
          ))}
        </ol>
      )}
      {deleting && (
        <Confirm
          title="Delete this thread?"
          action="Delete"
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await api.del(`/v1/threads/${encodeURIComponent(id)}`);
            showInfo("Thread deleted");
            navigate(`/agents/${encodeURIComponent(thread.agentSlug)}`);
          }}
        >
          <p>Its runs and events are deleted with it.</p>
        </Confirm>
      )}
    </section>
  );
}
