import { BerthError } from './errors.js';
import { parseSSE, type SSEvent } from './sse.js';
import type { Page } from './types.js';
import { isNode, nodeRequest } from './nodeupload.js';
import { pullStream } from './upload.js';

/** Options of the Berth client. */
export interface BerthOptions {
  /** The server, e.g. "http://127.0.0.1:8080". */
  url: string;
  /** An API key (sent as X-API-Key). */
  apiKey?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export interface RequestOptions {
  query?: Query;
  /** A JSON body (serialized here) ... */
  json?: unknown;
  /** ... or a raw body. */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Failure statuses answered as they are instead of thrown (/readyz's 503). */
  accept?: number[];
}

/** Transport does the HTTP: URLs, the key, errors and the envelope. */
export class Transport {
  readonly base: string;
  private readonly apiKey?: string;
  private readonly fetchFn: typeof fetch;
  private readonly headers: Record<string, string>;
  private readonly customFetch: boolean;

  constructor(opts: BerthOptions) {
    if (!opts || !opts.url) throw new TypeError('berth: options.url is required');
    this.base = opts.url.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('berth: no fetch available; pass options.fetch');
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.customFetch = opts.fetch !== undefined;
    this.headers = { ...(opts.headers ?? {}) };
  }

  url(path: string, query?: Query): string {
    let u = this.base + path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v === undefined || v === null) continue;
        if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
        else qs.append(k, String(v));
      }
      const s = qs.toString();
      if (s) u += '?' + s;
    }
    return u;
  }

  /**
   * upload sends a body of chunks, streamed without buffering: in Node by
   * node:http (see nodeupload.ts), with a caller's fetch as a stream body.
   */
  async upload(method: string, path: string, contentType: string, chunks: AsyncGenerator<Uint8Array>, opts: { signal?: AbortSignal } = {}): Promise<Response> {
    if (this.customFetch) {
      return this.raw(method, path, { body: pullStream(chunks), headers: { 'Content-Type': contentType }, signal: opts.signal });
    }
    if (!isNode()) {
      // Browsers send a stream body only over HTTP/2 (Chrome) or not at all:
      // gather the chunks into a Blob, which browsers keep on disk when
      // large. (Blob and File sources never come here: FormData sends them.)
      const parts: Uint8Array[] = [];
      for await (const c of chunks) parts.push(c);
      return this.raw(method, path, { body: new Blob(parts as BlobPart[]), headers: { 'Content-Type': contentType }, signal: opts.signal });
    }
    const headers: Record<string, string> = { ...this.headers, 'Content-Type': contentType };
    if (this.apiKey) headers['X-API-Key'] = this.apiKey;
    let res: Response;
    try {
      res = await nodeRequest(method, this.url(path), headers, chunks, opts.signal);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH') {
        throw new BerthError({ status: 0, code: 'unreachable', message: `berth is not reachable at ${this.base}: ${(err as Error).message}`, cause: err });
      }
      throw err;
    }
    if (!res.ok) throw await BerthError.fromResponse(res);
    return res;
  }

  /** raw sends a request and answers the Response; a failure status throws. */
  async raw(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers, ...(opts.headers ?? {}) };
    if (this.apiKey) headers['X-API-Key'] = this.apiKey;
    const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: opts.signal };
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      init.body = opts.body;
      // A stream body needs half duplex in Node's fetch (and Chrome's).
      if (typeof ReadableStream !== 'undefined' && opts.body instanceof ReadableStream) init.duplex = 'half';
    }
    const url = this.url(path, opts.query);
    let res: Response;
    try {
      res = await this.fetchFn(url, init);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new BerthError({
        status: 0,
        code: 'unreachable',
        message: `berth is not reachable at ${this.base}: ${(err as Error)?.message ?? err}`,
        cause: err,
      });
    }
    if (!res.ok && !opts.accept?.includes(res.status)) throw await BerthError.fromResponse(res);
    return res;
  }

  /** call answers the envelope's data. */
  async call<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    return (await this.envelope<T>(method, path, opts)).data;
  }

  /** envelope answers the envelope's data and request id. */
  async envelope<T>(method: string, path: string, opts: RequestOptions = {}): Promise<{ data: T; requestId: string }> {
    const res = await this.raw(method, path, opts);
    const body = (await res.json()) as { data: T; meta?: { requestId?: string } };
    return { data: body.data, requestId: body.meta?.requestId ?? res.headers.get('X-Request-Id') ?? '' };
  }

  /** page answers one page of a paginated list. */
  async page<T>(path: string, opts: RequestOptions = {}): Promise<Page<T>> {
    const res = await this.raw('GET', path, opts);
    const body = (await res.json()) as { data: T[] | null; meta: { requestId: string; hasMore?: boolean; nextCursor?: string | null } };
    return {
      data: body.data ?? [],
      hasMore: body.meta.hasMore ?? false,
      nextCursor: body.meta.nextCursor ?? null,
      requestId: body.meta.requestId,
    };
  }

  /** all walks every page of a paginated list. */
  async *all<T>(path: string, query: Query = {}, signal?: AbortSignal): AsyncGenerator<T> {
    let cursor = (query.cursor as string | undefined) ?? undefined;
    for (;;) {
      const p = await this.page<T>(path, { query: { ...query, cursor }, signal });
      yield* p.data;
      if (!p.hasMore || !p.nextCursor) return;
      cursor = p.nextCursor;
    }
  }

  /** events sends a request whose answer is an event stream. */
  async *events(method: string, path: string, opts: RequestOptions = {}): AsyncGenerator<SSEvent> {
    const res = await this.raw(method, path, { ...opts, headers: { Accept: 'text/event-stream', ...(opts.headers ?? {}) } });
    if (!res.body) return;
    yield* parseSSE(res.body);
  }
}

/** Encodes a workspace path for a route: each segment, slashes kept. */
export function encodePath(p: string): string {
  const segs = p.split('/').filter((s) => s !== '');
  // URLs resolve "." and ".." (even as %2e) before the server sees them:
  // refuse them here rather than address another path.
  if (segs.some((s) => s === '.' || s === '..')) {
    throw new BerthError({ status: 0, code: 'invalid_request', message: `path ${JSON.stringify(p)} may not contain "." or ".." segments` });
  }
  return segs.map(encodeURIComponent).join('/');
}

/** The path segment of an id or name. */
export function seg(s: string): string {
  if (!s) throw new TypeError('berth: an id is required');
  return encodeURIComponent(s);
}

/** Parses the JSON data of an event; a stream's "error" event becomes a BerthError. */
export function eventJSON<T>(ev: SSEvent): T {
  return JSON.parse(ev.data) as T;
}

export function streamError(ev: SSEvent): BerthError {
  let code = 'stream_error';
  let message = ev.data;
  try {
    const e = JSON.parse(ev.data) as { code?: string; message?: string };
    code = e.code ?? code;
    message = e.message ?? message;
  } catch {
    // Not JSON: the text is the message.
  }
  return new BerthError({ status: 0, code, message });
}
