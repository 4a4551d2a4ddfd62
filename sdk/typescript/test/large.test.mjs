// 100 MiB up and down through the SDK with bounded memory: the upload is
// generated chunk by chunk (never held whole), the download hashed as it
// streams, and this process's memory may not grow by anything near the
// file's size. Its own process (node --test runs each file in one), so
// the other tests' allocations do not count.
//
// What is measured is memory still reachable: every 4 MiB the test
// collects garbage and samples RSS and ArrayBuffer memory. A client that
// buffers (or, like Node's fetch with a stream body, keeps every chunk
// sent: nodejs/undici#4058) holds the file's bytes and fails; garbage
// that V8 has not got round to collecting yet does not count.
import v8 from 'node:v8';
import vm from 'node:vm';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Berth } from '../dist/index.js';
import { startBerth } from '../scripts/server.mjs';

const MiB = 1 << 20;
const SIZE = 100 * MiB;
const CHUNK = 256 * 1024;
// Growth allowed over the baseline: half the file. Streaming needs a few
// MiB of buffers; buffering the file would need all 100.
const LIMIT = 50 * MiB;
// ArrayBuffer memory is the bytes themselves, without the allocator's
// slack that RSS carries (freed memory it has not returned yet): a tighter
// bound, still a sixth of the file.
const BUFFER_LIMIT = 16 * MiB;
const SAMPLE_EVERY = (4 * MiB) / CHUNK;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

let server;
let berth;
before(async () => {
  server = await startBerth();
  berth = new Berth({ url: server.url, apiKey: server.adminKey });
});
after(async () => {
  await server?.stop();
});

// chunks yields SIZE bytes of a pattern that changes with every chunk (so
// that a dropped, repeated or reordered chunk changes the hash), each a
// fresh buffer, and feeds the hash as it goes.
async function* chunks(hash) {
  for (let off = 0, i = 0; off < SIZE; off += CHUNK, i++) {
    const c = new Uint8Array(Math.min(CHUNK, SIZE - off));
    const view = new DataView(c.buffer);
    for (let j = 0; j + 4 <= c.length; j += 4) view.setUint32(j, (i * 2654435761 + j) >>> 0);
    hash.update(c);
    yield c;
  }
}

// peakDuring runs fn, which calls sample() once a chunk; every
// SAMPLE_EVERY chunks that collects garbage and records the RSS and
// ArrayBuffer memory left.
async function peakDuring(fn) {
  const peak = { rss: 0, arrayBuffers: 0, samples: 0 };
  let n = 0;
  const sample = () => {
    if (++n % SAMPLE_EVERY !== 0) return;
    gc();
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
    peak.samples++;
  };
  const result = await fn(sample);
  return { result, peak };
}

test('upload and download 100 MiB with bounded memory', { timeout: 15 * 60_000 }, async () => {
  const ws = await berth.workspaces.create({ name: 'large' });
  // Warm up the code paths (fetch, TLS-less sockets, multipart) so that
  // their one-time allocations are in the baseline.
  await berth.files.upload(ws.id, '/warm.bin', (async function* () { yield new Uint8Array(CHUNK); })());
  await (await berth.files.download(ws.id, '/warm.bin')).arrayBuffer();
  gc();
  const base = process.memoryUsage();

  const upHash = createHash('sha256');
  const up = await peakDuring(async (sample) => {
    const gen = chunks(upHash);
    const counted = (async function* () {
      for await (const c of gen) {
        sample();
        yield c;
      }
    })();
    return berth.files.upload(ws.id, '/big/file.bin', counted);
  });
  assert.equal(up.result.size, SIZE);
  assert.equal((await berth.files.info(ws.id, '/big/file.bin')).size, SIZE);

  const downHash = createHash('sha256');
  const down = await peakDuring(async (sample) => {
    const res = await berth.files.download(ws.id, '/big/file.bin');
    assert.equal(res.headers.get('content-length'), String(SIZE));
    let n = 0;
    for await (const c of res.body) {
      downHash.update(c);
      n += c.length;
      sample();
    }
    return n;
  });
  assert.equal(down.result, SIZE);
  assert.equal(downHash.digest('hex'), upHash.digest('hex'), 'downloaded bytes differ from the uploaded ones');

  const mib = (n) => (n / MiB).toFixed(1);
  for (const [what, r] of [['upload', up], ['download', down]]) {
    const rss = r.peak.rss - base.rss;
    const ab = r.peak.arrayBuffers - base.arrayBuffers;
    console.log(`${what}: ${r.peak.samples} samples; growth over baseline: rss ${mib(rss)} MiB, ArrayBuffers ${mib(ab)} MiB`);
    // Every 4 MiB of 100: a transfer that sampled nothing proves nothing.
    assert.ok(r.peak.samples >= 20, `${what}: only ${r.peak.samples} memory samples`);
    assert.ok(rss < LIMIT, `${what} grew RSS by ${mib(rss)} MiB (limit ${mib(LIMIT)})`);
    assert.ok(ab < BUFFER_LIMIT, `${what} grew ArrayBuffer memory by ${mib(ab)} MiB (limit ${mib(BUFFER_LIMIT)})`);
  }
  await berth.workspaces.delete(ws.id);
});
