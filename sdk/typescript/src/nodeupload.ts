// Node's fetch (undici) keeps every chunk of a streamed request body in
// memory until the request is collected (nodejs/undici#4058), so a 1 GiB
// upload would take 1 GiB. In Node, streamed bodies go through node:http
// instead, which writes each chunk and waits for the socket to drain.
// Browsers, and callers who pass their own fetch, keep using fetch.

interface NodeHTTP {
  request(url: URL, opts: { method: string; headers: Record<string, string>; signal?: AbortSignal }, cb: (res: NodeIncoming) => void): NodeClientRequest;
}
interface NodeIncoming extends AsyncIterable<Uint8Array> {
  statusCode?: number;
  statusMessage?: string;
  headers: Record<string, string | string[] | undefined>;
}
interface NodeClientRequest {
  write(chunk: Uint8Array): boolean;
  end(): void;
  destroy(err?: Error): void;
  once(ev: 'drain' | 'close', cb: () => void): void;
  on(ev: 'error', cb: (err: Error) => void): void;
  removeListener(ev: string, cb: (...args: never[]) => void): void;
}

/** isNode reports whether node:http is there to use. */
export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/** nodeRequest sends chunks as the body with node:http(s) and answers a Response. */
export async function nodeRequest(
  method: string,
  url: string,
  headers: Record<string, string>,
  chunks: AsyncGenerator<Uint8Array>,
  signal?: AbortSignal,
): Promise<Response> {
  const u = new URL(url);
  // A computed specifier keeps browser bundlers from resolving node:http.
  const spec = u.protocol === 'https:' ? 'node:https' : 'node:http';
  const http = (await import(/* @vite-ignore */ /* webpackIgnore: true */ spec)) as NodeHTTP;
  return new Promise<Response>((resolve, reject) => {
    let failed: Error | undefined;
    const req = http.request(u, { method, headers: { ...headers, 'Transfer-Encoding': 'chunked' }, signal }, async (res) => {
      try {
        const parts: Uint8Array[] = [];
        for await (const c of res) parts.push(c);
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => h.append(k, x));
          else if (v !== undefined) h.set(k, v);
        }
        const status = res.statusCode ?? 0;
        resolve(new Response(status === 204 || status === 304 ? null : new Blob(parts as BlobPart[]), { status, statusText: res.statusMessage ?? '', headers: h }));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', (err) => {
      failed = err;
      reject(err);
    });
    (async () => {
      try {
        for await (const c of chunks) {
          if (failed) return;
          if (!req.write(c)) {
            await new Promise<void>((r) => {
              const done = () => {
                req.removeListener('drain', done);
                req.removeListener('close', done);
                r();
              };
              req.once('drain', done);
              req.once('close', done);
            });
          }
        }
        req.end();
      } catch (err) {
        // The source failed: abort the request so that the server drops the
        // half-sent upload, and report the source's error.
        req.destroy(err as Error);
        reject(err);
      }
    })();
  });
}
