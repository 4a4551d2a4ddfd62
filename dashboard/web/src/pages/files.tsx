// The file browser of one workspace: a virtualised, server-sorted listing
// that pages through directories of any size, uploads (button, folder,
// drag and drop) with progress and cancel, downloads and archives, the usual
// operations, previews, an editor that refuses to overwrite a newer version,
// and live updates from the watch stream.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";
import { api, ApiError, encPath, errorFrom, stream, upload, type UploadItem } from "../api";
import { Link, navigate } from "../router";
import { bytes, Dialog, ErrorText, showError, showInfo, when } from "../ui";
import type { Workspace } from "./workspaces";

export interface Entry {
  id: string;
  name: string;
  path: string;
  type: "file" | "directory" | "symlink";
  size: number;
  mtime: string;
  mimeType: string | null;
}

type SortKey = "name" | "size" | "mtime";

const PAGE = 500;
const ROW = 34; // px, fixed row height for the virtual list
const base = (ws: string) => `/v1/workspaces/${encodeURIComponent(ws)}`;
const filesURL = (ws: string, dir: string) => `${base(ws)}/files${dir === "/" ? "" : encPath(dir)}`;
const directURL = (ws: string, id: string, extra = "") => `${base(ws)}/direct?id=${encodeURIComponent(id)}${extra}`;
const join = (dir: string, name: string) => (dir === "/" ? "/" + name : dir + "/" + name);
const parentOf = (p: string) => {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
};
export const filesPage = (ws: string, dir: string) =>
  `/workspaces/${encodeURIComponent(ws)}/files${dir === "/" ? "" : encPath(dir)}`;

function compare(a: Entry, b: Entry, key: SortKey, desc: boolean): number {
  let c = 0;
  if (key === "size") c = (a.type === "directory" ? 0 : a.size) - (b.type === "directory" ? 0 : b.size);
  else if (key === "mtime") c = Date.parse(a.mtime) - Date.parse(b.mtime);
  if (c === 0) c = a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  return desc ? -c : c;
}

type DialogState =
  | { kind: "new"; type: "file" | "directory" }
  | { kind: "rename"; entry: Entry }
  | { kind: "pick"; op: "move" | "copy"; ids: string[] }
  | { kind: "delete"; ids: string[] }
  | { kind: "preview"; entry: Entry }
  | { kind: "download"; entry: Entry }
  | null;

export function Files({ ws, path }: { ws: string; path: string }) {
  const dir = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const [workspace, setWorkspace] = useState<Workspace | null>(null);
  const [entries, setEntries] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [listError, setListError] = useState<unknown>(null);
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: "name", desc: false });
  const [hidden, setHidden] = useState(false);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [dialog, setDialog] = useState<DialogState>(null);
  const [dragging, setDragging] = useState(false);
  const [live, setLive] = useState(false);
  const gen = useRef(0); // listing generation: answers of an older listing are dropped
  const loadingMore = useRef(false);

  useEffect(() => {
    api
      .get<Workspace>(base(ws))
      .then((r) => setWorkspace(r.data))
      .catch(showError);
  }, [ws]);

  const query = (c: string | null) => {
    const q = new URLSearchParams({ limit: String(PAGE), sort: sort.key, order: sort.desc ? "desc" : "asc" });
    if (hidden) q.set("showHidden", "true");
    if (c) q.set("cursor", c);
    return `${filesURL(ws, dir)}?${q}`;
  };

  const reload = async () => {
    const g = ++gen.current;
    setLoading(true);
    setListError(null);
    try {
      const r = await api.get<Entry[]>(query(null));
      if (g !== gen.current) return;
      setEntries(r.data);
      setCursor(r.meta.hasMore ? (r.meta.nextCursor as string) : null);
    } catch (e) {
      if (g !== gen.current) return;
      setEntries([]);
      setCursor(null);
      setListError(e);
    } finally {
      if (g === gen.current) setLoading(false);
    }
  };

  const loadMore = async () => {
    if (!cursor || loadingMore.current) return;
    loadingMore.current = true;
    const g = gen.current;
    try {
      const r = await api.get<Entry[]>(query(cursor));
      if (g !== gen.current) return;
      setEntries((es) => {
        const seen = new Set(es.map((e) => e.id));
        return es.concat(r.data.filter((e) => !seen.has(e.id)));
      });
      setCursor(r.meta.hasMore ? (r.meta.nextCursor as string) : null);
    } catch (e) {
      showError(e);
    } finally {
      loadingMore.current = false;
    }
  };

  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  useEffect(() => {
    setSelected(new Set());
    reload();
  }, [ws, dir, sort.key, sort.desc, hidden]);

  // Live updates: the watch stream of this directory. Changes are applied
  // in place (a 100,000-entry listing is not re-read for one new file);
  // an overflow or a burst re-lists.
  const state = useRef({ entries, cursor, sort, hidden });
  state.current = { entries, cursor, sort, hidden };
  useEffect(() => {
    const ctl = new AbortController();
    let pending = new Map<string, string>();
    let timer = 0;
    const flush = async () => {
      timer = 0;
      const batch = pending;
      pending = new Map();
      if (batch.has("*") || batch.size > 50) {
        reloadRef.current();
        return;
      }
      for (const [p, type] of batch) {
        if (type === "remove") {
          setEntries((es) => es.filter((e) => e.id !== p));
          continue;
        }
        try {
          const r = await api.get<Entry>(`${base(ws)}/info${encPath(p)}`);
          upsert(r.data);
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) setEntries((es) => es.filter((x) => x.id !== p));
        }
      }
    };
    const upsert = (e: Entry) => {
      const { sort: s, hidden: h } = state.current;
      if (!h && e.name.startsWith(".")) return;
      setEntries((es) => {
        const rest = es.filter((x) => x.id !== e.id);
        // Insert where it sorts; past the loaded part it comes with a later page.
        const i = rest.findIndex((x) => compare(e, x, s.key, s.desc) < 0);
        if (i < 0 && state.current.cursor) return rest;
        const out = rest.slice();
        out.splice(i < 0 ? out.length : i, 0, e);
        return out;
      });
    };
    const note = (p: string | undefined, type: string) => {
      if (!p || parentOf(p) !== dir) return;
      pending.set(p, type);
      if (!timer) timer = window.setTimeout(flush, 150);
    };
    const run = async () => {
      try {
        await stream(
          "GET",
          `${base(ws)}/watch?path=${encodeURIComponent(dir)}`,
          (ev) => {
            if (ev.event === "ready") {
              setLive(true);
              return;
            }
            if (ev.event === "overflow") {
              pending.set("*", "overflow");
              if (!timer) timer = window.setTimeout(flush, 150);
              return;
            }
            let d: { type: string; path: string; oldPath?: string };
            try {
              d = JSON.parse(ev.data);
            } catch {
              return;
            }
            if (d.type === "rename") {
              note(d.oldPath, "remove");
              note(d.path, "create");
            } else note(d.path, d.type);
          },
          { signal: ctl.signal },
        );
      } catch (e) {
        // A watch that cannot start (limits) only costs live updates.
        if (!ctl.signal.aborted && !(e instanceof ApiError && e.status === 404)) showError(e);
      } finally {
        setLive(false);
      }
    };
    run();
    return () => {
      ctl.abort();
      if (timer) clearTimeout(timer);
    };
  }, [ws, dir]);

  // Uploads
  const liveRef = useRef(live);
  liveRef.current = live;
  // Without the watch stream, show finished uploads by re-listing.
  const uploads = useUploads(ws, dir, () => {
    if (!liveRef.current) reloadRef.current();
  });

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    const items = await droppedFiles(e.dataTransfer!);
    if (items.length) uploads.add(items);
  };

  const sel = entries.filter((e) => selected.has(e.id));
  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  const allSelected = entries.length > 0 && sel.length === entries.length;

  const open = (e: Entry) => {
    if (e.type === "directory") navigate(filesPage(ws, e.id));
    else setDialog({ kind: "preview", entry: e });
  };

  const crumbs = dir === "/" ? [] : dir.slice(1).split("/");

  return (
    <section
      class={"files" + (dragging ? " dragging" : "")}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes("Files")) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDragging(false);
      }}
      onDrop={onDrop}
      aria-label="File browser"
    >
      <nav class="crumbs" aria-label="Breadcrumbs">
        <ol>
          <li>
            <Link href="/workspaces">Workspaces</Link>
          </li>
          <li>
            <Link href={filesPage(ws, "/")} aria-current={dir === "/" ? "page" : undefined}>
              {workspace ? workspace.name : "…"}
            </Link>
          </li>
          {crumbs.map((c, i) => {
            const p = "/" + crumbs.slice(0, i + 1).join("/");
            return (
              <li key={p}>
                <Link href={filesPage(ws, p)} aria-current={p === dir ? "page" : undefined}>
                  {c}
                </Link>
              </li>
            );
          })}
        </ol>
        <span class={"live" + (live ? " on" : "")} title={live ? "Live updates on" : "Live updates off"}>
          {live ? "● live" : "○ offline"}
        </span>
      </nav>

      <div class="toolbar row" role="toolbar" aria-label="File actions">
        <label class="button" for="upload-files">
          Upload files
        </label>
        <input
          id="upload-files"
          class="visually-hidden"
          type="file"
          multiple
          onChange={(e) => {
            const input = e.currentTarget;
            const items = Array.from(input.files || []).map((f) => ({ file: f, name: f.name }));
            input.value = "";
            if (items.length) uploads.add(items);
          }}
        />
        <label class="button" for="upload-folder">
          Upload folder
        </label>
        <input
          id="upload-folder"
          class="visually-hidden"
          type="file"
          multiple
          {...({ webkitdirectory: "" } as any)}
          onChange={(e) => {
            const input = e.currentTarget;
            const items = Array.from(input.files || []).map((f) => ({
              file: f,
              name: (f as any).webkitRelativePath || f.name,
            }));
            input.value = "";
            if (items.length) uploads.add(items);
          }}
        />
        <button type="button" id="new-folder" onClick={() => setDialog({ kind: "new", type: "directory" })}>
          New folder
        </button>
        <button type="button" id="new-file" onClick={() => setDialog({ kind: "new", type: "file" })}>
          New file
        </button>
        <span class="spacer" />
        <label class="check">
          <input id="show-hidden" type="checkbox" checked={hidden} onChange={(e) => setHidden(e.currentTarget.checked)} />
          Show hidden
        </label>
        <button type="button" onClick={() => reload()} aria-label="Refresh listing">
          ↻
        </button>
      </div>

      {sel.length > 0 && (
        <div class="selbar row" role="toolbar" aria-label="Selection actions">
          <span id="sel-count">{sel.length} selected</span>
          {sel.length === 1 && (
            <button type="button" id="act-rename" onClick={() => setDialog({ kind: "rename", entry: sel[0] })}>
              Rename
            </button>
          )}
          <button type="button" id="act-move" onClick={() => setDialog({ kind: "pick", op: "move", ids: sel.map((e) => e.id) })}>
            Move…
          </button>
          <button type="button" id="act-copy" onClick={() => setDialog({ kind: "pick", op: "copy", ids: sel.map((e) => e.id) })}>
            Copy…
          </button>
          {sel.length === 1 && (
            <button type="button" id="act-download" onClick={() => download(ws, sel[0], setDialog)}>
              Download
            </button>
          )}
          <button type="button" id="act-delete" class="danger" onClick={() => setDialog({ kind: "delete", ids: sel.map((e) => e.id) })}>
            Delete
          </button>
          <button type="button" onClick={() => setSelected(new Set())}>
            Clear selection
          </button>
        </div>
      )}

      <UploadPanel u={uploads} />

      {listError ? (
        <ErrorText error={listError} />
      ) : (
        <Listing
          entries={entries}
          loading={loading}
          hasMore={!!cursor}
          loadMore={loadMore}
          sort={sort}
          setSort={setSort}
          selected={selected}
          toggle={toggle}
          allSelected={allSelected}
          toggleAll={() => setSelected(allSelected ? new Set() : new Set(entries.map((e) => e.id)))}
          open={open}
        />
      )}
      {dragging && (
        <div class="dropzone" aria-hidden="true">
          Drop files or folders to upload to {dir}
        </div>
      )}

      {dialog?.kind === "new" && (
        <NewDialog
          ws={ws}
          dir={dir}
          type={dialog.type}
          close={(done) => {
            setDialog(null);
            // With the watch stream up the change arrives by itself.
            if (done && !live) reload();
          }}
        />
      )}
      {dialog?.kind === "rename" && (
        <RenameDialog
          ws={ws}
          entry={dialog.entry}
          close={(done) => {
            setDialog(null);
            if (done) setSelected(new Set());
            if (done && !live) reload();
          }}
        />
      )}
      {dialog?.kind === "pick" && (
        <PickDialog
          ws={ws}
          op={dialog.op}
          ids={dialog.ids}
          start={dir}
          close={(done) => {
            setDialog(null);
            if (done) {
              setSelected(new Set());
              reload();
            }
          }}
        />
      )}
      {dialog?.kind === "delete" && (
        <DeleteDialog
          ws={ws}
          ids={dialog.ids}
          close={(done) => {
            setDialog(null);
            if (done) {
              setSelected(new Set());
              reload();
            }
          }}
        />
      )}
      {dialog?.kind === "download" && <ArchiveDialog ws={ws} entry={dialog.entry} close={() => setDialog(null)} />}
      {dialog?.kind === "preview" && <PreviewDialog ws={ws} entry={dialog.entry} close={() => setDialog(null)} />}
    </section>
  );
}

function download(ws: string, e: Entry, setDialog: (d: DialogState) => void) {
  if (e.type === "directory") setDialog({ kind: "download", entry: e });
  else triggerDownload(directURL(ws, e.id, "&download=true"));
}

/** triggerDownload downloads a same-origin URL (the cookie authenticates). */
function triggerDownload(url: string) {
  const a = document.createElement("a");
  a.href = url;
  a.download = "";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

// ---------- Listing ----------

interface ListingProps {
  entries: Entry[];
  loading: boolean;
  hasMore: boolean;
  loadMore: () => void;
  sort: { key: SortKey; desc: boolean };
  setSort: (s: { key: SortKey; desc: boolean }) => void;
  selected: Set<string>;
  toggle: (id: string) => void;
  allSelected: boolean;
  toggleAll: () => void;
  open: (e: Entry) => void;
}

function Listing(p: ListingProps) {
  const box = useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  const focusIdx = useRef(0);

  useEffect(() => {
    const el = box.current!;
    const measure = () => setHeight(el.clientHeight || 600);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(scroll / ROW) - 10);
  const last = Math.min(p.entries.length, Math.ceil((scroll + height) / ROW) + 10);
  // Near the end of what is loaded: fetch the next page.
  useEffect(() => {
    if (p.hasMore && last >= p.entries.length - 50) p.loadMore();
  }, [last, p.entries.length, p.hasMore]);

  const focusRow = (i: number) => {
    i = Math.max(0, Math.min(p.entries.length - 1, i));
    focusIdx.current = i;
    const el = box.current!;
    const top = i * ROW;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + ROW > el.scrollTop + el.clientHeight - ROW) el.scrollTop = top + 2 * ROW - el.clientHeight;
    // The row is rendered already unless the jump left the rendered
    // window; then it appears after the scroll's re-render.
    const focus = (tries: number) => {
      const b = el.querySelector(`[data-idx="${i}"] .name`) as HTMLElement | null;
      if (b) b.focus();
      else if (tries > 0) setTimeout(() => focus(tries - 1), 16);
    };
    focus(30);
  };

  const onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement;
    const row = t.closest("[data-idx]") as HTMLElement | null;
    if (!row) return;
    const i = Number(row.dataset.idx);
    const page = Math.max(1, Math.floor(height / ROW) - 1);
    const moves: Record<string, number> = { ArrowDown: i + 1, ArrowUp: i - 1, PageDown: i + page, PageUp: i - page, Home: 0, End: p.entries.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      focusRow(moves[e.key]);
    } else if (e.key === " " && t.classList.contains("name")) {
      e.preventDefault();
      p.toggle(p.entries[i].id);
    }
  };

  const header = (key: SortKey, label: string, cls = "") => {
    const active = p.sort.key === key;
    return (
      <th class={cls} aria-sort={active ? (p.sort.desc ? "descending" : "ascending") : "none"}>
        <button
          type="button"
          class="sort"
          data-sort={key}
          onClick={() => p.setSort({ key, desc: active ? !p.sort.desc : false })}
        >
          {label} {active ? (p.sort.desc ? "▼" : "▲") : ""}
        </button>
      </th>
    );
  };

  return (
    <div class="listing" ref={box} onScroll={(e) => setScroll(e.currentTarget.scrollTop)} onKeyDown={onKey}>
      <table aria-busy={p.loading} aria-rowcount={p.entries.length + 1}>
        <thead>
          <tr>
            <th class="sel">
              <input type="checkbox" aria-label="Select all" checked={p.allSelected} onChange={p.toggleAll} />
            </th>
            {header("name", "Name", "namecol")}
            {header("size", "Size", "num")}
            {header("mtime", "Modified", "hide-narrow")}
          </tr>
        </thead>
        <tbody>
          {first > 0 && (
            <tr class="spacer" aria-hidden="true">
              <td colSpan={4} style={{ height: `${first * ROW}px` } as any} />
            </tr>
          )}
          {p.entries.slice(first, last).map((e, k) => {
            const i = first + k;
            return (
              <tr key={e.id} data-idx={i} data-id={e.id} class={p.selected.has(e.id) ? "selected" : ""} aria-rowindex={i + 2}>
                <td class="sel">
                  <input
                    type="checkbox"
                    tabIndex={-1}
                    aria-label={`Select ${e.name}`}
                    checked={p.selected.has(e.id)}
                    onChange={() => p.toggle(e.id)}
                  />
                </td>
                <td class="namecol truncate">
                  <button
                    type="button"
                    class={"name " + e.type}
                    tabIndex={i === focusIdx.current ? 0 : -1}
                    onFocus={() => (focusIdx.current = i)}
                    onClick={() => p.open(e)}
                    title={e.name}
                  >
                    {e.name}
                    {e.type === "directory" ? "/" : e.type === "symlink" ? " →" : ""}
                  </button>
                </td>
                <td class="num">{e.type === "directory" ? "—" : bytes(e.size)}</td>
                <td class="hide-narrow">{when(e.mtime)}</td>
              </tr>
            );
          })}
          {last < p.entries.length && (
            <tr class="spacer" aria-hidden="true">
              <td colSpan={4} style={{ height: `${(p.entries.length - last) * ROW}px` } as any} />
            </tr>
          )}
        </tbody>
      </table>
      {!p.loading && p.entries.length === 0 && <p class="empty">This folder is empty. Drop files here to upload.</p>}
      {(p.loading || p.hasMore) && (
        <p class="hint" aria-busy="true">
          Loading…
        </p>
      )}
    </div>
  );
}

// ---------- Uploads ----------

interface Upload {
  id: number;
  name: string;
  size: number;
  loaded: number;
  state: "queued" | "uploading" | "done" | "failed" | "cancelled";
  error?: ApiError;
  abort?: () => void;
}

function useUploads(ws: string, dir: string, onDone: () => void) {
  const [list, setList] = useState<Upload[]>([]);
  const queue = useRef<{ up: Upload; item: UploadItem; dir: string }[]>([]);
  const running = useRef(0);
  const seq = useRef(0);
  const patch = (id: number, p: Partial<Upload>) => setList((l) => l.map((u) => (u.id === id ? { ...u, ...p } : u)));

  const pump = () => {
    while (running.current < 3 && queue.current.length) {
      const { up, item, dir: d } = queue.current.shift()!;
      if (up.state === "cancelled") continue;
      running.current++;
      const h = upload(`${base(ws)}/upload${d === "/" ? "" : encPath(d)}`, item, (loaded) => patch(up.id, { loaded }));
      up.abort = h.abort;
      patch(up.id, { state: "uploading", abort: h.abort });
      h.done
        .then(() => patch(up.id, { state: "done", loaded: up.size }))
        .catch((e: ApiError) => patch(up.id, e.code === "aborted" ? { state: "cancelled" } : { state: "failed", error: e }))
        .finally(() => {
          running.current--;
          pump();
          if (!running.current && !queue.current.length) onDone();
        });
    }
  };

  return {
    list,
    add(items: UploadItem[]) {
      const ups = items.map((item) => ({
        up: { id: ++seq.current, name: item.name, size: item.file.size, loaded: 0, state: "queued" as const },
        item,
        dir,
      }));
      setList((l) => l.filter((u) => u.state === "uploading" || u.state === "queued").concat(ups.map((u) => u.up)));
      queue.current.push(...ups);
      pump();
    },
    cancel(id: number) {
      const q = queue.current.find((x) => x.up.id === id);
      if (q) q.up.state = "cancelled";
      const u = list.find((x) => x.id === id);
      if (u?.abort) u.abort();
      patch(id, { state: "cancelled" });
    },
    cancelAll() {
      queue.current.forEach((q) => (q.up.state = "cancelled"));
      queue.current = [];
      list.forEach((u) => u.state === "uploading" && u.abort?.());
      setList((l) => l.map((u) => (u.state === "queued" || u.state === "uploading" ? { ...u, state: "cancelled" } : u)));
    },
    clear() {
      setList((l) => l.filter((u) => u.state === "uploading" || u.state === "queued"));
    },
  };
}

function UploadPanel({ u }: { u: ReturnType<typeof useUploads> }) {
  if (!u.list.length) return null;
  const total = u.list.reduce((s, x) => s + (x.state === "cancelled" ? 0 : x.size), 0);
  const loaded = u.list.reduce((s, x) => s + (x.state === "cancelled" ? 0 : x.state === "done" ? x.size : x.loaded), 0);
  const active = u.list.some((x) => x.state === "uploading" || x.state === "queued");
  const done = u.list.filter((x) => x.state === "done").length;
  return (
    <section class="uploads card" aria-label="Uploads">
      <div class="row">
        <strong id="upload-summary">
          {active ? "Uploading" : "Uploaded"} {done}/{u.list.length} files · {bytes(loaded)} of {bytes(total)}
        </strong>
        <span class="spacer" />
        {active ? (
          <button type="button" onClick={u.cancelAll}>
            Cancel all
          </button>
        ) : (
          <button type="button" onClick={u.clear}>
            Dismiss
          </button>
        )}
      </div>
      <progress max={total || 1} value={loaded} aria-label="Overall upload progress" />
      <ul class="upload-list">
        {u.list.map((x) => (
          <li key={x.id} class={"upload " + x.state} data-name={x.name}>
            <span class="truncate">{x.name}</span>
            <progress max={x.size || 1} value={x.state === "done" ? x.size || 1 : x.loaded} aria-label={`Progress of ${x.name}`} />
            <span class="upload-state">{x.state === "failed" ? "failed" : x.state}</span>
            {(x.state === "uploading" || x.state === "queued") && (
              <button type="button" class="icon" aria-label={`Cancel upload of ${x.name}`} onClick={() => u.cancel(x.id)}>
                ×
              </button>
            )}
            {x.error && <ErrorText error={x.error} />}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** droppedFiles reads the files of a drop, walking dropped folders. */
async function droppedFiles(dt: DataTransfer): Promise<UploadItem[]> {
  const out: UploadItem[] = [];
  const entries = Array.from(dt.items || [])
    .map((i) => (i.kind === "file" && (i as any).webkitGetAsEntry ? (i as any).webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) {
    return Array.from(dt.files || []).map((f) => ({ file: f, name: f.name }));
  }
  const walk = async (entry: any, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file: File = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, name: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch: any[] = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const c of batch) await walk(c, prefix + entry.name + "/");
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}

// ---------- Dialogs ----------

function Actions({ children }: { children: JSX.Element | JSX.Element[] }) {
  return <div class="dialog-actions">{children}</div>;
}

function NewDialog(props: { ws: string; dir: string; type: "file" | "directory"; close: (done: boolean) => void }) {
  const { ws, dir, type } = props;
  const [name, setName] = useState("");
  const [err, setErr] = useState<unknown>(null);
  const what = type === "directory" ? "folder" : "file";
  return (
    <Dialog title={`New ${what}`} onClose={() => props.close(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await api.post(filesURL(ws, dir), { name, type, ...(type === "file" ? { contents: "" } : {}) });
            showInfo(`Created ${name}`);
            props.close(true);
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <div class="dialog-body field">
          <label for="new-name">Name of the new {what}</label>
          <input id="new-name" required autoFocus value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <ErrorText error={err} />
        </div>
        <Actions>
          <button type="button" onClick={() => props.close(false)}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Create
          </button>
        </Actions>
      </form>
    </Dialog>
  );
}

function RenameDialog({ ws, entry, close }: { ws: string; entry: Entry; close: (done: boolean) => void }) {
  const [name, setName] = useState(entry.name);
  const [err, setErr] = useState<unknown>(null);
  return (
    <Dialog title={`Rename ${entry.name}`} onClose={() => close(false)}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await api.put(`${base(ws)}/files${encPath(entry.id)}`, { operation: "rename", target: name });
            showInfo(`Renamed to ${name}`);
            close(true);
          } catch (x) {
            setErr(x);
          }
        }}
      >
        <div class="dialog-body field">
          <label for="rename-name">New name</label>
          <input id="rename-name" required autoFocus value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <ErrorText error={err} />
        </div>
        <Actions>
          <button type="button" onClick={() => close(false)}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Rename
          </button>
        </Actions>
      </form>
    </Dialog>
  );
}

interface BatchResult {
  id: string;
  ok: boolean;
  error?: { code: string; message: string; requestId: string };
}

function BatchErrors({ results }: { results: BatchResult[] }) {
  const failed = results.filter((r) => !r.ok);
  if (!failed.length) return null;
  return (
    <ul class="batch-errors" role="alert">
      {failed.map((r) => (
        <li key={r.id}>
          <code>{r.id}</code>: {r.error?.message} <span class="hint">(request ID <code class="request-id">{r.error?.requestId}</code>)</span>
        </li>
      ))}
    </ul>
  );
}

/** PickDialog is the folder picker of move and copy. */
function PickDialog(props: { ws: string; op: "move" | "copy"; ids: string[]; start: string; close: (done: boolean) => void }) {
  const [at, setAt] = useState(props.start);
  const [dirs, setDirs] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [results, setResults] = useState<BatchResult[]>([]);
  const [busy, setBusy] = useState(false);
  // loading is the folder whose listing is on its way: the list is marked
  // aria-busy until it arrives, and an answer for a folder the user has
  // already left is dropped (it would show the wrong folders).
  const [loading, setLoading] = useState<string | null>(props.start);
  const current = useRef(at);
  current.current = at;
  const load = async (dir: string, c: string | null) => {
    try {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (c) q.set("cursor", c);
      const r = await api.get<Entry[]>(`${filesURL(props.ws, dir)}?${q}`);
      if (current.current !== dir) return;
      const ds = r.data.filter((e) => e.type === "directory" && !props.ids.includes(e.id));
      setDirs((old) => (c ? old.concat(ds) : ds));
      setCursor(r.meta.hasMore ? (r.meta.nextCursor as string) : null);
    } catch (x) {
      if (current.current === dir) setErr(x);
    } finally {
      if (current.current === dir) setLoading(null);
    }
  };
  // go moves the picker to dir in one render: the destination, the cleared
  // list and its busy mark change together, so the dialog's layout settles
  // once (a click aimed while it still moved could land on the backdrop).
  const go = (dir: string) => {
    setAt(dir);
    setDirs([]);
    setCursor(null);
    setErr(null);
    setLoading(dir);
  };
  useEffect(() => {
    load(at, null);
  }, [at]);
  const verb = props.op === "move" ? "Move" : "Copy";
  return (
    <Dialog title={`${verb} ${props.ids.length} item${props.ids.length > 1 ? "s" : ""}`} onClose={() => props.close(false)}>
      <div class="dialog-body picker">
        <p>
          Destination: <code id="pick-at">{at}</code>
        </p>
        <ul class="pick-list" aria-label="Folders" aria-busy={loading !== null ? "true" : "false"}>
          {at !== "/" && (
            <li>
              <button type="button" class="pick-up" onClick={() => go(parentOf(at))}>
                .. (parent folder)
              </button>
            </li>
          )}
          {dirs.map((d) => (
            <li key={d.id}>
              <button type="button" class="pick-dir" data-id={d.id} onClick={() => go(d.id)}>
                {d.name}/
              </button>
            </li>
          ))}
          {cursor && (
            <li>
              <button type="button" onClick={() => load(at, cursor)}>
                More folders…
              </button>
            </li>
          )}
        </ul>
        <ErrorText error={err} />
        <BatchErrors results={results} />
      </div>
      <Actions>
        <button type="button" onClick={() => props.close(results.some((r) => r.ok))}>
          {results.length ? "Close" : "Cancel"}
        </button>
        <button
          type="button"
          class="primary"
          id="pick-confirm"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setErr(null);
            try {
              const r = await api.put<BatchResult[]>(`${base(props.ws)}/files`, { operation: props.op, ids: props.ids, target: at });
              setResults(r.data);
              if (r.data.every((x) => x.ok)) {
                showInfo(`${verb === "Move" ? "Moved" : "Copied"} to ${at}`);
                props.close(true);
              }
            } catch (x) {
              setErr(x);
            } finally {
              setBusy(false);
            }
          }}
        >
          {verb} here
        </button>
      </Actions>
    </Dialog>
  );
}

function DeleteDialog({ ws, ids, close }: { ws: string; ids: string[]; close: (done: boolean) => void }) {
  const [err, setErr] = useState<unknown>(null);
  const [results, setResults] = useState<BatchResult[]>([]);
  return (
    <Dialog title="Delete" onClose={() => close(results.some((r) => r.ok))}>
      <div class="dialog-body">
        <p>
          Delete {ids.length === 1 ? <code>{ids[0]}</code> : `${ids.length} items`}? Folders are deleted with everything in
          them. This cannot be undone.
        </p>
        <ErrorText error={err} />
        <BatchErrors results={results} />
      </div>
      <Actions>
        <button type="button" onClick={() => close(results.some((r) => r.ok))}>
          Cancel
        </button>
        <button
          type="button"
          class="danger"
          id="delete-confirm"
          autoFocus
          onClick={async () => {
            try {
              const r = await api.del<BatchResult[]>(`${base(ws)}/files`, { ids });
              setResults(r.data);
              if (r.data.every((x) => x.ok)) close(true);
            } catch (x) {
              setErr(x);
            }
          }}
        >
          Delete
        </button>
      </Actions>
    </Dialog>
  );
}

function ArchiveDialog({ ws, entry, close }: { ws: string; entry: Entry; close: () => void }) {
  return (
    <Dialog title={`Download ${entry.name || "workspace"}`} onClose={close}>
      <div class="dialog-body">
        <p>Download the folder as an archive:</p>
      </div>
      <Actions>
        <button
          type="button"
          id="dl-zip"
          onClick={() => {
            triggerDownload(directURL(ws, entry.id, "&format=zip"));
            close();
          }}
        >
          .zip
        </button>
        <button
          type="button"
          id="dl-targz"
          onClick={() => {
            triggerDownload(directURL(ws, entry.id, "&format=tar.gz"));
            close();
          }}
        >
          .tar.gz
        </button>
      </Actions>
    </Dialog>
  );
}

const MAX_TEXT = 2 << 20; // bytes previewed or edited as text

const isText = (e: Entry) => {
  const m = e.mimeType || "";
  return (
    m.startsWith("text/") ||
    /^application\/(json|xml|javascript|x-sh|x-yaml|toml|x-python)/.test(m) ||
    /\.(md|txt|json|ya?ml|toml|go|py|js|ts|tsx|sh|rs|c|h|css|html|csv|ini|conf|log)$/i.test(e.name)
  );
};
const isMarkdown = (e: Entry) => /\.(md|markdown)$/i.test(e.name) || (e.mimeType || "").startsWith("text/markdown");
const isImage = (e: Entry) => (e.mimeType || "").startsWith("image/");

/** PreviewDialog shows text (editable), Markdown (sanitized) or an image. */
function PreviewDialog({ ws, entry, close }: { ws: string; entry: Entry; close: () => void }) {
  const [text, setText] = useState<string | null>(null);
  const [etag, setEtag] = useState("");
  const [draft, setDraft] = useState<string | null>(null);
  const [md, setMd] = useState<string | null>(null);
  const [err, setErr] = useState<unknown>(null);
  const [conflict, setConflict] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(false);
  const text_ = isText(entry) && entry.size <= MAX_TEXT;

  const loadText = async () => {
    try {
      const res = await fetch(directURL(ws, entry.id), { credentials: "same-origin" });
      if (!res.ok) throw await errorFrom(res);
      const t = await res.text();
      setText(t);
      setEtag(res.headers.get("ETag") || "");
      if (isMarkdown(entry)) {
        const { renderMarkdown } = await import("../markdown");
        setMd(renderMarkdown(t));
      }
    } catch (x) {
      setErr(x);
    }
  };
  useEffect(() => {
    if (text_) loadText();
  }, []);

  const save = async (force: boolean) => {
    setSaving(true);
    setErr(null);
    try {
      const r = await api.put(
        `${base(ws)}/files${encPath(entry.id)}`,
        { operation: "write", contents: draft },
        { headers: force || !etag ? {} : { "If-Match": etag } },
      );
      setEtag(r.headers.get("ETag") || "");
      setText(draft);
      setDraft(null);
      setConflict(null);
      if (isMarkdown(entry)) {
        const { renderMarkdown } = await import("../markdown");
        setMd(renderMarkdown(draft || ""));
      }
      showInfo(`Saved ${entry.name}`);
    } catch (x) {
      if (x instanceof ApiError && x.status === 412) setConflict(x);
      else setErr(x);
    } finally {
      setSaving(false);
    }
  };

  const body = useMemo(() => {
    if (isImage(entry)) {
      return <img class="preview-img" src={directURL(ws, entry.id)} alt={entry.name} />;
    }
    if (!text_) {
      return <p>No preview for this file ({entry.mimeType || "unknown type"}, {bytes(entry.size)}). Download it instead.</p>;
    }
    if (text === null) return <p aria-busy="true">Loading…</p>;
    if (draft !== null) {
      return (
        <div class="field">
          <label for="editor">Contents of {entry.name}</label>
          <textarea id="editor" class="editor" spellcheck={false} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
        </div>
      );
    }
    if (md !== null) return <div class="markdown" dangerouslySetInnerHTML={{ __html: md }} />;
    return <pre class="preview-text">{text}</pre>;
  }, [text, draft, md]);

  return (
    <Dialog title={entry.name} onClose={close} wide>
      <div class="dialog-body preview">
        {body}
        <ErrorText error={err} />
        {conflict && (
          <div class="conflict" role="alert">
            <p>
              <strong>Conflict:</strong> {entry.name} was changed by someone else since you opened it. Your edit was not
              saved. <span class="hint">{conflict.message} (request ID <code class="request-id">{conflict.requestId}</code>)</span>
            </p>
            <div class="row">
              <button
                type="button"
                id="conflict-reload"
                onClick={() => {
                  setConflict(null);
                  setDraft(null);
                  setText(null);
                  loadText();
                }}
              >
                Discard mine, load theirs
              </button>
              <button type="button" class="danger" id="conflict-overwrite" onClick={() => save(true)}>
                Overwrite with mine
              </button>
            </div>
          </div>
        )}
      </div>
      <Actions>
        <button type="button" onClick={() => triggerDownload(directURL(ws, entry.id, "&download=true"))}>
          Download
        </button>
        {text_ && text !== null && draft === null ? (
          <button type="button" id="edit" onClick={() => setDraft(text)}>
            Edit
          </button>
        ) : (
          <></>
        )}
        {draft !== null ? (
          <button type="button" class="primary" id="save" disabled={saving} onClick={() => save(false)}>
            Save
          </button>
        ) : (
          <></>
        )}
        <button type="button" onClick={close}>
          Close
        </button>
      </Actions>
    </Dialog>
  );
}
