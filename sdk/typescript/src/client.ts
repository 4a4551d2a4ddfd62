import { BerthError } from './errors.js';
import { Transport, encodePath, seg, eventJSON, streamError, type BerthOptions } from './http.js';
import { multipart, type UploadSource } from './upload.js';
import type * as T from './types.js';
import type { Page, PageOptions } from './types.js';

/**
 * Berth is the client: `new Berth({ url, apiKey })`, then one namespace per
 * resource. Every method takes ids or, where the API allows, names and
 * slugs; every failure is a BerthError.
 */
export class Berth {
  /** The transport, for routes this client has no method for. */
  readonly http: Transport;
  readonly workspaces: Workspaces;
  readonly files: Files;
  readonly sandboxes: Sandboxes;
  readonly templates: Templates;
  readonly agents: Agents;
  /** `berth.agent.run(slug, prompt)`: the same object as `agents`. */
  readonly agent: Agents;
  readonly runs: Runs;
  readonly threads: Threads;
  readonly members: Members;
  readonly keys: Keys;

  constructor(opts: BerthOptions) {
    this.http = new Transport(opts);
    this.workspaces = new Workspaces(this.http);
    this.files = new Files(this.http);
    this.sandboxes = new Sandboxes(this.http);
    this.templates = new Templates(this.http);
    this.runs = new Runs(this.http);
    this.agents = new Agents(this.http);
    this.agent = this.agents;
    this.threads = new Threads(this.http);
    this.members = new Members(this.http);
    this.keys = new Keys(this.http);
  }

  /** The caller: user, organization, role and scopes. */
  me(opts: { signal?: AbortSignal } = {}): Promise<T.Me> {
    return this.http.call('GET', '/v1/me', opts);
  }

  /** GET /healthz. */
  health(opts: { signal?: AbortSignal } = {}): Promise<T.Health> {
    return this.http.call('GET', '/healthz', opts);
  }

  /** GET /readyz: the readiness checks (503 answers too, with ready false). */
  ready(opts: { signal?: AbortSignal } = {}): Promise<T.Readiness> {
    return this.http.call('GET', '/readyz', { ...opts, accept: [503] });
  }

  /** The server's OpenAPI document. */
  async openapi(opts: { signal?: AbortSignal } = {}): Promise<Record<string, unknown>> {
    return (await this.http.raw('GET', '/v1/openapi.json', opts)).json() as Promise<Record<string, unknown>>;
  }
}

type Signal = { signal?: AbortSignal };

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * workspaceId turns a workspace id or slug into its id: the API's routes
 * take ids, so a slug is looked up in the caller's workspaces (one list
 * request; admins' lookups include the organization's).
 */
async function wsPath(http: Transport, idOrSlug: string, suffix: string, signal?: AbortSignal): Promise<string> {
  return `/v1/workspaces/${seg(await workspaceId(http, idOrSlug, signal))}${suffix}`;
}

async function workspaceId(http: Transport, idOrSlug: string, signal?: AbortSignal): Promise<string> {
  if (!idOrSlug) throw new TypeError('berth: a workspace id or slug is required');
  if (uuid.test(idOrSlug)) return idOrSlug;
  const { data, requestId } = await http.envelope<T.WorkspaceList>('GET', '/v1/workspaces', { signal });
  const w = data.workspaces.find((x) => x.slug === idOrSlug);
  if (!w) throw new BerthError({ status: 404, code: 'not_found', message: `workspace ${JSON.stringify(idOrSlug)} not found`, requestId });
  return w.id;
}

export class Workspaces {
  constructor(private readonly http: Transport) {}

  /** The caller's workspaces (admins: all: true for the org's) and storage. */
  list(opts: { all?: boolean } & Signal = {}): Promise<T.WorkspaceList> {
    return this.http.call('GET', '/v1/workspaces', { query: { all: opts.all || undefined }, signal: opts.signal });
  }

  /** One workspace, by id or slug. */
  async get(id: string, opts: Signal = {}): Promise<T.Workspace> {
    return this.http.call('GET', await wsPath(this.http, id, '', opts.signal), opts);
  }

  create(input: T.WorkspaceCreateInput, opts: Signal = {}): Promise<T.Workspace> {
    return this.http.call('POST', '/v1/workspaces', { json: input, signal: opts.signal });
  }

  /** Renames a workspace and/or changes its quota. */
  async update(id: string, input: T.WorkspaceUpdateInput, opts: Signal = {}): Promise<T.Workspace> {
    return this.http.call('PATCH', await wsPath(this.http, id, '', opts.signal), { json: input, signal: opts.signal });
  }

  rename(id: string, name: string, opts: Signal = {}): Promise<T.Workspace> {
    return this.update(id, { name }, opts);
  }

  /** Sets the quota in bytes (0: unlimited). */
  setQuota(id: string, quotaBytes: number, opts: Signal = {}): Promise<T.Workspace> {
    return this.update(id, { quotaBytes }, opts);
  }

  /** Deletes a workspace; force: true even while sandboxes or agents use it. */
  async delete(id: string, opts: { force?: boolean } & Signal = {}): Promise<T.Deleted> {
    return this.http.call('DELETE', await wsPath(this.http, id, '', opts.signal), { query: { force: opts.force || undefined }, signal: opts.signal });
  }

  /** Who references a workspace (sandboxes mounting it, agents). */
  async usage(id: string, opts: Signal = {}): Promise<T.WorkspaceUsage> {
    return this.http.call('GET', await wsPath(this.http, id, '/usage', opts.signal), opts);
  }

  /** Space used, total and free (-1: unlimited). */
  async space(id: string, opts: Signal = {}): Promise<T.WorkspaceSpace> {
    return this.http.call('GET', await wsPath(this.http, id, '/info', opts.signal), opts);
  }

  /** The members granted a workspace (admin). */
  async access(id: string, opts: Signal = {}): Promise<T.WorkspaceAccess> {
    return this.http.call('GET', await wsPath(this.http, id, '/access', opts.signal), opts);
  }

  /** Sets the members granted a workspace (admin); replaces the list. */
  async grant(id: string, userIds: string[], opts: Signal = {}): Promise<T.WorkspaceAccess> {
    return this.http.call('PUT', await wsPath(this.http, id, '/access', opts.signal), { json: { userIds }, signal: opts.signal });
  }

  /** Snapshots a workspace (btrfs storage; not_supported on dir). */
  async snapshot(id: string, name: string, opts: Signal = {}): Promise<T.Snapshot> {
    return this.http.call('POST', await wsPath(this.http, id, '/snapshots', opts.signal), { json: { name }, signal: opts.signal });
  }

  /** One page of a workspace's snapshots, oldest first. */
  async snapshots(id: string, opts: PageOptions = {}): Promise<Page<T.Snapshot>> {
    return this.http.page(await wsPath(this.http, id, '/snapshots', opts.signal), { query: { limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  /** One snapshot of a workspace. */
  async getSnapshot(id: string, snapshotId: string, opts: Signal = {}): Promise<T.Snapshot> {
    return this.http.call('GET', await wsPath(this.http, id, `/snapshots/${seg(snapshotId)}`, opts.signal), opts);
  }

  /** Deletes a snapshot (a conflict while a sandbox mounts it). */
  async deleteSnapshot(id: string, snapshotId: string, opts: Signal = {}): Promise<T.Deleted> {
    return this.http.call('DELETE', await wsPath(this.http, id, `/snapshots/${seg(snapshotId)}`, opts.signal), opts);
  }

  /**
   * Returns a workspace to a snapshot. A conflict while a running sandbox
   * mounts it read-write, unless force: those are stopped and started again.
   */
  async restore(id: string, snapshotId: string, opts: { force?: boolean } & Signal = {}): Promise<T.SnapshotRestore> {
    return this.http.call('POST', await wsPath(this.http, id, `/snapshots/${seg(snapshotId)}/restore`, opts.signal), {
      json: { force: opts.force ?? false },
      signal: opts.signal,
    });
  }

  /** A new workspace, owned by the caller, with this one's contents (or a snapshot's). */
  async clone(id: string, input: T.WorkspaceCloneInput, opts: Signal = {}): Promise<T.Workspace> {
    return this.http.call('POST', await wsPath(this.http, id, '/clone', opts.signal), { json: input, signal: opts.signal });
  }
}

/** A directory archive format for download of a directory. */
export type ArchiveFormat = 'zip' | 'tar.gz';

export interface DownloadOptions extends Signal {
  /** A byte range: [start, end] inclusive, or [start] to the end. */
  range?: [number, number?];
  /** A directory's archive format (default zip). */
  format?: ArchiveFormat;
  /** Content-Disposition: attachment. */
  attachment?: boolean;
  /** Read from this snapshot (its id) instead of the live tree. */
  snapshot?: string;
}

export interface WatchOptions extends Signal {
  /** The directory to watch (default /). */
  path?: string;
}

/** A watch stream's event: first "ready", then one per change. */
export type WatchEvent = ({ type: 'ready' } & T.WatchReady) | T.FileEvent;

export class Files {
  constructor(private readonly http: Transport) {}

  private async base(ws: string, route: string, p: string, signal?: AbortSignal): Promise<string> {
    const e = encodePath(p);
    return wsPath(this.http, ws, `/${route}${e ? '/' + e : ''}`, signal);
  }

  /** One page of a directory (default the root). */
  async list(ws: string, path = '/', opts: { showHidden?: boolean; snapshot?: string } & PageOptions = {}): Promise<Page<T.FileEntry>> {
    return this.http.page(await this.base(ws, 'files', path, opts.signal), {
      query: { showHidden: opts.showHidden || undefined, limit: opts.limit, cursor: opts.cursor, snapshot: opts.snapshot },
      signal: opts.signal,
    });
  }

  /** Every entry of a directory, page after page. */
  async *iterate(ws: string, path = '/', opts: { showHidden?: boolean; limit?: number } & Signal = {}): AsyncGenerator<T.FileEntry> {
    yield* this.http.all<T.FileEntry>(await this.base(ws, 'files', path, opts.signal), { showHidden: opts.showHidden || undefined, limit: opts.limit }, opts.signal);
  }

  /** One entry; a directory with its recursive size and count. */
  async info(ws: string, path: string, opts: { snapshot?: string } & Signal = {}): Promise<T.FileSummary> {
    return this.http.call('GET', await this.base(ws, 'info', path, opts.signal), { query: { snapshot: opts.snapshot }, signal: opts.signal });
  }

  /**
   * Uploads one file to path (its directory is created if missing),
   * streaming src; see UploadSource. Answers the new entry.
   */
  async upload(ws: string, path: string, src: UploadSource, opts: Signal = {}): Promise<T.FileEntry> {
    const i = path.replace(/\/+$/, '').lastIndexOf('/');
    const dir = i <= 0 ? '/' : path.slice(0, i);
    const name = path.slice(i + 1).replace(/\/+$/, '');
    if (!name) throw new TypeError(`berth: upload needs a file path, not ${JSON.stringify(path)}`);
    const mp = multipart(name, src);
    const path_ = await this.base(ws, 'upload', dir, opts.signal);
    const res =
      'form' in mp
        ? await this.http.raw('POST', path_, { body: mp.form, signal: opts.signal })
        : await this.http.upload('POST', path_, mp.contentType, mp.chunks, { signal: opts.signal });
    const entries = ((await res.json()) as { data: T.FileEntry[] }).data;
    return entries[0]!;
  }

  /**
   * Downloads a file (or a directory as an archive): the Response, whose
   * body streams. Use read/readText for the whole file at once.
   */
  async download(ws: string, path: string, opts: DownloadOptions = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (opts.range) headers.Range = `bytes=${opts.range[0]}-${opts.range[1] ?? ''}`;
    return this.http.raw('GET', await wsPath(this.http, ws, '/direct', opts.signal), {
      query: { id: path, format: opts.format, download: opts.attachment || undefined, snapshot: opts.snapshot },
      headers,
      signal: opts.signal,
    });
  }

  /** A file's bytes. */
  async read(ws: string, path: string, opts: DownloadOptions = {}): Promise<Uint8Array> {
    return new Uint8Array(await (await this.download(ws, path, opts)).arrayBuffer());
  }

  /** A file's text (UTF-8). */
  async readText(ws: string, path: string, opts: DownloadOptions = {}): Promise<string> {
    return (await this.download(ws, path, opts)).text();
  }

  /** Writes text to a file, replacing it atomically (parents created). */
  async write(ws: string, path: string, contents: string, opts: Signal = {}): Promise<T.FileEntry> {
    return this.http.call('PUT', await this.base(ws, 'files', path, opts.signal), { json: { operation: 'write', contents }, signal: opts.signal });
  }

  /** Creates a new file (with optional contents) in dir; an existing name is a conflict. */
  createFile(ws: string, path: string, contents?: string, opts: Signal = {}): Promise<T.FileEntry> {
    return this.create(ws, path, 'file', contents, opts);
  }

  /** Creates a directory (its parent must exist). */
  mkdir(ws: string, path: string, opts: Signal = {}): Promise<T.FileEntry> {
    return this.create(ws, path, 'directory', undefined, opts);
  }

  private async create(ws: string, path: string, type: 'file' | 'directory', contents: string | undefined, opts: Signal): Promise<T.FileEntry> {
    const clean = path.replace(/\/+$/, '');
    const i = clean.lastIndexOf('/');
    const dir = i <= 0 ? '/' : clean.slice(0, i);
    const name = clean.slice(i + 1);
    return this.http.call('POST', await this.base(ws, 'files', dir, opts.signal), { json: { name, type, contents }, signal: opts.signal });
  }

  /** Gives an entry a new name in the same directory. */
  rename(ws: string, path: string, newName: string, opts: { overwrite?: boolean } & Signal = {}): Promise<T.FileEntry> {
    return this.op(ws, path, 'rename', newName, opts);
  }

  /** Moves an entry into the directory targetDir, keeping its name. */
  move(ws: string, path: string, targetDir: string, opts: { overwrite?: boolean } & Signal = {}): Promise<T.FileEntry> {
    return this.op(ws, path, 'move', targetDir, opts);
  }

  /** Copies an entry (a directory recursively) into the directory targetDir. */
  copy(ws: string, path: string, targetDir: string, opts: { overwrite?: boolean } & Signal = {}): Promise<T.FileEntry> {
    return this.op(ws, path, 'copy', targetDir, opts);
  }

  private async op(ws: string, path: string, operation: string, target: string, opts: { overwrite?: boolean } & Signal): Promise<T.FileEntry> {
    return this.http.call('PUT', await this.base(ws, 'files', path, opts.signal), {
      query: { overwrite: opts.overwrite || undefined },
      json: { operation, target },
      signal: opts.signal,
    });
  }

  /** Moves or copies several entries into targetDir; one result each. */
  async batch(ws: string, operation: 'move' | 'copy', paths: string[], targetDir: string, opts: { overwrite?: boolean } & Signal = {}): Promise<T.BatchResult[]> {
    return this.http.call('PUT', await wsPath(this.http, ws, '/files', opts.signal), {
      query: { overwrite: opts.overwrite || undefined },
      json: { operation, ids: paths, target: targetDir },
      signal: opts.signal,
    });
  }

  /** Deletes a file or directory (recursively), or several: one result each. */
  delete(ws: string, path: string, opts?: Signal): Promise<T.Deleted>;
  delete(ws: string, paths: string[], opts?: Signal): Promise<T.BatchResult[]>;
  async delete(ws: string, path: string | string[], opts: Signal = {}): Promise<T.Deleted | T.BatchResult[]> {
    if (Array.isArray(path)) {
      return this.http.call('DELETE', await wsPath(this.http, ws, '/files', opts.signal), { json: { ids: path }, signal: opts.signal });
    }
    if (encodePath(path) === '') throw new TypeError('berth: will not delete the workspace root');
    return this.http.call('DELETE', await this.base(ws, 'files', path, opts.signal), opts);
  }

  /**
   * Follows changes below a directory: an async iterator whose first event
   * is "ready" (the watch is in place). Stop it with break or opts.signal.
   */
  async *watch(ws: string, opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    for await (const ev of this.http.events('GET', await wsPath(this.http, ws, '/watch', opts.signal), { query: { path: opts.path }, signal: opts.signal })) {
      if (ev.event === 'error') throw streamError(ev);
      if (ev.event === 'ready') yield { type: 'ready', ...eventJSON<T.WatchReady>(ev) };
      else yield eventJSON<T.FileEvent>(ev);
    }
  }
}

export interface SandboxListOptions extends PageOptions {
  status?: T.Sandbox['status'];
  tag?: string[];
  template?: string;
  all?: boolean;
}

/** An event of a streamed exec: output chunks, then exit (or a thrown BerthError). */
export type ExecEvent = { type: 'stdout' | 'stderr'; text: string } | ({ type: 'exit' } & T.ExecResult);

export type ExecOptions = Omit<T.ExecInput, 'command'> & Signal;

export class Sandboxes {
  constructor(private readonly http: Transport) {}

  /** Creates a sandbox and waits for it to run (async: true answers at once, status "creating"). */
  create(input: T.SandboxCreateInput, opts: { async?: boolean } & Signal = {}): Promise<T.Sandbox> {
    return this.http.call('POST', '/v1/sandboxes', { query: { async: opts.async || undefined }, json: input, signal: opts.signal });
  }

  list(opts: SandboxListOptions = {}): Promise<Page<T.Sandbox>> {
    const { signal, ...query } = opts;
    return this.http.page('/v1/sandboxes', { query: { ...query, all: query.all || undefined }, signal });
  }

  iterate(opts: Omit<SandboxListOptions, 'cursor'> = {}): AsyncGenerator<T.Sandbox> {
    const { signal, ...query } = opts;
    return this.http.all('/v1/sandboxes', { ...query, all: query.all || undefined }, signal);
  }

  /** One sandbox, by id or name. */
  get(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.http.call('GET', `/v1/sandboxes/${seg(id)}`, opts);
  }

  /** Destroys a sandbox (its workspaces stay). */
  destroy(id: string, opts: Signal = {}): Promise<T.Deleted> {
    return this.http.call('DELETE', `/v1/sandboxes/${seg(id)}`, opts);
  }

  pause(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.action(id, 'pause', opts);
  }
  resume(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.action(id, 'resume', opts);
  }
  stop(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.action(id, 'stop', opts);
  }
  start(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.action(id, 'start', opts);
  }
  /** Resets the idle timer. */
  keepalive(id: string, opts: Signal = {}): Promise<T.Sandbox> {
    return this.action(id, 'keepalive', opts);
  }

  private action(id: string, what: string, opts: Signal): Promise<T.Sandbox> {
    return this.http.call('POST', `/v1/sandboxes/${seg(id)}/${what}`, opts);
  }

  /**
   * Runs a command (a string runs under /bin/sh -c, an array is the argv)
   * and answers its output and exit code once it ends; with stream: true,
   * an async iterator of its output as it comes (see execStream).
   */
  exec(id: string, command: string | string[], opts: ExecOptions & { stream: true }): AsyncGenerator<ExecEvent>;
  exec(id: string, command: string | string[], opts?: ExecOptions & { stream?: false }): Promise<T.ExecOutput>;
  exec(id: string, command: string | string[], opts: ExecOptions & { stream?: boolean } = {}): Promise<T.ExecOutput> | AsyncGenerator<ExecEvent> {
    const { signal, stream, ...rest } = opts;
    if (stream) return this.execStream(id, command, { ...rest, signal });
    return this.http.call('POST', `/v1/sandboxes/${seg(id)}/exec`, { json: { ...rest, command }, signal });
  }

  /** Runs a command, yielding its output as it comes and last its exit. */
  async *execStream(id: string, command: string | string[], opts: ExecOptions = {}): AsyncGenerator<ExecEvent> {
    const { signal, ...rest } = opts;
    for await (const ev of this.http.events('POST', `/v1/sandboxes/${seg(id)}/exec`, { query: { stream: true }, json: { ...rest, command }, signal })) {
      switch (ev.event) {
        case 'stdout':
        case 'stderr':
          yield { type: ev.event, text: ev.data };
          break;
        case 'exit':
          yield { type: 'exit', ...eventJSON<T.ExecResult>(ev) };
          return;
        case 'error':
          throw streamError(ev);
      }
    }
  }
}

/** A template build's stream: log lines, then the built template. */
export type BuildEvent = { type: 'progress'; line: string } | { type: 'done'; template: T.Template };

export class Templates {
  constructor(private readonly http: Transport) {}

  list(opts: Signal = {}): Promise<T.Template[]> {
    return this.http.call('GET', '/v1/templates', opts);
  }

  get(name: string, opts: Signal = {}): Promise<T.Template> {
    return this.http.call('GET', `/v1/templates/${seg(name)}`, opts);
  }

  /** Builds (or pulls) a template's image now (admin); answers its log. */
  build(name: string, opts: Signal = {}): Promise<T.TemplateBuild> {
    return this.http.call('POST', `/v1/templates/${seg(name)}/build`, opts);
  }

  /** Builds a template, yielding its log lines and last the template. */
  async *buildStream(name: string, opts: Signal = {}): AsyncGenerator<BuildEvent> {
    for await (const ev of this.http.events('POST', `/v1/templates/${seg(name)}/build`, { query: { stream: true }, signal: opts.signal })) {
      if (ev.event === 'progress') yield { type: 'progress', line: ev.data };
      else if (ev.event === 'done') {
        yield { type: 'done', template: eventJSON<T.Template>(ev) };
        return;
      } else if (ev.event === 'error') throw streamError(ev);
    }
  }
}

/** An event of a streamed run; seq is its sequence number in the run. */
export type RunEvent =
  | { type: 'prompt' | 'stdout' | 'stderr'; seq: number; text: string }
  | { type: 'status'; seq: number; status: T.RunStatus }
  | { type: 'result'; seq: number; run: T.Run };

export interface RunOptions extends Signal {
  /** Continue this thread (its runs share history and files). */
  threadId?: string;
  /** Milliseconds the run may take (default the agent's, else 10 minutes). */
  timeout?: number;
  /** true: answer an async iterator of the run's events instead of the run. */
  stream?: boolean;
}

/**
 * A streamed run: iterate it for events (the last is "result"); result()
 * answers the finished run (iterating the rest if needed). The request is
 * sent when iteration (or result()) starts; iterate it once.
 */
export class RunStream implements AsyncIterable<RunEvent> {
  private final?: T.Run;
  private readonly it: AsyncGenerator<RunEvent>;

  constructor(source: AsyncGenerator<RunEvent>) {
    const self = this;
    this.it = (async function* () {
      for await (const ev of source) {
        if (ev.type === 'result') self.final = ev.run;
        yield ev;
      }
    })();
  }

  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    return this.it;
  }

  /** The finished run: drains the events not yet read. */
  async result(): Promise<T.Run> {
    for await (const ev of this.it) void ev;
    if (!this.final) throw new BerthError({ status: 0, code: 'stream_ended', message: 'the run stream ended without a result' });
    return this.final;
  }
}

async function* runEvents(src: AsyncGenerator<import('./sse.js').SSEvent>): AsyncGenerator<RunEvent> {
  for await (const ev of src) {
    const seq = ev.id ? Number(ev.id) : 0;
    switch (ev.event) {
      case 'prompt':
      case 'stdout':
      case 'stderr':
        yield { type: ev.event, seq, text: ev.data };
        break;
      case 'status':
        yield { type: 'status', seq, status: eventJSON<T.RunStatus>(ev) };
        break;
      case 'result':
        yield { type: 'result', seq, run: eventJSON<T.Run>(ev) };
        return;
      case 'error':
        throw streamError(ev);
    }
  }
}

export class Agents {
  constructor(private readonly http: Transport) {}

  /** Creates or updates an agent by slug (action says which). */
  create(input: T.AgentInput, opts: Signal = {}): Promise<T.AgentUpserted> {
    return this.http.call('POST', '/v1/agents', { json: input, signal: opts.signal });
  }

  /** The same as create: the API upserts by slug. */
  apply(input: T.AgentInput, opts: Signal = {}): Promise<T.AgentUpserted> {
    return this.create(input, opts);
  }

  list(opts: { all?: boolean } & PageOptions = {}): Promise<Page<T.Agent>> {
    return this.http.page('/v1/agents', { query: { all: opts.all || undefined, limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  iterate(opts: { all?: boolean; limit?: number } & Signal = {}): AsyncGenerator<T.Agent> {
    return this.http.all('/v1/agents', { all: opts.all || undefined, limit: opts.limit }, opts.signal);
  }

  get(slug: string, opts: Signal = {}): Promise<T.Agent> {
    return this.http.call('GET', `/v1/agents/${seg(slug)}`, opts);
  }

  /** Deletes an agent; its runs and threads stay. */
  delete(slug: string, opts: Signal = {}): Promise<T.AgentDeleted> {
    return this.http.call('DELETE', `/v1/agents/${seg(slug)}`, opts);
  }

  /**
   * Runs an agent with a prompt and answers the finished run (output, exit
   * code, status); with stream: true, a RunStream of its events instead.
   */
  run(slug: string, prompt: string, opts: RunOptions & { stream: true }): RunStream;
  run(slug: string, prompt: string, opts?: RunOptions & { stream?: false }): Promise<T.Run>;
  run(slug: string, prompt: string, opts: RunOptions = {}): Promise<T.Run> | RunStream {
    const { signal, stream, ...rest } = opts;
    const path = `/v1/agents/${seg(slug)}/run`;
    if (stream) {
      return new RunStream(runEvents(this.http.events('POST', path, { json: { ...rest, prompt, stream: true }, signal })));
    }
    return this.http.call('POST', path, { json: { ...rest, prompt }, signal });
  }

  /** The runs of an agent: its threads' runs, newest thread first. */
  async runs(slug: string, opts: Signal = {}): Promise<T.Run[]> {
    const out: T.Run[] = [];
    for await (const t of this.http.all<T.Thread>('/v1/threads', { agent: slug }, opts.signal)) {
      const full = await this.http.call<T.Thread>('GET', `/v1/threads/${seg(t.id)}`, opts);
      out.push(...((full.runs ?? []) as T.Run[]));
    }
    return out;
  }
}

export class Runs {
  constructor(private readonly http: Transport) {}

  get(runId: string, opts: Signal = {}): Promise<T.Run> {
    return this.http.call('GET', `/v1/runs/${seg(runId)}`, opts);
  }

  /** One page of a run's stored events. */
  events(runId: string, opts: PageOptions = {}): Promise<Page<T.RunEventRecord>> {
    return this.http.page(`/v1/runs/${seg(runId)}/events`, { query: { limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  /** Follows a run live from after cursor (a seq), to its result. */
  follow(runId: string, opts: { cursor?: string } & Signal = {}): RunStream {
    return new RunStream(runEvents(this.http.events('GET', `/v1/runs/${seg(runId)}/events`, { query: { cursor: opts.cursor }, signal: opts.signal })));
  }

  /** Cancels a run (kills its process). */
  cancel(runId: string, opts: Signal = {}): Promise<T.Run> {
    return this.http.call('POST', `/v1/runs/${seg(runId)}/cancel`, opts);
  }
}

export class Threads {
  constructor(private readonly http: Transport) {}

  list(opts: { agent?: string; all?: boolean } & PageOptions = {}): Promise<Page<T.Thread>> {
    return this.http.page('/v1/threads', {
      query: { agent: opts.agent, all: opts.all || undefined, limit: opts.limit, cursor: opts.cursor },
      signal: opts.signal,
    });
  }

  iterate(opts: { agent?: string; all?: boolean; limit?: number } & Signal = {}): AsyncGenerator<T.Thread> {
    return this.http.all('/v1/threads', { agent: opts.agent, all: opts.all || undefined, limit: opts.limit }, opts.signal);
  }

  /** A thread with its runs. */
  get(threadId: string, opts: Signal = {}): Promise<T.Thread> {
    return this.http.call('GET', `/v1/threads/${seg(threadId)}`, opts);
  }

  /** One page of a thread's events, in order. */
  events(threadId: string, opts: PageOptions = {}): Promise<Page<T.RunEventRecord>> {
    return this.http.page(`/v1/threads/${seg(threadId)}/events`, { query: { limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  /** Retitles or (un)archives a thread. */
  update(threadId: string, input: T.ThreadUpdateInput, opts: Signal = {}): Promise<T.Thread> {
    return this.http.call('PATCH', `/v1/threads/${seg(threadId)}`, { json: input, signal: opts.signal });
  }

  /** Deletes a thread with its runs and events. */
  delete(threadId: string, opts: Signal = {}): Promise<T.Deleted> {
    return this.http.call('DELETE', `/v1/threads/${seg(threadId)}`, opts);
  }
}

export class Members {
  constructor(private readonly http: Transport) {}

  list(opts: PageOptions = {}): Promise<Page<T.Member>> {
    return this.http.page('/v1/members', { query: { limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  iterate(opts: { limit?: number } & Signal = {}): AsyncGenerator<T.Member> {
    return this.http.all('/v1/members', { limit: opts.limit }, opts.signal);
  }

  add(input: T.MemberInput, opts: Signal = {}): Promise<T.Member> {
    return this.http.call('POST', '/v1/members', { json: input, signal: opts.signal });
  }

  get(userId: string, opts: Signal = {}): Promise<T.Member> {
    return this.http.call('GET', `/v1/members/${seg(userId)}`, opts);
  }

  /** Changes a member's role. */
  setRole(userId: string, role: T.Member['role'], opts: Signal = {}): Promise<T.Member> {
    return this.http.call('PATCH', `/v1/members/${seg(userId)}`, { json: { role }, signal: opts.signal });
  }

  remove(userId: string, opts: Signal = {}): Promise<T.Deleted> {
    return this.http.call('DELETE', `/v1/members/${seg(userId)}`, opts);
  }
}

export class Keys {
  constructor(private readonly http: Transport) {}

  list(opts: { all?: boolean } & PageOptions = {}): Promise<Page<T.APIKey>> {
    return this.http.page('/v1/api-keys', { query: { all: opts.all || undefined, limit: opts.limit, cursor: opts.cursor }, signal: opts.signal });
  }

  /** Creates an API key; the answer's key is the secret, shown only here. */
  create(input: T.KeyInput, opts: Signal = {}): Promise<T.APIKey> {
    return this.http.call('POST', '/v1/api-keys', { json: input, signal: opts.signal });
  }

  revoke(keyId: string, opts: Signal = {}): Promise<T.APIKey> {
    return this.http.call('DELETE', `/v1/api-keys/${seg(keyId)}`, opts);
  }
}
