// Agents: the list and the define form (create, or edit by slug: the API
// upserts). Running an agent and its threads are in agent.tsx.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { agentPaths, agentRules, fieldOf } from "../fields";
import { Field, invalid, useFieldErrors } from "../form";
import { listAll } from "../list";
import { Link, navigate } from "../router";
import { isAdmin, session } from "../session";
import { useStore } from "../store";
import type { Agent, Sandbox, Template, WorkspaceRef } from "../types";
import { Dialog, ErrorText, showError, showInfo, when } from "../ui";
import { MountsEditor, mountable, num, toMounts } from "./sandboxes";

export function Agents() {
  const s = useStore(session);
  const [all, setAll] = useState(false);
  const [list, setList] = useState<Agent[] | null>(null);
  const [defining, setDefining] = useState(false);
  useEffect(() => {
    let live = true;
    listAll<Agent>("/v1/agents" + (all ? "?all=true" : ""))
      .then((l) => live && setList(l))
      .catch(showError);
    return () => {
      live = false;
    };
  }, [all]);
  return (
    <section>
      <div class="row page-head">
        <h1>Agents</h1>
        <span class="spacer" />
        {isAdmin(s) && (
          <label class="check">
            <input type="checkbox" id="agents-all" checked={all} onChange={(e) => setAll((e.target as HTMLInputElement).checked)} />
            Whole organization
          </label>
        )}
        <button type="button" class="primary" id="new-agent" onClick={() => setDefining(true)}>
          New agent
        </button>
      </div>
      {list === null ? (
        <p aria-busy="true">Loading…</p>
      ) : list.length === 0 ? (
        <p class="empty">No agents yet. An agent is a command that runs with a prompt, in a sandbox you keep or in a fresh one per run.</p>
      ) : (
        <div class="table-wrap">
          <table class="agents">
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Mode</th>
                <th scope="col" class="hide-narrow">Runs in</th>
                <th scope="col" class="hide-narrow">Version</th>
                <th scope="col" class="hide-narrow">Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.map((a) => (
                <tr key={a.id} data-agent={a.slug}>
                  <td>
                    <Link href={`/agents/${encodeURIComponent(a.slug)}`}>{a.name || a.slug}</Link>
                    {a.name && a.name !== a.slug ? <span class="hint"> {a.slug}</span> : null}
                  </td>
                  <td>{a.executionMode === "managed" ? "managed" : "in sandbox"}</td>
                  <td class="hide-narrow">
                    {a.executionMode === "managed" ? `fresh ${a.template} sandbox` : <code>{a.sandboxId}</code>}
                  </td>
                  <td class="hide-narrow">{a.version}</td>
                  <td class="hide-narrow">{when(a.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {defining && (
        <AgentForm
          onClose={() => setDefining(false)}
          onSaved={(slug) => {
            setDefining(false);
            navigate(`/agents/${encodeURIComponent(slug)}`);
          }}
        />
      )}
    </section>
  );
}

/** shellOf shows an argv as the shell line it runs, when it is one. */
function shellOf(argv: string[]): string {
  if (argv.length === 3 && (argv[0] === "/bin/sh" || argv[0] === "sh") && argv[1] === "-c") return argv[2];
  return JSON.stringify(argv);
}

/** argvOf reads the command field: a JSON array as is, else a shell line. */
function argvOf(text: string): unknown {
  const t = text.trim();
  if (t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      // not JSON: let the API say what a command must be
      return t;
    }
  }
  return t === "" ? undefined : ["/bin/sh", "-c", t];
}

let rowSeq = 1000;

/** AgentForm defines an agent, or (agent given) edits it. */
export function AgentForm(props: { agent?: Agent; onClose: () => void; onSaved: (slug: string) => void }) {
  const s = useStore(session);
  const a = props.agent;
  const [slug, setSlug] = useState(a ? a.slug : "");
  const [name, setName] = useState(a ? a.name : "");
  const [description, setDescription] = useState(a ? a.description : "");
  const [mode, setMode] = useState<"in_sandbox" | "managed">(a ? a.executionMode : "in_sandbox");
  const [sandbox, setSandbox] = useState(a ? a.sandboxId : "");
  const [template, setTemplate] = useState(a ? a.template : "");
  const [rows, setRows] = useState(
    (a ? a.mounts : []).map((m) => ({ key: ++rowSeq, workspaceId: m.workspaceId, path: m.path, readOnly: m.readOnly })),
  );
  const [command, setCommand] = useState(a ? shellOf(a.command) : "");
  const [env, setEnv] = useState(a ? a.env.map((k) => k + "=").join("\n") : "");
  const [timeout, setTimeoutS] = useState(a && a.timeout ? String(a.timeout / 1000) : "");
  const [sandboxes, setSandboxes] = useState<Sandbox[] | null>(null);
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [workspaces, setWorkspaces] = useState<WorkspaceRef[] | null>(null);
  const [busy, setBusy] = useState(false);
  const errs = useFieldErrors();

  useEffect(() => {
    listAll<Sandbox>("/v1/sandboxes")
      .then((l) => {
        const live = l.filter((x) => x.status !== "destroyed" && x.status !== "destroying");
        setSandboxes(live);
        if (live.length) setSandbox((v) => v || live[0].id);
      })
      .catch(showError);
    api
      .get<Template[]>("/v1/templates")
      .then((r) => {
        setTemplates(r.data);
        if (r.data.length) setTemplate((v) => v || r.data[0].name);
      })
      .catch(showError);
    mountable(isAdmin(s)).then(setWorkspaces).catch(showError);
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    errs.clear();
    const body: Record<string, unknown> = { slug: slug.trim(), executionMode: mode };
    if (name.trim()) body.name = name.trim();
    if (description.trim()) body.description = description.trim();
    if (mode === "in_sandbox") body.sandbox = sandbox;
    else {
      body.template = template;
      body.mounts = toMounts(rows);
    }
    const argv = argvOf(command);
    if (argv !== undefined) body.command = argv;
    const envMap: Record<string, string> = {};
    for (const line of env.split("\n")) {
      if (!line.trim()) continue;
      const i = line.indexOf("=");
      if (i < 0) envMap[line.trim()] = "";
      else envMap[line.slice(0, i).trim()] = line.slice(i + 1);
    }
    if (Object.keys(envMap).length) body.env = envMap;
    if (timeout.trim()) {
      const t = num(timeout);
      body.timeout = typeof t === "number" ? Math.round(t * 1000) : t;
    }
    setBusy(true);
    try {
      const r = await api.post<{ slug: string; action: string; version: number }>("/v1/agents", body);
      showInfo(`Agent ${r.data.slug} ${r.data.action} (version ${r.data.version})`);
      props.onSaved(r.data.slug);
    } catch (x) {
      errs.set(fieldOf(x, agentPaths, agentRules), x);
      setBusy(false);
    }
  };
  return (
    <Dialog title={a ? `Edit ${a.slug}` : "New agent"} onClose={props.onClose} wide>
      <form class="agent-form" onSubmit={submit} noValidate>
        <div class="dialog-body">
          {errs.form() ? (
            <div class="form-error">
              <ErrorText error={errs.form()} />
            </div>
          ) : null}
          <div class="grid2">
            <Field id="agent-slug" label="Slug" hint="lowercase a-z, 0-9 and '-'; the agent's address" err={errs.at("slug")}>
              <input
                id="agent-slug"
                value={slug}
                readOnly={!!a}
                spellcheck={false}
                autocomplete="off"
                required
                {...invalid("agent-slug", errs.at("slug"))}
                onInput={(e) => setSlug((e.target as HTMLInputElement).value)}
              />
            </Field>
            <Field id="agent-name" label="Name" err={errs.at("name")}>
              <input
                id="agent-name"
                value={name}
                {...invalid("agent-name", errs.at("name"))}
                onInput={(e) => setName((e.target as HTMLInputElement).value)}
              />
            </Field>
          </div>
          <Field id="agent-description" label="Description">
            <input id="agent-description" value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
          </Field>
          <fieldset data-field="executionMode">
            <legend>Execution mode</legend>
            <label class="check">
              <input type="radio" name="mode" id="mode-in-sandbox" checked={mode === "in_sandbox"} onChange={() => setMode("in_sandbox")} />
              In a sandbox you keep (runs one after another in it)
            </label>
            <label class="check">
              <input type="radio" name="mode" id="mode-managed" checked={mode === "managed"} onChange={() => setMode("managed")} />
              Managed (a fresh sandbox per run, destroyed after; the workspace mounts persist)
            </label>
            {errs.at("executionMode") ? <ErrorText error={errs.at("executionMode")} /> : null}
          </fieldset>
          {mode === "in_sandbox" ? (
            <Field id="agent-sandbox" label="Sandbox" err={errs.at("sandbox")}>
              <select
                id="agent-sandbox"
                value={sandbox}
                {...invalid("agent-sandbox", errs.at("sandbox"))}
                onChange={(e) => setSandbox((e.target as HTMLSelectElement).value)}
              >
                {sandboxes !== null && sandboxes.length === 0 && !sandbox && <option value="">No sandbox: create one first</option>}
                {/* The linked sandbox may not be in the caller's own list (an admin editing another's agent): keep it. */}
                {sandbox && sandboxes !== null && !sandboxes.some((x) => x.id === sandbox) && <option value={sandbox}>{sandbox}</option>}
                {(sandboxes || []).map((x) => (
                  <option key={x.id} value={x.id}>
                    {x.name} ({x.status})
                  </option>
                ))}
              </select>
            </Field>
          ) : (
            <>
              <Field id="agent-template" label="Template" err={errs.at("template")}>
                <select
                  id="agent-template"
                  value={template}
                  {...invalid("agent-template", errs.at("template"))}
                  onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}
                >
                  {template && templates !== null && !templates.some((t) => t.name === template) && <option value={template}>{template}</option>}
                  {(templates || []).map((t) => (
                    <option key={t.name} value={t.name}>
                      {t.name}
                    </option>
                  ))}
                </select>
              </Field>
              <MountsEditor
                rows={rows}
                setRows={setRows}
                workspaces={workspaces}
                errAt={(k) => (k === "mounts" || k.startsWith("mounts[") ? errs.at(k) : null)}
              />
            </>
          )}
          <Field
            id="agent-command"
            label="Command"
            hint={'A shell line run by /bin/sh -c, or a JSON argv array such as ["python3", "/workspace/agent.py"]. The prompt arrives on stdin and in $BERTH_PROMPT.'}
            err={errs.at("command")}
          >
            <textarea
              id="agent-command"
              rows={3}
              spellcheck={false}
              value={command}
              {...invalid("agent-command", errs.at("command"))}
              onInput={(e) => setCommand((e.target as HTMLTextAreaElement).value)}
            />
          </Field>
          <div class="grid2">
            <Field
              id="agent-env"
              label="Environment"
              hint={a && a.env.length ? "KEY=value per line. Values are never shown back: saving replaces them all, so give each again." : "KEY=value per line"}
            >
              <textarea id="agent-env" rows={3} spellcheck={false} value={env} onInput={(e) => setEnv((e.target as HTMLTextAreaElement).value)} />
            </Field>
            <Field id="agent-timeout" label="Timeout (seconds)" hint="Per run; empty: 10 minutes" err={errs.at("timeout")}>
              <input
                id="agent-timeout"
                inputMode="decimal"
                value={timeout}
                {...invalid("agent-timeout", errs.at("timeout"))}
                onInput={(e) => setTimeoutS((e.target as HTMLInputElement).value)}
              />
            </Field>
          </div>
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" id="save-agent" disabled={busy}>
            {busy ? "Saving…" : a ? "Save" : "Create"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
