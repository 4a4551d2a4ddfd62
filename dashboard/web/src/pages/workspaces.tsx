// Workspaces: the org's and the user's personal ones, with storage bars;
// create, rename, delete (usage shown, force confirmed), usage, and for
// admins quota and access grants.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api";
import { Link } from "../router";
import { isAdmin, session } from "../session";
import { useStore } from "../store";
import { bytes, Dialog, ErrorText, Meter, parseBytes, showInfo } from "../ui";

export interface Workspace {
  id: string;
  slug: string;
  name: string;
  isPersonal: boolean;
  ownerUserId: string;
  sizeBytes: number;
  quotaBytes: number | null;
  createdAt?: string;
  lastAccessedAt?: string | null;
}

interface Storage {
  usedBytes: number;
  quotaBytes: number | null;
  unlimited: boolean;
}

interface Usage {
  workspaceId: string;
  workspaceName: string;
  inUse: boolean;
  counts: { mountedSandboxes: number; agents: number };
  mountedSandboxes: { sandboxId: string; sandboxName: string; sandboxStatus: string; mountPath: string; readOnly: boolean }[];
  agents: { agentId: string; slug: string; executionMode: string; sandboxId: string }[];
}

interface Member {
  id: string;
  name: string;
  email: string;
  role: string;
}

type DialogState =
  | { kind: "create" }
  | { kind: "rename"; ws: Workspace }
  | { kind: "delete"; ws: Workspace }
  | { kind: "usage"; ws: Workspace }
  | { kind: "quota"; ws: Workspace }
  | { kind: "access"; ws: Workspace }
  | null;

export function Workspaces() {
  const s = useStore(session);
  const admin = isAdmin(s);
  const [list, setList] = useState<Workspace[] | null>(null);
  const [storage, setStorage] = useState<Storage | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [dialog, setDialog] = useState<DialogState>(null);

  const load = async () => {
    try {
      const r = await api.get<{ workspaces: Workspace[]; storage: Storage }>("/v1/workspaces");
      setList(r.data.workspaces || []);
      setStorage(r.data.storage || null);
      setErr(null);
    } catch (e) {
      setErr(e);
    }
  };
  useEffect(() => {
    load();
  }, []);

  const done = (changed: boolean) => {
    setDialog(null);
    if (changed) load();
  };

  const org = (list || []).filter((w) => !w.isPersonal);
  const personal = (list || []).filter((w) => w.isPersonal);

  const card = (w: Workspace) => (
    <li key={w.id} class="card ws-card" data-slug={w.slug}>
      <div class="row">
        <h3 class="ws-name">
          <Link href={`/workspaces/${encodeURIComponent(w.id)}/files`}>{w.name}</Link>
        </h3>
        <span class="spacer" />
        <span class="badge">{w.isPersonal ? "personal" : "org"}</span>
      </div>
      <p class="hint">
        <code>{w.slug}</code>
      </p>
      <Meter used={w.sizeBytes} total={w.quotaBytes ?? -1} label={`Storage used by ${w.name}`} />
      <div class="row actions">
        <Link class="button" href={`/workspaces/${encodeURIComponent(w.id)}/files`}>
          Browse
        </Link>
        <button type="button" onClick={() => setDialog({ kind: "usage", ws: w })} aria-label={`Usage of ${w.name}`}>
          Usage
        </button>
        <button type="button" onClick={() => setDialog({ kind: "rename", ws: w })} aria-label={`Rename ${w.name}`}>
          Rename
        </button>
        {admin && (
          <button type="button" onClick={() => setDialog({ kind: "quota", ws: w })} aria-label={`Quota of ${w.name}`}>
            Quota
          </button>
        )}
        {admin && !w.isPersonal && (
          <button type="button" onClick={() => setDialog({ kind: "access", ws: w })} aria-label={`Access to ${w.name}`}>
            Access
          </button>
        )}
        <button type="button" class="danger" onClick={() => setDialog({ kind: "delete", ws: w })} aria-label={`Delete ${w.name}`}>
          Delete
        </button>
      </div>
    </li>
  );

  return (
    <section>
      <div class="row">
        <h1>Workspaces</h1>
        <span class="spacer" />
        <button type="button" class="primary" id="create-ws" onClick={() => setDialog({ kind: "create" })}>
          New workspace
        </button>
      </div>
      {storage && (
        <div class="card org-storage">
          <strong>Organization storage</strong>
          <Meter used={storage.usedBytes} total={storage.unlimited ? -1 : storage.quotaBytes ?? -1} label="Organization storage" />
        </div>
      )}
      <ErrorText error={err} />
      {list === null && !err && <p aria-busy="true">Loading…</p>}
      {list !== null && (
        <>
          <h2>Organization workspaces</h2>
          {org.length ? <ul class="cards" id="org-workspaces">{org.map(card)}</ul> : <p class="hint">None yet.</p>}
          <h2>Personal workspaces</h2>
          {personal.length ? (
            <ul class="cards" id="personal-workspaces">
              {personal.map(card)}
            </ul>
          ) : (
            <p class="hint">None yet.</p>
          )}
        </>
      )}
      {dialog?.kind === "create" && <CreateDialog admin={admin} close={done} />}
      {dialog?.kind === "rename" && <RenameDialog ws={dialog.ws} close={done} />}
      {dialog?.kind === "delete" && <DeleteDialog ws={dialog.ws} close={done} />}
      {dialog?.kind === "usage" && <UsageDialog ws={dialog.ws} close={() => done(false)} />}
      {dialog?.kind === "quota" && <QuotaDialog ws={dialog.ws} close={done} />}
      {dialog?.kind === "access" && <AccessDialog ws={dialog.ws} close={done} />}
    </section>
  );
}

function CreateDialog({ admin, close }: { admin: boolean; close: (changed: boolean) => void }) {
  const [name, setName] = useState("");
  const [personal, setPersonal] = useState(!admin);
  const [quota, setQuota] = useState("");
  const [err, setErr] = useState<unknown>(null);
  return (
    <Dialog title="New workspace" onClose={() => close(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const body: Record<string, unknown> = { name, personal };
          if (quota.trim()) {
            const q = parseBytes(quota);
            if (isNaN(q)) {
              setErr(new ApiError(0, "invalid", "Quota must be a size such as 10G or 500M", ""));
              return;
            }
            body.quotaBytes = q;
          }
          try {
            await api.post("/v1/workspaces", body);
            showInfo(`Created workspace ${name}`);
            close(true);
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <div class="dialog-body">
          <div class="field">
            <label for="ws-name">Name</label>
            <input id="ws-name" required autoFocus value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <label class="check">
            <input id="ws-personal" type="checkbox" checked={personal} onChange={(e) => setPersonal(e.currentTarget.checked)} />
            Personal (only you can use it)
          </label>
          {admin && (
            <div class="field">
              <label for="ws-quota">Quota (optional, e.g. 10G)</label>
              <input id="ws-quota" value={quota} onInput={(e) => setQuota(e.currentTarget.value)} />
            </div>
          )}
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={() => close(false)}>
            Cancel
          </button>
          <button type="submit" class="primary" id="ws-create">
            Create
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RenameDialog({ ws, close }: { ws: Workspace; close: (changed: boolean) => void }) {
  const [name, setName] = useState(ws.name);
  const [err, setErr] = useState<unknown>(null);
  return (
    <Dialog title={`Rename ${ws.name}`} onClose={() => close(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await api.patch(`/v1/workspaces/${encodeURIComponent(ws.id)}`, { name });
            close(true);
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <div class="dialog-body field">
          <label for="ws-rename">New name</label>
          <input id="ws-rename" required autoFocus value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={() => close(false)}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Rename
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function useUsage(ws: Workspace) {
  const [usage, setUsage] = useState<Usage | null>(null);
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    api
      .get<Usage>(`/v1/workspaces/${encodeURIComponent(ws.id)}/usage`)
      .then((r) => setUsage(r.data))
      .catch(setErr);
  }, [ws.id]);
  return { usage, err };
}

function UsageList({ usage }: { usage: Usage }) {
  if (!usage.inUse) return <p>Not used by any sandbox or agent.</p>;
  return (
    <>
      {usage.mountedSandboxes.length > 0 && (
        <>
          <h3>Mounted in sandboxes</h3>
          <ul class="usage-list">
            {usage.mountedSandboxes.map((m) => (
              <li key={m.sandboxId + m.mountPath}>
                <strong>{m.sandboxName}</strong> ({m.sandboxStatus}) at <code>{m.mountPath}</code>
                {m.readOnly ? " read-only" : ""}
              </li>
            ))}
          </ul>
        </>
      )}
      {usage.agents.length > 0 && (
        <>
          <h3>Used by agents</h3>
          <ul class="usage-list">
            {usage.agents.map((a) => (
              <li key={a.agentId}>
                <strong>{a.slug}</strong> ({a.executionMode})
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}

function UsageDialog({ ws, close }: { ws: Workspace; close: () => void }) {
  const { usage, err } = useUsage(ws);
  return (
    <Dialog title={`Usage of ${ws.name}`} onClose={close}>
      <div class="dialog-body">
        <p>
          {bytes(ws.sizeBytes)} used{ws.quotaBytes != null ? ` of ${bytes(ws.quotaBytes)}` : ""}.
        </p>
        {usage ? <UsageList usage={usage} /> : !err && <p aria-busy="true">Loading…</p>}
        <ErrorText error={err} />
      </div>
      <div class="dialog-actions">
        <button type="button" onClick={close}>
          Close
        </button>
      </div>
    </Dialog>
  );
}

function DeleteDialog({ ws, close }: { ws: Workspace; close: (changed: boolean) => void }) {
  const { usage, err: uerr } = useUsage(ws);
  const [confirm, setConfirm] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const inUse = !!usage?.inUse;
  return (
    <Dialog title={`Delete ${ws.name}`} onClose={() => close(false)}>
      <div class="dialog-body">
        <p>
          This deletes the workspace and all its files ({bytes(ws.sizeBytes)}). It cannot be undone.
        </p>
        {usage ? <UsageList usage={usage} /> : !uerr && <p aria-busy="true">Checking usage…</p>}
        <ErrorText error={uerr} />
        {inUse && (
          <div class="field">
            <label for="ws-force">
              It is in use. Type <code>{ws.slug}</code> to delete it anyway (force): sandboxes lose the mount.
            </label>
            <input id="ws-force" value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
          </div>
        )}
        <ErrorText error={err} />
      </div>
      <div class="dialog-actions">
        <button type="button" onClick={() => close(false)}>
          Cancel
        </button>
        <button
          type="button"
          class="danger"
          id="ws-delete-confirm"
          disabled={!usage || (inUse && confirm !== ws.slug)}
          onClick={async () => {
            try {
              await api.del(`/v1/workspaces/${encodeURIComponent(ws.id)}${inUse ? "?force=true" : ""}`);
              showInfo(`Deleted ${ws.name}`);
              close(true);
            } catch (x) {
              setErr(x);
            }
          }}
        >
          {inUse ? "Force delete" : "Delete"}
        </button>
      </div>
    </Dialog>
  );
}

function QuotaDialog({ ws, close }: { ws: Workspace; close: (changed: boolean) => void }) {
  const [quota, setQuota] = useState(ws.quotaBytes != null ? String(ws.quotaBytes) : "");
  const [err, setErr] = useState<unknown>(null);
  return (
    <Dialog title={`Quota of ${ws.name}`} onClose={() => close(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          let q: number | null = null;
          if (quota.trim()) {
            q = parseBytes(quota);
            if (isNaN(q)) {
              setErr(new ApiError(0, "invalid", "Quota must be a size such as 10G or 500M, or empty for none", ""));
              return;
            }
          }
          try {
            await api.patch(`/v1/workspaces/${encodeURIComponent(ws.id)}`, { quotaBytes: q });
            close(true);
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <div class="dialog-body field">
          <label for="ws-quota-edit">Quota (bytes or 10G, 500M; empty: no quota)</label>
          <input id="ws-quota-edit" autoFocus value={quota} onInput={(e) => setQuota(e.currentTarget.value)} />
          <p class="hint">Currently {bytes(ws.sizeBytes)} used.</p>
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={() => close(false)}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function AccessDialog({ ws, close }: { ws: Workspace; close: (changed: boolean) => void }) {
  const [members, setMembers] = useState<Member[] | null>(null);
  const [granted, setGranted] = useState<Set<string>>(new Set());
  const [err, setErr] = useState<unknown>(null);
  useEffect(() => {
    (async () => {
      try {
        const all: Member[] = [];
        let cursor = "";
        for (;;) {
          const r = await api.get<Member[]>(`/v1/members?limit=500${cursor ? "&cursor=" + encodeURIComponent(cursor) : ""}`);
          all.push(...r.data);
          if (!r.meta.hasMore) break;
          cursor = r.meta.nextCursor as string;
        }
        const a = await api.get<{ userIds: string[] }>(`/v1/workspaces/${encodeURIComponent(ws.id)}/access`);
        setMembers(all);
        setGranted(new Set(a.data.userIds || []));
      } catch (x) {
        setErr(x);
      }
    })();
  }, [ws.id]);
  return (
    <Dialog title={`Access to ${ws.name}`} onClose={() => close(false)}>
      <div class="dialog-body">
        <p class="hint">Members granted this workspace may browse and mount it. Admins always may.</p>
        {members === null && !err && <p aria-busy="true">Loading…</p>}
        {members && (
          <ul class="access-list">
            {members.map((m) => (
              <li key={m.id}>
                <label class="check">
                  <input
                    type="checkbox"
                    aria-label={`Grant ${m.name}`}
                    checked={granted.has(m.id) || m.role === "admin"}
                    disabled={m.role === "admin"}
                    onChange={(e) => {
                      const n = new Set(granted);
                      if (e.currentTarget.checked) n.add(m.id);
                      else n.delete(m.id);
                      setGranted(n);
                    }}
                  />
                  {m.name} <span class="hint">{m.email} · {m.role}</span>
                </label>
              </li>
            ))}
          </ul>
        )}
        <ErrorText error={err} />
      </div>
      <div class="dialog-actions">
        <button type="button" onClick={() => close(false)}>
          Cancel
        </button>
        <button
          type="button"
          class="primary"
          disabled={!members}
          onClick={async () => {
            try {
              await api.put(`/v1/workspaces/${encodeURIComponent(ws.id)}/access`, { userIds: [...granted] });
              showInfo("Access saved");
              close(true);
            } catch (x) {
              setErr(x);
            }
          }}
        >
          Save
        </button>
      </div>
    </Dialog>
  );
}
