// Sandboxes: the list (refreshed while the page is visible), the create form
// with workspace mounts, and the lifecycle actions; the detail page with
// its exec console is in sandbox.tsx.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { fieldOf, sandboxPaths, sandboxRules } from "../fields";
import { Confirm, Field, invalid, useFieldErrors } from "../form";
import { listAll } from "../list";
import { Link, navigate } from "../router";
import { isAdmin, session } from "../session";
import { useStore } from "../store";
import type { Sandbox, Template, WorkspaceRef } from "../types";
import { Dialog, ErrorText, showError, showInfo, when } from "../ui";

/** How often the list and the detail page re-read sandbox status. */
export const REFRESH_MS = 3000;

/** useRefresh calls fn now and every ms while the tab is visible. */
export function useRefresh(fn: () => void, ms: number, deps: unknown[]) {
  useEffect(() => {
    fn();
    const t = setInterval(() => {
      if (!document.hidden) fn();
    }, ms);
    return () => clearInterval(t);
  }, deps);
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={"status status-" + status}>{status}</span>;
}

/** The lifecycle actions a sandbox in a status allows. */
function actionsFor(status: string): string[] {
  switch (status) {
    case "running":
      return ["pause", "stop", "keepalive"];
    case "paused":
      return ["resume", "stop"];
    case "stopped":
      return ["start"];
    default:
      return [];
  }
}

const verbs: Record<string, string> = {
  pause: "Pause",
  resume: "Resume",
  stop: "Stop",
  start: "Start",
  keepalive: "Keep alive",
};

/**
 * SandboxActions are the lifecycle buttons of one sandbox; onChange gets the
 * sandbox as the API answers it after the action (null after destroy).
 */
export function SandboxActions({ sb, onChange }: { sb: Sandbox; onChange: (s: Sandbox | null) => void }) {
  const [busy, setBusy] = useState("");
  const [confirm, setConfirm] = useState(false);
  const act = async (a: string) => {
    setBusy(a);
    try {
      const r = await api.post<Sandbox>(`/v1/sandboxes/${encodeURIComponent(sb.id)}/${a}`);
      onChange(r.data);
      if (a === "keepalive") showInfo(`Idle timer of ${sb.name} reset`);
    } catch (e) {
      showError(e);
    } finally {
      setBusy("");
    }
  };
  return (
    <div class="row actions">
      {actionsFor(sb.status).map((a) => (
        <button
          key={a}
          type="button"
          data-action={a}
          aria-label={`${verbs[a]} ${sb.name}`}
          disabled={!!busy}
          onClick={() => act(a)}
        >
          {busy === a ? "…" : verbs[a]}
        </button>
      ))}
      {sb.status !== "destroyed" && sb.status !== "destroying" && (
        <button
          type="button"
          class="danger"
          data-action="destroy"
          aria-label={`Destroy ${sb.name}`}
          disabled={!!busy}
          onClick={() => setConfirm(true)}
        >
          Destroy
        </button>
      )}
      {confirm && (
        <Confirm
          title={`Destroy ${sb.name}?`}
          action="Destroy"
          onClose={() => setConfirm(false)}
          onConfirm={async () => {
            await api.del(`/v1/sandboxes/${encodeURIComponent(sb.id)}`);
            showInfo(`Sandbox ${sb.name} destroyed`);
            onChange(null);
          }}
        >
          <p>
            The container and the files it keeps outside its workspace mounts are removed. The workspaces stay as they
            are.
          </p>
        </Confirm>
      )}
    </div>
  );
}

export function Sandboxes() {
  const s = useStore(session);
  const admin = isAdmin(s);
  const [all, setAll] = useState(false);
  const [list, setList] = useState<Sandbox[] | null>(null);
  const [creating, setCreating] = useState(false);
  const gen = useRef(0);
  // A refresh that keeps failing shows its error once, not every 3 s.
  const failing = useRef(false);
  const load = () => {
    const g = ++gen.current;
    listAll<Sandbox>("/v1/sandboxes" + (all ? "?all=true" : ""))
      .then((l) => {
        failing.current = false;
        if (g === gen.current) setList(l);
      })
      .catch((e) => {
        if (g === gen.current && !failing.current) showError(e);
        failing.current = true;
      });
  };
  useRefresh(load, REFRESH_MS, [all]);
  const live = (list || []).filter((x) => x.status !== "destroyed");
  return (
    <section>
      <div class="row page-head">
        <h1>Sandboxes</h1>
        <span class="spacer" />
        {admin && (
          <label class="check">
            <input type="checkbox" id="sbx-all" checked={all} onChange={(e) => setAll((e.target as HTMLInputElement).checked)} />
            Whole organization
          </label>
        )}
        <button type="button" class="primary" id="new-sandbox" onClick={() => setCreating(true)}>
          New sandbox
        </button>
      </div>
      {list === null ? (
        <p aria-busy="true">Loading…</p>
      ) : live.length === 0 ? (
        <p class="empty">No sandboxes yet. Create one to run commands next to your workspaces.</p>
      ) : (
        <div class="table-wrap">
          <table class="sandboxes">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col" class="hide-narrow">Template</th>
                <th scope="col" class="hide-narrow">Mounts</th>
                <th scope="col" class="hide-narrow">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {live.map((x) => (
                <tr key={x.id} data-sandbox={x.name}>
                  <td>
                    <Link href={`/sandboxes/${encodeURIComponent(x.id)}`}>{x.name}</Link>
                  </td>
                  <td>
                    <StatusBadge status={x.status} />
                  </td>
                  <td class="hide-narrow">{x.template}</td>
                  <td class="hide-narrow">{x.mounts.map((m) => m.path + (m.readOnly ? " (ro)" : "")).join(", ")}</td>
                  <td class="hide-narrow">{when(x.createdAt)}</td>
                  <td>
                    <SandboxActions
                      sb={x}
                      onChange={(n) => {
                        gen.current++; // a read in flight predates the action: drop it
                        setList((l) => (l || []).map((y) => (y.id === x.id ? n || { ...y, status: "destroyed" } : y)));
                        load();
                      }}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateSandbox
          onClose={() => setCreating(false)}
          onCreated={(sb) => {
            setCreating(false);
            navigate(`/sandboxes/${encodeURIComponent(sb.id)}`);
          }}
        />
      )}
    </section>
  );
}

interface MountRow {
  key: number;
  workspaceId: string;
  path: string;
  readOnly: boolean;
}

/**
 * mountable lists the workspaces the caller may mount: the ones they see
 * (admins: the organization's), without personal ones, which the API never
 * mounts.
 */
export async function mountable(admin: boolean): Promise<WorkspaceRef[]> {
  const r = await api.get<{ workspaces: WorkspaceRef[] }>("/v1/workspaces" + (admin ? "?all=true" : ""));
  return r.data.workspaces.filter((w) => !w.isPersonal);
}

let rowSeq = 0;

/** MountsEditor edits a list of workspace mounts, with errors at the row. */
export function MountsEditor(props: {
  rows: MountRow[];
  setRows: (f: (r: MountRow[]) => MountRow[]) => void;
  workspaces: WorkspaceRef[] | null;
  errAt: (key: string) => unknown;
}) {
  const { rows, setRows, workspaces, errAt } = props;
  const ws = workspaces || [];
  const rowErr = (r: MountRow, i: number) => {
    const w = ws.find((x) => x.id === r.workspaceId);
    return errAt("mounts[" + i + "]") || errAt("mount:" + r.path) || (w ? errAt("mountws:" + w.slug) : null);
  };
  const update = (key: number, patch: Partial<MountRow>) =>
    setRows((rs) => rs.map((r) => (r.key === key ? { ...r, ...patch } : r)));
  return (
    <fieldset class="mounts" data-field="mounts">
      <legend>Workspace mounts</legend>
      {workspaces !== null && ws.length === 0 && (
        <p class="hint">No workspace you may mount (personal workspaces are never mounted into sandboxes).</p>
      )}
      {rows.map((r, i) => {
        const err = rowErr(r, i);
        const id = `mount-${i}`;
        return (
          <div class={"mount-row" + (err ? " has-error" : "")} key={r.key} data-mount={i}>
            <div class="field">
              <label for={id + "-ws"}>Workspace</label>
              <select
                id={id + "-ws"}
                value={r.workspaceId}
                onChange={(e) => update(r.key, { workspaceId: (e.target as HTMLSelectElement).value })}
              >
                {ws.map((w) => (
                  <option key={w.id} value={w.id}>
                    {w.name}
                  </option>
                ))}
              </select>
            </div>
            <div class="field">
              <label for={id + "-path"}>Path in the sandbox</label>
              <input
                id={id + "-path"}
                class="mount-path"
                value={r.path}
                spellcheck={false}
                {...invalid(id, err)}
                onInput={(e) => update(r.key, { path: (e.target as HTMLInputElement).value })}
              />
            </div>
            <label class="check">
              <input
                type="checkbox"
                class="mount-ro"
                checked={r.readOnly}
                onChange={(e) => update(r.key, { readOnly: (e.target as HTMLInputElement).checked })}
              />
              Read-only
            </label>
            <button
              type="button"
              class="icon"
              aria-label={`Remove mount ${i + 1}`}
              onClick={() => setRows((rs) => rs.filter((x) => x.key !== r.key))}
            >
              ×
            </button>
            {err ? (
              <div id={id + "-error"} class="field-error mount-error">
                <ErrorText error={err} />
              </div>
            ) : null}
          </div>
        );
      })}
      {ws.length > 0 && (
        <button
          type="button"
          id="add-mount"
          onClick={() =>
            setRows((rs) => [
              ...rs,
              {
                key: ++rowSeq,
                workspaceId: ws[0].id,
                path: rs.length === 0 ? "/workspace" : "/workspace/" + ws[0].slug,
                readOnly: false,
              },
            ])
          }
        >
          Add mount
        </button>
      )}
      {errAt("mounts") ? <ErrorText error={errAt("mounts")} /> : null}
    </fieldset>
  );
}

/** num sends a number as one, and anything else as typed, for the API to name. */
export const num = (v: string): number | string => (/^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v);

export function toMounts(rows: MountRow[]) {
  return rows.map((r) => ({ workspaceId: r.workspaceId, path: r.path.trim(), readOnly: r.readOnly }));
}

function CreateSandbox(props: { onClose: () => void; onCreated: (s: Sandbox) => void }) {
  const s = useStore(session);
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [workspaces, setWorkspaces] = useState<WorkspaceRef[] | null>(null);
  const [name, setName] = useState("");
  const [template, setTemplate] = useState("");
  const [rows, setRows] = useState<MountRow[]>([]);
  const [vcpus, setVcpus] = useState("");
  const [memory, setMemory] = useState("");
  const [disk, setDisk] = useState("");
  const [pids, setPids] = useState("");
  const [network, setNetwork] = useState("bridge");
  const [idle, setIdle] = useState("");
  const [busy, setBusy] = useState(false);
  const errs = useFieldErrors();

  useEffect(() => {
    api
      .get<Template[]>("/v1/templates")
      .then((r) => {
        setTemplates(r.data);
        if (r.data.length) setTemplate((t) => t || r.data[0].name);
      })
      .catch(showError);
    mountable(isAdmin(s)).then(setWorkspaces).catch(showError);
  }, []);

  const tmpl = (templates || []).find((t) => t.name === template);
  const submit = async (e: Event) => {
    e.preventDefault();
    errs.clear();
    const body: Record<string, unknown> = { template, network, mounts: toMounts(rows) };
    if (name.trim()) body.name = name.trim();
    const res: Record<string, unknown> = {};
    if (vcpus.trim()) res.vcpus = num(vcpus);
    if (memory.trim()) res.memory = memory.trim();
    if (disk.trim()) res.disk = disk.trim();
    if (pids.trim()) res.pids = num(pids);
    if (Object.keys(res).length) body.resources = res;
    if (idle.trim()) body.idleTimeout = num(idle);
    setBusy(true);
    try {
      const r = await api.post<Sandbox>("/v1/sandboxes", body);
      showInfo(`Sandbox ${r.data.name} created`);
      props.onCreated(r.data);
    } catch (x) {
      errs.set(fieldOf(x, sandboxPaths, sandboxRules), x);
      setBusy(false);
    }
  };
  // An error about a field the form cannot place (e.g. a mount row whose
  // path was edited since) is shown at the top rather than lost.
  const placed = (k: string | null) => {
    if (k === null) return false;
    // The request's mounts are the rows in order (toMounts), so a mount's
    // index is its row's, unless a row was removed since.
    if (k.startsWith("mounts[")) return Number(k.slice(7, -1)) < rows.length;
    if (k.startsWith("mount:")) return rows.some((r) => "mount:" + r.path === k);
    if (k.startsWith("mountws:"))
      return rows.some((r) => (workspaces || []).some((w) => w.id === r.workspaceId && "mountws:" + w.slug === k));
    return true;
  };
  const topErr = placed(errs.key()) ? null : errs.err();
  return (
    <Dialog title="New sandbox" onClose={props.onClose} wide>
      <form class="create-sandbox" onSubmit={submit} noValidate>
        <div class="dialog-body">
          {topErr ? (
            <div class="form-error">
              <ErrorText error={topErr} />
            </div>
          ) : null}
          <div class="grid2">
            <Field id="sbx-name" label="Name" hint="Optional: lowercase letters, digits and '-'" err={errs.at("name")}>
              <input
                id="sbx-name"
                value={name}
                spellcheck={false}
                autocomplete="off"
                {...invalid("sbx-name", errs.at("name"))}
                onInput={(e) => setName((e.target as HTMLInputElement).value)}
              />
            </Field>
            <Field id="sbx-template" label="Template" hint={tmpl ? tmpl.description : undefined} err={errs.at("template")}>
              <select
                id="sbx-template"
                value={template}
                {...invalid("sbx-template", errs.at("template"))}
                onChange={(e) => setTemplate((e.target as HTMLSelectElement).value)}
              >
                {templates === null && <option value="">Loading…</option>}
                {(templates || []).map((t) => (
                  <option key={t.name} value={t.name}>
                    {t.name}
                    {t.ready ? "" : " (image is built on first use)"}
                  </option>
                ))}
              </select>
            </Field>
          </div>
          <MountsEditor rows={rows} setRows={setRows} workspaces={workspaces} errAt={errs.at} />
          <fieldset>
            <legend>Resources</legend>
            <div class="grid4">
              <Field id="sbx-vcpus" label="vCPUs" err={errs.at("vcpus")}>
                <input
                  id="sbx-vcpus"
                  inputMode="decimal"
                  placeholder={tmpl ? String(tmpl.resources.vcpus || "") : ""}
                  value={vcpus}
                  {...invalid("sbx-vcpus", errs.at("vcpus"))}
                  onInput={(e) => setVcpus((e.target as HTMLInputElement).value)}
                />
              </Field>
              <Field id="sbx-memory" label="Memory" err={errs.at("memory")}>
                <input
                  id="sbx-memory"
                  placeholder={tmpl ? tmpl.resources.memory : "512MiB"}
                  value={memory}
                  {...invalid("sbx-memory", errs.at("memory"))}
                  onInput={(e) => setMemory((e.target as HTMLInputElement).value)}
                />
              </Field>
              <Field id="sbx-disk" label="Disk" err={errs.at("disk")}>
                <input
                  id="sbx-disk"
                  placeholder={tmpl ? tmpl.resources.disk : ""}
                  value={disk}
                  {...invalid("sbx-disk", errs.at("disk"))}
                  onInput={(e) => setDisk((e.target as HTMLInputElement).value)}
                />
              </Field>
              <Field id="sbx-pids" label="Processes" err={errs.at("pids")}>
                <input
                  id="sbx-pids"
                  inputMode="numeric"
                  placeholder={tmpl ? String(tmpl.resources.pids || "") : ""}
                  value={pids}
                  {...invalid("sbx-pids", errs.at("pids"))}
                  onInput={(e) => setPids((e.target as HTMLInputElement).value)}
                />
              </Field>
            </div>
          </fieldset>
          <div class="grid2">
            <Field
              id="sbx-network"
              label="Network"
              hint="bridge: isolated with internet; none: no network; shared: reaches other shared sandboxes and the host"
              err={errs.at("network")}
            >
              <select
                id="sbx-network"
                value={network}
                {...invalid("sbx-network", errs.at("network"))}
                onChange={(e) => setNetwork((e.target as HTMLSelectElement).value)}
              >
                <option value="bridge">bridge</option>
                <option value="none">none</option>
                <option value="shared">shared</option>
              </select>
            </Field>
            <Field id="sbx-idle" label="Idle timeout (seconds)" hint="Pause after this long without activity; empty or 0: never" err={errs.at("idleTimeout")}>
              <input
                id="sbx-idle"
                inputMode="numeric"
                value={idle}
                {...invalid("sbx-idle", errs.at("idleTimeout"))}
                onInput={(e) => setIdle((e.target as HTMLInputElement).value)}
              />
            </Field>
          </div>
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" id="create-sandbox" disabled={busy || !template}>
            {busy ? "Creating…" : "Create"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
