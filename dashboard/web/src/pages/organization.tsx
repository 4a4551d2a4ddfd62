// Organization (admins): members and their roles, and API keys — a created
// key is shown once, with a copy button, and never again.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api";
import { Confirm, Field } from "../form";
import { listAll } from "../list";
import { isAdmin, session } from "../session";
import { useStore } from "../store";
import type { ApiKey, Member } from "../types";
import { Dialog, ErrorText, showError, showInfo, when } from "../ui";

export function Organization() {
  const s = useStore(session);
  const [members, setMembers] = useState<Member[] | null>(null);
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const loadMembers = () => listAll<Member>("/v1/members").then(setMembers).catch(showError);
  const loadKeys = () => listAll<ApiKey>("/v1/api-keys?all=true").then(setKeys).catch(showError);
  const admin = isAdmin(s);
  useEffect(() => {
    if (!admin) return;
    loadMembers();
    loadKeys();
  }, [admin]);
  if (!admin) {
    return (
      <section>
        <h1>Organization</h1>
        <p>Only organization admins manage members and API keys.</p>
      </section>
    );
  }
  return (
    <section class="organization">
      <h1>Organization {s?.org.name ? <span class="hint">{s.org.name}</span> : null}</h1>
      <Members members={members} me={s!.user.id} reload={loadMembers} />
      <Keys keys={keys} members={members || []} reload={loadKeys} />
    </section>
  );
}

function Members(props: { members: Member[] | null; me: string; reload: () => void }) {
  const [adding, setAdding] = useState(false);
  const [roleChange, setRoleChange] = useState<{ m: Member; role: string } | null>(null);
  const [removing, setRemoving] = useState<Member | null>(null);
  return (
    <section aria-labelledby="members-h" class="card block">
      <div class="row">
        <h2 id="members-h">Members</h2>
        <span class="spacer" />
        <button type="button" class="primary" id="add-member" onClick={() => setAdding(true)}>
          Add member
        </button>
      </div>
      {props.members === null ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <div class="table-wrap">
          <table class="members">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="hide-narrow">Email</th>
                <th scope="col">Role</th>
                <th scope="col" class="hide-narrow">Since</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {props.members.map((m) => (
                <tr key={m.id} data-member={m.name}>
                  <td>
                    {m.name}
                    {m.id === props.me ? <span class="hint"> (you)</span> : null}
                  </td>
                  <td class="hide-narrow">{m.email}</td>
                  <td>
                    <select
                      class="member-role"
                      aria-label={`Role of ${m.name}`}
                      value={m.role}
                      onChange={(e) => {
                        const sel = e.target as HTMLSelectElement;
                        const role = sel.value;
                        sel.value = m.role; // stays until confirmed
                        setRoleChange({ m, role });
                      }}
                    >
                      <option value="admin">admin</option>
                      <option value="member">member</option>
                    </select>
                  </td>
                  <td class="hide-narrow">{when(m.createdAt)}</td>
                  <td>
                    <button type="button" class="danger" aria-label={`Remove ${m.name}`} data-action="remove" onClick={() => setRemoving(m)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {adding && <AddMember onClose={() => setAdding(false)} onAdded={props.reload} />}
      {roleChange && (
        <Confirm
          title={`Make ${roleChange.m.name} ${roleChange.role === "admin" ? "an admin" : "a member"}?`}
          action="Change role"
          onClose={() => setRoleChange(null)}
          onConfirm={async () => {
            await api.patch(`/v1/members/${encodeURIComponent(roleChange.m.id)}`, { role: roleChange.role });
            showInfo(`${roleChange.m.name} is now ${roleChange.role}`);
            props.reload();
          }}
        >
          <p>
            {roleChange.role === "admin"
              ? "Admins see and manage everything in the organization: every workspace, sandbox and agent, members and keys."
              : "Members see their own sandboxes and agents and the workspaces granted to them. Their open sessions and keys lose admin rights on the next request."}
          </p>
        </Confirm>
      )}
      {removing && (
        <Confirm
          title={`Remove ${removing.name}?`}
          action="Remove"
          onClose={() => setRemoving(null)}
          onConfirm={async () => {
            await api.del(`/v1/members/${encodeURIComponent(removing.id)}`);
            showInfo(`${removing.name} removed`);
            props.reload();
          }}
        >
          <p>Their API keys and sessions stop working at once.</p>
        </Confirm>
      )}
    </section>
  );
}

function AddMember(props: { onClose: () => void; onAdded: () => void }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title="Add member" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          try {
            const r = await api.post<Member>("/v1/members", { name: name.trim(), email: email.trim(), role });
            showInfo(`${r.data.name} added; create an API key for them below`);
            props.onAdded();
            props.onClose();
          } catch (x) {
            setErr(x);
            setBusy(false);
          }
        }}
      >
        <div class="dialog-body">
          <Field id="member-name" label="Name">
            <input id="member-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </Field>
          <Field id="member-email" label="Email (optional)">
            <input id="member-email" type="email" value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
          </Field>
          <Field id="member-role" label="Role">
            <select id="member-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value)}>
              <option value="member">member</option>
              <option value="admin">admin</option>
            </select>
          </Field>
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" id="save-member" disabled={busy}>
            Add
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The scopes a key can be given, by family (auth/scopes.go). */
const scopeGroups: { family: string; scopes: string[] }[] = [
  { family: "Sandboxes", scopes: ["sandbox:create", "sandbox:read", "sandbox:write", "sandbox:*"] },
  { family: "Agents", scopes: ["agent:run", "agent:read", "agent:write", "agent:*"] },
  { family: "Files", scopes: ["files:read", "files:write", "files:*"] },
  { family: "Organization", scopes: ["org:read", "org:write", "org:members", "org:*"] },
  { family: "Everything", scopes: ["admin:*", "*"] },
];

function Keys(props: { keys: ApiKey[] | null; members: Member[]; reload: () => void }) {
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const owner = (id: string) => props.members.find((m) => m.id === id)?.name || id;
  return (
    <section aria-labelledby="keys-h" class="card block">
      <div class="row">
        <h2 id="keys-h">API keys</h2>
        <span class="spacer" />
        <button type="button" class="primary" id="new-key" onClick={() => setCreating(true)}>
          Create key
        </button>
      </div>
      {props.keys === null ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <div class="table-wrap">
          <table class="keys">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col" class="hide-narrow">Owner</th>
                <th scope="col" class="hide-narrow">Scopes</th>
                <th scope="col">Status</th>
                <th scope="col" class="hide-narrow">Last used</th>
                <th scope="col" class="hide-narrow">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {props.keys.map((k) => (
                <tr key={k.id} data-key={k.name} data-key-id={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.keyPrefix}…</code>
                  </td>
                  <td class="hide-narrow">{owner(k.ownerUserId)}</td>
                  <td class="hide-narrow wrap">{k.scopes.join(" ")}</td>
                  <td>
                    <span class={"status status-" + k.status}>{k.status}</span>
                  </td>
                  <td class="hide-narrow">{k.lastUsedAt ? when(k.lastUsedAt) : "never"}</td>
                  <td class="hide-narrow">{k.expiresAt ? when(k.expiresAt) : "never"}</td>
                  <td>
                    {k.status === "active" && (
                      <button type="button" class="danger" data-action="revoke" aria-label={`Revoke ${k.name}`} onClick={() => setRevoking(k)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <CreateKey
          members={props.members}
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
            props.reload();
          }}
        />
      )}
      {created && <ShowKey k={created} onClose={() => setCreated(null)} />}
      {revoking && (
        <Confirm
          title={`Revoke ${revoking.name}?`}
          action="Revoke"
          onClose={() => setRevoking(null)}
          onConfirm={async () => {
            await api.del(`/v1/api-keys/${encodeURIComponent(revoking.id)}`);
            showInfo(`Key ${revoking.name} revoked`);
            props.reload();
          }}
        >
          <p>Programs and sessions using this key get 401 from their next request. This cannot be undone.</p>
        </Confirm>
      )}
    </section>
  );
}

function CreateKey(props: { members: Member[]; onClose: () => void; onCreated: (k: ApiKey) => void }) {
  const s = useStore(session);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [owner, setOwner] = useState(s ? s.user.id : "");
  const [err, setErr] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (sc: string, on: boolean) => setScopes((l) => (on ? [...l, sc] : l.filter((x) => x !== sc)));
  return (
    <Dialog title="Create API key" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(null);
          const body: Record<string, unknown> = { name: name.trim(), scopes };
          if (expires) body.expiresIn = expires;
          if (owner && s && owner !== s.user.id) body.userId = owner;
          try {
            const r = await api.post<ApiKey>("/v1/api-keys", body);
            props.onCreated(r.data);
          } catch (x) {
            setErr(x);
            setBusy(false);
          }
        }}
      >
        <div class="dialog-body">
          <Field id="key-name" label="Name">
            <input id="key-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </Field>
          <Field id="key-owner" label="For member">
            <select id="key-owner" value={owner} onChange={(e) => setOwner((e.target as HTMLSelectElement).value)}>
              {props.members.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name} ({m.role})
                </option>
              ))}
            </select>
          </Field>
          <fieldset class="scopes">
            <legend>Scopes</legend>
            <p class="hint">None ticked: every scope the owner's role allows. A key never grants more than its owner's role.</p>
            {scopeGroups.map((g) => (
              <div class="scope-group" key={g.family}>
                <span class="scope-family">{g.family}</span>
                {g.scopes.map((sc) => (
                  <label class="check" key={sc}>
                    <input type="checkbox" value={sc} data-scope={sc} checked={scopes.includes(sc)} onChange={(e) => toggle(sc, (e.target as HTMLInputElement).checked)} />
                    <code>{sc}</code>
                  </label>
                ))}
              </div>
            ))}
          </fieldset>
          <Field id="key-expires" label="Expires">
            <select id="key-expires" value={expires} onChange={(e) => setExpires((e.target as HTMLSelectElement).value)}>
              <option value="">never (or when the key creating it does)</option>
              <option value="30d">in 30 days</option>
              <option value="90d">in 90 days</option>
              <option value="1y">in a year</option>
            </select>
          </Field>
          <ErrorText error={err} />
        </div>
        <div class="dialog-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" id="create-key" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** ShowKey shows a new key's secret, the one time the API gives it. */
function ShowKey({ k, onClose }: { k: ApiKey; onClose: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(k.key || "");
      setCopied(true);
    } catch {
      // No clipboard permission: select the text for Ctrl+C instead.
      input.current?.select();
      showInfo("Press Ctrl+C (⌘C) to copy the selected key");
    }
  };
  return (
    <Dialog title={`Key ${k.name} created`} onClose={onClose}>
      <div class="dialog-body">
        <p class="warning" role="alert">
          Copy this key now: it is shown only once. berth keeps only its hash and cannot show it again.
        </p>
        <label for="new-key-secret">API key</label>
        <div class="row">
          <input id="new-key-secret" class="grow mono" ref={input} readOnly value={k.key} onFocus={(e) => (e.target as HTMLInputElement).select()} />
          <button type="button" id="copy-key" onClick={copy}>
            {copied ? "Copied" : "Copy"}
          </button>
        </div>
        <p class="hint">Scopes: {k.scopes.join(" ")}</p>
      </div>
      <div class="dialog-actions">
        <button type="button" class="primary" id="key-done" onClick={onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}
