// The SDK against a real `berth serve` (built from this repository, on a
// temporary data directory) and real Docker for sandboxes and agents.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Berth, BerthError } from '../dist/index.js';
import { startBerth, pkgDir, repoDir } from '../scripts/server.mjs';
import { schemaSource } from '../scripts/generate.mjs';

let server;
/** @type {Berth} */
let berth;

before(async () => {
  server = await startBerth();
  berth = new Berth({ url: server.url, apiKey: server.adminKey });
});

after(async () => {
  await server?.stop();
});

// rejects asserts that p fails with a BerthError of this status and code,
// carrying a message and a request id, and naming field (undefined: none).
async function rejects(p, status, code, field) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof BerthError, `want BerthError, got ${err}`);
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code, err.message);
    assert.equal(err.field, field, err.message);
    assert.ok(err.message.length > 0);
    assert.match(err.requestId, /\S/);
    return true;
  });
}

// eventually polls fn until it returns a truthy value (no fixed sleeps:
// backs off, gives up after a generous deadline for a busy machine).
async function eventually(fn, what, deadlineMs = 120_000) {
  const end = Date.now() + deadlineMs;
  let wait = 20;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 1000);
  }
}

test('committed src/schema.ts is generated from the served OpenAPI document', async () => {
  const have = readFileSync(join(pkgDir, 'src', 'schema.ts'), 'utf8');
  // The document this server serves, and api/openapi.json (npm run gen's
  // source), which the api package's tests keep equal to it.
  const served = await schemaSource(await berth.openapi());
  assert.ok(have === served, 'src/schema.ts is stale: run `npm run gen` in sdk/typescript and commit it');
  const file = await schemaSource(JSON.parse(readFileSync(join(repoDir, 'api', 'openapi.json'), 'utf8')));
  assert.ok(have === file, 'src/schema.ts differs from what api/openapi.json generates: run `npm run gen`');
});

test('health, readiness, me', async () => {
  assert.equal((await berth.health()).status, 'ok');
  const me = await berth.me();
  assert.equal(me.role, 'admin');
  assert.ok(me.scopes.length > 0);
  assert.equal(typeof (await berth.ready()).ready, 'boolean');
});

test('errors: envelope code, status and request id; no key; unreachable', async () => {
  await rejects(berth.workspaces.get('no-such-slug'), 404, 'not_found');
  await rejects(berth.workspaces.get('00000000-0000-0000-0000-000000000000'), 404, 'not_found');
  await rejects(berth.workspaces.create({ name: '' }), 400, 'invalid_request', 'name');
  await rejects(berth.workspaces.create({ name: 'q', quotaBytes: -1 }), 400, 'invalid_request', 'quotaBytes');
  const anon = new Berth({ url: server.url });
  await rejects(anon.me(), 401, 'unauthorized');
  const bad = new Berth({ url: server.url, apiKey: 'berth_not_a_key' });
  await rejects(bad.workspaces.list(), 401, 'unauthorized');
  // A port nothing listens on: the server that just stopped.
  const gone = await startBerth();
  await gone.stop();
  const lost = new Berth({ url: gone.url, apiKey: 'x' });
  await assert.rejects(lost.me(), (err) => err instanceof BerthError && err.code === 'unreachable' && err.message.includes(gone.url));
});

describe('workspaces', () => {
  test('create, get by id and slug, list, rename, quota, usage, space, access, delete', async () => {
    const ws = await berth.workspaces.create({ name: 'Docs Project', slug: 'docs-project' });
    assert.equal(ws.slug, 'docs-project');
    assert.equal((await berth.workspaces.get(ws.id)).name, 'Docs Project');
    assert.equal((await berth.workspaces.get('docs-project')).id, ws.id);
    const list = await berth.workspaces.list();
    assert.ok(list.workspaces.some((w) => w.id === ws.id));
    assert.ok(list.storage);
    assert.equal((await berth.workspaces.rename(ws.id, 'Docs')).name, 'Docs');
    assert.equal((await berth.workspaces.setQuota(ws.id, 1 << 20)).quotaBytes, 1 << 20);
    const space = await berth.workspaces.space(ws.id);
    assert.equal(space.total, 1 << 20);
    const usage = await berth.workspaces.usage(ws.id);
    assert.equal(usage.workspaceId, ws.id);
    assert.equal(usage.inUse, false);

    const m = await berth.members.add({ name: 'wsreader', role: 'member' });
    assert.deepEqual((await berth.workspaces.grant(ws.id, [m.id])).userIds, [m.id]);
    assert.deepEqual((await berth.workspaces.access(ws.id)).userIds, [m.id]);
    // The member's own key sees the granted workspace.
    const key = await berth.keys.create({ name: 'wsreader key', userId: m.id, scopes: ['files:read'] });
    const as = new Berth({ url: server.url, apiKey: key.key });
    assert.equal((await as.workspaces.get(ws.id)).id, ws.id);
    await rejects(as.workspaces.create({ name: 'nope' }), 403, 'forbidden');

    assert.deepEqual(await berth.workspaces.delete(ws.id), { id: ws.id, deleted: true });
    await rejects(berth.workspaces.get(ws.id), 404, 'not_found');
  });
});

describe('files', () => {
  let ws;
  before(async () => {
    ws = await berth.workspaces.create({ name: 'files test' });
  });

  test('mkdir, write, createFile, list, info, read, rename, move, copy, batch, delete', async () => {
    const d = await berth.files.mkdir(ws.id, '/src');
    assert.equal(d.type, 'directory');
    await berth.files.write(ws.id, '/src/a b.txt', 'hello wörld\n');
    assert.equal(await berth.files.readText(ws.id, '/src/a b.txt'), 'hello wörld\n');
    await berth.files.createFile(ws.id, '/src/new.txt', 'x');
    await rejects(berth.files.createFile(ws.id, '/src/new.txt', 'y'), 409, 'conflict');

    const page = await berth.files.list(ws.id, '/src');
    assert.deepEqual(page.data.map((e) => e.name).sort(), ['a b.txt', 'new.txt']);
    assert.equal(page.hasMore, false);
    // Paging: one entry a page, walked by iterate.
    const first = await berth.files.list(ws.id, '/src', { limit: 1 });
    assert.equal(first.data.length, 1);
    assert.equal(first.hasMore, true);
    const all = [];
    for await (const e of berth.files.iterate(ws.id, '/src', { limit: 1 })) all.push(e.name);
    assert.deepEqual(all.sort(), ['a b.txt', 'new.txt']);

    const info = await berth.files.info(ws.id, '/src');
    assert.equal(info.type, 'directory');

    assert.equal((await berth.files.rename(ws.id, '/src/new.txt', 'renamed.txt')).id, '/src/renamed.txt');
    await berth.files.mkdir(ws.id, '/dst');
    assert.equal((await berth.files.move(ws.id, '/src/renamed.txt', '/dst')).id, '/dst/renamed.txt');
    assert.equal((await berth.files.copy(ws.id, '/src/a b.txt', '/dst')).id, '/dst/a b.txt');
    assert.equal(await berth.files.readText(ws.id, '/dst/a b.txt'), 'hello wörld\n');
    await rejects(berth.files.copy(ws.id, '/src/a b.txt', '/dst'), 409, 'conflict');
    await berth.files.copy(ws.id, '/src/a b.txt', '/dst', { overwrite: true });

    const res = await berth.files.batch(ws.id, 'copy', ['/dst/renamed.txt', '/nope'], '/src');
    assert.deepEqual(res.map((r) => r.ok), [true, false]);
    assert.equal(res[1].error.code, 'not_found');

    // A range of a file.
    assert.equal(await berth.files.readText(ws.id, '/src/a b.txt', { range: [0, 4] }), 'hello');
    // A directory as a zip archive.
    const zip = await berth.files.read(ws.id, '/src', { format: 'zip' });
    assert.deepEqual([...zip.slice(0, 2)], [0x50, 0x4b]);

    assert.deepEqual(await berth.files.delete(ws.id, '/dst/a b.txt'), { id: '/dst/a b.txt', deleted: true });
    const del = await berth.files.delete(ws.id, ['/dst/renamed.txt', '/dst/gone']);
    assert.deepEqual(del.map((r) => r.ok), [true, false]);
    await rejects(berth.files.readText(ws.id, '/dst/a b.txt'), 404, 'not_found');
    await assert.rejects(berth.files.list(ws.id, '/../etc'), (err) => err instanceof BerthError && err.code === 'invalid_request');
    // The server refuses what the client lets through: a name with a NUL.
    await rejects(berth.files.write(ws.id, '/bad\0name', 'x'), 400, 'invalid_request');
  });

  test('upload from Blob, Uint8Array, string, ReadableStream, async generator and a Node stream', async () => {
    const { Readable } = await import('node:stream');
    const cases = [
      ['/up/blob.txt', new Blob(['from a blob']), 'from a blob'],
      ['/up/bytes.bin', new TextEncoder().encode('bytes'), 'bytes'],
      ['/up/str.txt', 'a string', 'a string'],
      ['/up/web.txt', new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('web ')); c.enqueue(new TextEncoder().encode('stream')); c.close(); } }), 'web stream'],
      ['/up/gen.txt', (async function* () { yield 'gen'; yield new TextEncoder().encode('erator'); })(), 'generator'],
      ['/up/node.txt', Readable.from([Buffer.from('node '), Buffer.from('readable')]), 'node readable'],
      ['/up/name "quoted".txt', 'q', 'q'],
    ];
    for (const [path, src, want] of cases) {
      const e = await berth.files.upload(ws.id, path, src);
      assert.equal(e.id, path);
      assert.equal(e.size, new TextEncoder().encode(want).length);
      assert.equal(await berth.files.readText(ws.id, path), want, path);
    }
    // A streamed upload the server refuses at once answers its error, even
    // while the source still has 64 MiB to send.
    const endless = (async function* () { for (let i = 0; i < 1024; i++) yield new Uint8Array(64 * 1024); })();
    await rejects(berth.files.upload('00000000-0000-0000-0000-000000000000', '/x.bin', endless), 404, 'not_found');
    // A source that fails mid-way leaves nothing behind.
    const failing = (async function* () { yield 'partial'; throw new Error('source broke'); })();
    await assert.rejects(berth.files.upload(ws.id, '/up/broken.txt', failing));
    await rejects(berth.files.info(ws.id, '/up/broken.txt'), 404, 'not_found');
  });

  test('watch: ready, then change events; stops on abort', async () => {
    await berth.files.mkdir(ws.id, '/w');
    const ac = new AbortController();
    const it = berth.files.watch(ws.id, { path: '/w', signal: ac.signal });
    const first = await it.next();
    assert.deepEqual(first.value, { type: 'ready', path: '/w' });
    await berth.files.write(ws.id, '/w/x.txt', 'one');
    const seen = [];
    for (;;) {
      const { value } = await it.next();
      seen.push(value);
      if (value.path === '/w/x.txt') break;
    }
    assert.ok(['create', 'write'].includes(seen.at(-1).type));
    ac.abort();
    await assert.rejects(it.next(), (err) => err.name === 'AbortError');
  });

  test('watch ends when the loop breaks', async () => {
    for await (const ev of berth.files.watch(ws.id)) {
      assert.equal(ev.type, 'ready');
      break;
    }
    // The stream is closed: a new watch (slots are limited per user) still works.
    for await (const ev of berth.files.watch(ws.id)) {
      assert.equal(ev.type, 'ready');
      break;
    }
  });
});

describe('members and keys', () => {
  test('add, get, setRole, list, remove; keys create, list, revoke', async () => {
    const m = await berth.members.add({ name: 'alice', email: 'alice@example.com', role: 'member' });
    assert.equal((await berth.members.get(m.id)).name, 'alice');
    assert.equal((await berth.members.setRole(m.id, 'admin')).role, 'admin');
    const names = [];
    for await (const x of berth.members.iterate({ limit: 1 })) names.push(x.name);
    assert.ok(names.includes('alice') && names.includes('admin'));
    assert.ok((await berth.members.list()).data.length >= 2);

    const k = await berth.keys.create({ name: 'ci', scopes: ['sandbox:read'] });
    assert.match(k.key, /^berth_/);
    assert.equal(k.status, 'active');
    const as = new Berth({ url: server.url, apiKey: k.key });
    assert.deepEqual((await as.me()).scopes, ['sandbox:read']);
    assert.ok((await berth.keys.list()).data.some((x) => x.id === k.id && x.key === undefined));
    assert.equal((await berth.keys.revoke(k.id)).status, 'revoked');
    await rejects(as.me(), 401, 'unauthorized');

    assert.deepEqual(await berth.members.remove(m.id), { id: m.id, deleted: true });
    await rejects(berth.members.get(m.id), 404, 'not_found');
  });
});

describe('templates, sandboxes, exec', () => {
  let sb;
  let ws;
  after(async () => {
    if (sb) await berth.sandboxes.destroy(sb.id).catch(() => {});
  });

  test('templates list and get', async () => {
    const ts = await berth.templates.list();
    assert.ok(ts.some((t) => t.name === 'base'));
    assert.equal((await berth.templates.get('base')).name, 'base');
    await rejects(berth.templates.get('no-such-template'), 404, 'not_found');
  });

  test('templates build, streamed: log lines, then the template', async () => {
    const events = [];
    for await (const ev of berth.templates.buildStream('base')) events.push(ev);
    assert.ok(events.filter((e) => e.type === 'progress').length > 0, 'no progress lines');
    const done = events.at(-1);
    assert.equal(done.type, 'done');
    assert.equal(done.template.name, 'base');
    assert.equal(done.template.ready, true);
    // Building is for admins.
    const m = await berth.members.add({ name: 'builder', role: 'member' });
    const key = await berth.keys.create({ name: 'builder key', userId: m.id, scopes: ['sandbox:write'] });
    const member = new Berth({ url: server.url, apiKey: key.key });
    await rejects(member.templates.build('base'), 403, 'forbidden');
  });

  test('create with a mount, get, list, exec, exec streaming, pause, resume, stop, start, keepalive, destroy', async () => {
    ws = await berth.workspaces.create({ name: 'sandbox ws' });
    await berth.files.write(ws.id, '/README.md', 'mounted\n');
    const name = `sdk-${Date.now()}`;
    sb = await berth.sandboxes.create({ template: 'base', name, tags: ['sdk'], mounts: [{ workspaceId: ws.id, path: '/workspace' }] });
    assert.equal(sb.status, 'running');
    assert.equal((await berth.sandboxes.get(name)).id, sb.id);
    assert.ok((await berth.sandboxes.list({ tag: ['sdk'] })).data.some((s) => s.id === sb.id));
    const ids = [];
    for await (const s of berth.sandboxes.iterate({ status: 'running' })) ids.push(s.id);
    assert.ok(ids.includes(sb.id));

    const out = await berth.sandboxes.exec(sb.id, 'cat /workspace/README.md; echo err >&2; exit 3');
    assert.equal(out.stdout, 'mounted\n');
    assert.equal(out.stderr, 'err\n');
    assert.equal(out.exitCode, 3);
    const argv = await berth.sandboxes.exec(sb.id, ['cat'], { stdin: 'from stdin' });
    assert.equal(argv.stdout, 'from stdin');

    const events = [];
    for await (const ev of berth.sandboxes.execStream(sb.id, 'echo one; echo two >&2; echo three; exit 7')) events.push(ev);
    const stdout = events.filter((e) => e.type === 'stdout').map((e) => e.text).join('');
    const stderr = events.filter((e) => e.type === 'stderr').map((e) => e.text).join('');
    assert.equal(stdout.replace(/\n+$/, ''), 'one\nthree');
    assert.equal(stderr.replace(/\n+$/, ''), 'two');
    assert.equal(events.at(-1).type, 'exit');
    assert.equal(events.at(-1).exitCode, 7);

    // exec with stream: true is execStream.
    const streamed = [];
    for await (const ev of berth.sandboxes.exec(sb.id, ['sh', '-c', 'printf hi'], { stream: true })) streamed.push(ev);
    assert.deepEqual(streamed.map((e) => e.type), ['stdout', 'exit']);
    assert.equal(streamed[0].text, 'hi');
    // Leaving the loop early closes the stream; the sandbox stays usable.
    for await (const ev of berth.sandboxes.execStream(sb.id, 'echo first; sleep 2; echo never')) {
      assert.equal(ev.type, 'stdout');
      break;
    }
    assert.equal((await berth.sandboxes.exec(sb.id, 'echo after')).stdout, 'after\n');

    assert.equal((await berth.sandboxes.pause(sb.id)).status, 'paused');
    assert.equal((await berth.sandboxes.resume(sb.id)).status, 'running');
    assert.equal((await berth.sandboxes.stop(sb.id)).status, 'stopped');
    await rejects(berth.sandboxes.exec(sb.id, 'true'), 409, 'conflict');
    assert.equal((await berth.sandboxes.start(sb.id)).status, 'running');
    assert.equal((await berth.sandboxes.keepalive(sb.id)).id, sb.id);
    assert.equal((await berth.workspaces.usage(ws.id)).inUse, true);
    await rejects(berth.workspaces.delete(ws.id), 409, 'WORKSPACE_IN_USE');

    assert.deepEqual(await berth.sandboxes.destroy(sb.id), { id: sb.id, deleted: true });
    assert.equal((await berth.sandboxes.get(sb.id)).status, 'destroyed');
    sb = undefined;
    await berth.workspaces.delete(ws.id);
  });
});

describe('agents, runs, threads', () => {
  let ws;
  before(async () => {
    ws = await berth.workspaces.create({ name: 'agent ws', slug: 'agent-ws' });
    await berth.files.write(ws.id, '/README.md', 'the readme\n');
  });

  test('create, get, list, run, stream, threads, runs, delete', async () => {
    const up = await berth.agents.create({
      slug: 'code-assistant',
      name: 'Code assistant',
      executionMode: 'managed',
      template: 'base',
      mounts: [{ workspaceId: ws.id, path: '/workspace' }],
      command: ['/bin/sh', '-c', 'echo "prompt: $BERTH_PROMPT"; head -n 1 /workspace/README.md; echo warn >&2'],
    });
    assert.equal(up.action, 'created');
    assert.equal((await berth.agents.apply({ slug: 'code-assistant', executionMode: 'managed', template: 'base',
      mounts: [{ workspaceId: ws.id, path: '/workspace' }],
      command: ['/bin/sh', '-c', 'echo "prompt: $BERTH_PROMPT"; head -n 1 /workspace/README.md; echo warn >&2'] })).action, 'updated');
    assert.equal((await berth.agents.get('code-assistant')).slug, 'code-assistant');
    assert.ok((await berth.agents.list()).data.some((a) => a.slug === 'code-assistant'));

    // Not streamed: the finished run.
    const run = await berth.agent.run('code-assistant', 'Open /workspace/README.md');
    assert.equal(run.status, 'completed');
    assert.equal(run.exitCode, 0);
    assert.equal(run.output, 'prompt: Open /workspace/README.md\nthe readme\n');
    assert.equal(run.stderr, 'warn\n');

    // Streamed, continuing the thread.
    const stream = berth.agent.run('code-assistant', 'second', { threadId: run.threadId, stream: true });
    const events = [];
    for await (const ev of stream) events.push(ev);
    const types = events.map((e) => e.type);
    assert.equal(types[0], 'prompt');
    assert.equal(events[0].text, 'second');
    assert.ok(types.includes('status'));
    assert.equal(types.at(-1), 'result');
    assert.equal(events.filter((e) => e.type === 'stdout').map((e) => e.text).join('\n').replace(/\n+/g, '\n').trim(), 'prompt: second\nthe readme');
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    const final = await stream.result();
    assert.equal(final.status, 'completed');
    assert.equal(final.threadId, run.threadId);

    // Runs: get, stored events, follow a finished run from the start.
    assert.equal((await berth.runs.get(final.runId)).output, 'prompt: second\nthe readme\n');
    const stored = await berth.runs.events(final.runId);
    assert.deepEqual(stored.data.map((e) => e.type), types);
    const followed = await berth.runs.follow(final.runId).result();
    assert.equal(followed.runId, final.runId);

    // Threads.
    const threads = await berth.threads.list({ agent: 'code-assistant' });
    assert.equal(threads.data.length, 1);
    const th = await berth.threads.get(run.threadId);
    assert.deepEqual(th.runs.map((r) => r.runId), [run.runId, final.runId]);
    assert.ok((await berth.threads.events(run.threadId)).data.length >= types.length);
    assert.equal((await berth.threads.update(run.threadId, { title: 'renamed' })).title, 'renamed');
    assert.deepEqual((await berth.agents.runs('code-assistant')).map((r) => r.runId), [run.runId, final.runId]);

    await rejects(berth.agent.run('no-such-agent', 'x'), 404, 'not_found');
    // An error before the stream starts is a plain BerthError.
    await rejects((async () => { for await (const ev of berth.agent.run('no-such-agent', 'x', { stream: true })) void ev; })(), 404, 'not_found');

    assert.deepEqual(await berth.threads.delete(run.threadId), { id: run.threadId, deleted: true });
    assert.deepEqual(await berth.agents.delete('code-assistant'), { slug: 'code-assistant', deleted: true });
    await rejects(berth.agents.get('code-assistant'), 404, 'not_found');
  });

  test('cancel a running run', async () => {
    await berth.agents.create({ slug: 'sleeper', executionMode: 'managed', template: 'base', command: ['/bin/sh', '-c', 'echo started; sleep 300'] });
    const stream = berth.agent.run('sleeper', 'zzz', { stream: true });
    let runId;
    for await (const ev of stream) {
      if (ev.type === 'stdout' && ev.text.includes('started')) {
        const st = (await berth.threads.list({ agent: 'sleeper' })).data[0];
        runId = (await berth.threads.get(st.id)).runs[0].runId;
        const c = await berth.runs.cancel(runId);
        assert.equal(c.runId, runId);
      }
    }
    const final = await stream.result();
    assert.equal(final.status, 'cancelled');
    await eventually(async () => (await berth.runs.get(runId)).status === 'cancelled', 'the run to be cancelled');
    await berth.agents.delete('sleeper');
  });
});

test('examples/agent.ts runs against the server (the README walk-through)', async () => {
  const { execFile } = await import('node:child_process');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const ts = (await import('typescript')).default;
  const { pathToFileURL } = await import('node:url');
  // Types stripped by the TypeScript compiler; '@berth-dev/berth' is this
  // package's dist/.
  const src = readFileSync(join(pkgDir, 'examples', 'agent.ts'), 'utf8');
  const js = ts
    .transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } })
    .outputText.replace(`from '@berth-dev/berth'`, `from '${pathToFileURL(join(pkgDir, 'dist', 'index.js'))}'`);
  const dir = join(pkgDir, 'node_modules', '.cache', 'examples');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'agent.mjs');
  writeFileSync(file, js);
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { env: { ...process.env, BERTH_URL: server.url, BERTH_API_KEY: server.adminKey } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`example failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
  assert.match(stdout, /^completed 0$/m);
  assert.match(stdout, /task: Open \/workspace\/src\/README\.md and summarise it/);
  assert.match(stdout, /# Docs Project/);
  assert.match(stdout, /task: And now the title only/);
  assert.match(stdout, /done: completed/);
  const ws = await berth.workspaces.get('docs-project');
  assert.equal(await berth.files.readText(ws.id, '/src/README.md'), '# Docs Project\n\nHello from the SDK.\n');
});
