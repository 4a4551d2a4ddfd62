// The one way pages talk to the API: same-origin fetch with the session
// cookie, the CSRF token on every state-changing request, and errors turned
// into ApiError (code, message, request id) for the error banner.

let csrfToken = "";

/** setCsrf keeps the session's CSRF token (in memory only). */
export function setCsrf(token: string) {
  csrfToken = token;
}

/** ApiError is an API error envelope, or a network failure (code "network"). */
export class ApiError extends Error {
  status: number;
  code: string;
  requestId: string;
  /** The JSON path of the request field the error is about ("mounts[1].path"), if any. */
  field?: string;
  constructor(status: number, code: string, message: string, requestId: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    if (field) this.field = field;
  }
}

export interface Meta {
  requestId: string;
  hasMore?: boolean;
  nextCursor?: string | null;
}

export interface Result<T> {
  data: T;
  meta: Meta;
  headers: Headers;
}

export interface Options {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** stream only: called with the answer's headers once the stream is open (its X-Request-Id names the request in an error event). */
  onOpen?: (headers: Headers) => void;
}

const unsafe = (method: string) => !["GET", "HEAD", "OPTIONS"].includes(method);

/** headersFor returns the headers every request of method carries. */
export function headersFor(method: string): Record<string, string> {
  const h: Record<string, string> = { Accept: "application/json" };
  if (unsafe(method) && csrfToken) h["X-CSRF-Token"] = csrfToken;
  return h;
}

/** errorFrom reads an error envelope from a failed response. */
export async function errorFrom(res: Response): Promise<ApiError> {
  const rid = res.headers.get("X-Request-Id") || "";
  try {
    const body = await res.json();
    const e = body && body.error;
    if (e)
      return new ApiError(
        res.status,
        e.code || "error",
        e.message || res.statusText,
        e.requestId || rid,
        typeof e.field === "string" ? e.field : undefined,
      );
  } catch {
    // not JSON: fall through
  }
  return new ApiError(res.status, "http_" + res.status, `${res.status} ${res.statusText}`, rid);
}

/** request sends one API request and decodes the {data, meta} envelope. */
export async function request<T = unknown>(method: string, path: string, opt: Options = {}): Promise<Result<T>> {
  const headers = { ...headersFor(method), ...(opt.headers || {}) };
  let body: BodyInit | undefined;
  if (opt.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opt.body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, credentials: "same-origin", signal: opt.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network", "The server could not be reached: " + (e as Error).message, "");
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !path.startsWith("/v1/session")) onUnauthenticated(err);
    throw err;
  }
  const env = await res.json();
  return { data: env.data as T, meta: env.meta || {}, headers: res.headers };
}

export const api = {
  get: <T>(path: string, opt?: Options) => request<T>("GET", path, opt),
  post: <T>(path: string, body?: unknown, opt?: Options) => request<T>("POST", path, { ...opt, body }),
  put: <T>(path: string, body?: unknown, opt?: Options) => request<T>("PUT", path, { ...opt, body }),
  patch: <T>(path: string, body?: unknown, opt?: Options) => request<T>("PATCH", path, { ...opt, body }),
  del: <T>(path: string, body?: unknown, opt?: Options) => request<T>("DELETE", path, { ...opt, body }),
};

let unauthenticated: (e: ApiError) => void = () => {};
function onUnauthenticated(e: ApiError) {
  unauthenticated(e);
}
/** onSessionLost registers what happens when the session ends under us. */
export function onSessionLost(fn: (e: ApiError) => void) {
  unauthenticated = fn;
}

/** enc escapes each segment of a workspace path for a URL. */
export function encPath(p: string): string {
  return p
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
}

export interface SSEEvent {
  event: string;
  data: string;
  id: string;
}

/**
 * stream reads a Server-Sent Events response over fetch (so it carries the
 * cookie and, for POSTs, the CSRF token) and calls onEvent per event until the
 * stream ends or signal aborts. It resolves when the stream ends.
 */
export async function stream(
  method: string,
  path: string,
  onEvent: (e: SSEEvent) => void,
  opt: Options = {},
): Promise<void> {
  const headers: Record<string, string> = { ...headersFor(method), Accept: "text/event-stream", ...(opt.headers || {}) };
  let body: BodyInit | undefined;
  if (opt.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opt.body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body, credentials: "same-origin", signal: opt.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") return;
    throw new ApiError(0, "network", "The server could not be reached: " + (e as Error).message, "");
  }
  if (!res.ok || !res.body) throw await errorFrom(res);
  opt.onOpen?.(res.headers);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let cur: SSEEvent = { event: "", data: "", id: "" };
  let hasData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl: number;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (hasData || cur.event) onEvent({ ...cur, event: cur.event || "message" });
          cur = { event: "", data: "", id: "" };
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? "" : line.slice(i + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") cur.event = v;
        else if (field === "id") cur.id = v;
        else if (field === "data") {
          cur.data = hasData ? cur.data + "\n" + v : v;
          hasData = true;
        }
      }
    }
  } catch (e) {
    if ((e as Error).name !== "AbortError") throw e;
  }
}

export interface UploadItem {
  file: File;
  /** path relative to the upload directory, e.g. "folder/sub/a.txt" */
  name: string;
}

/**
 * upload sends one file with XMLHttpRequest (fetch has no upload progress),
 * reporting loaded/total; abort via the returned handle.
 */
export function upload(
  url: string,
  item: UploadItem,
  onProgress: (loaded: number, total: number) => void,
): { done: Promise<unknown>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", url);
    for (const [k, v] of Object.entries(headersFor("POST"))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : item.file.size);
    xhr.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // not JSON
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body && body.data);
        return;
      }
      const e = body && body.error;
      reject(
        new ApiError(
          xhr.status,
          (e && e.code) || "http_" + xhr.status,
          (e && e.message) || `${xhr.status} ${xhr.statusText}`,
          (e && e.requestId) || xhr.getResponseHeader("X-Request-Id") || "",
        ),
      );
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload failed: the server could not be reached", ""));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "Upload cancelled", ""));
    const form = new FormData();
    form.append("file", item.file, item.name);
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}
