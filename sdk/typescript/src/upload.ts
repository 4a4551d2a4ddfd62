/**
 * What an upload accepts. Blobs (and Files) go as FormData, which fetch
 * streams from the Blob itself; bytes and strings become a Blob. Streams,
 * async iterables (a Node Readable is one) and generators are encoded as
 * multipart/form-data here, chunk by chunk as fetch pulls them, so nothing
 * is buffered whatever the size.
 */
export type UploadSource =
  | Blob
  | Uint8Array
  | ArrayBuffer
  | string
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array>;

/**
 * A multipart body: either one fetch can send as is (FormData), or a
 * stream of chunks with its Content-Type.
 */
export type MultipartBody =
  | { form: FormData }
  | { chunks: AsyncGenerator<Uint8Array>; contentType: string };

// The file's name travels in the "name" field, which the API reads before
// the file part, rather than in the part's filename parameter: quoting
// rules for that parameter differ between encoders (browsers send '"' as
// %22), the field's value needs none.

// A boundary only has to be unlikely in the data; Node 18 has no global
// crypto without a flag, so Math.random stands in there.
function boundary(): string {
  const b = new Uint8Array(16);
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  return '----berth' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array | string> {
  return x != null && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

function isIterable(x: unknown): x is Iterable<Uint8Array> {
  return x != null && typeof x !== 'string' && typeof (x as Iterable<unknown>)[Symbol.iterator] === 'function';
}

/** multipart builds the upload body of one file named name. */
export function multipart(name: string, src: UploadSource): MultipartBody {
  if ((typeof Blob !== 'undefined' && src instanceof Blob) || typeof src === 'string' || src instanceof Uint8Array || src instanceof ArrayBuffer) {
    const form = new FormData();
    form.append('name', name);
    form.append('file', src instanceof Blob ? src : new Blob([src as BlobPart]), 'upload');
    return { form };
  }
  const b = boundary();
  const enc = new TextEncoder();
  const head = enc.encode(
    `--${b}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${name}\r\n` +
      `--${b}\r\nContent-Disposition: form-data; name="file"; filename="upload"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  const tail = enc.encode(`\r\n--${b}--\r\n`);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield head;
    yield* sourceChunks(src);
    yield tail;
  }
  return { chunks: chunks(), contentType: `multipart/form-data; boundary=${b}` };
}

/** A ReadableStream that pulls from chunks only when its reader wants more. */
export function pullStream(chunks: AsyncGenerator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel(reason) {
        await chunks.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

async function* sourceChunks(src: UploadSource): AsyncGenerator<Uint8Array> {
  const enc = new TextEncoder();
  if (typeof ReadableStream !== 'undefined' && src instanceof ReadableStream) {
    const reader = src.getReader();
    let finished = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          finished = true;
          return;
        }
        if (value.byteLength > 0) yield value;
      }
    } finally {
      if (!finished) await reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }
  if (isAsyncIterable(src)) {
    for await (const c of src) {
      const u = typeof c === 'string' ? enc.encode(c) : c;
      if (u.byteLength > 0) yield u;
    }
    return;
  }
  if (isIterable(src)) {
    for (const c of src) if (c.byteLength > 0) yield c;
    return;
  }
  throw new TypeError('berth: upload takes a Blob, Uint8Array, ArrayBuffer, string, ReadableStream or (async) iterable of bytes');
}
