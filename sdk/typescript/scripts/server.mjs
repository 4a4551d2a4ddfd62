// Starts a real `berth serve` for the tests and for `npm run gen`: builds
// bin/berth from this repository (or uses $BERTH_BIN), serves on a free
// port of 127.0.0.1 with a temporary data directory, and reads the admin
// key the server writes there. stop() ends the server and removes the
// directory.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const here = dirname(fileURLToPath(import.meta.url));
export const pkgDir = resolve(here, '..');
export const repoDir = resolve(pkgDir, '..', '..');

// berthBinary returns $BERTH_BIN, or builds ./cmd/berth into
// node_modules/.cache/berth/berth (once per `npm test`: the pretest step
// builds it; a test file run alone builds it itself).
export function berthBinary({ rebuild = false } = {}) {
  if (process.env.BERTH_BIN) return process.env.BERTH_BIN;
  const out = join(pkgDir, 'node_modules', '.cache', 'berth', 'berth');
  if (rebuild || !existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    const go = process.env.GO || 'go';
    execFileSync(go, ['build', '-o', out, './cmd/berth'], { cwd: repoDir, stdio: 'inherit' });
  }
  return out;
}

// startBerth starts `berth serve` and resolves once it answers, with its
// url, admin key and a stop function.
export async function startBerth({ args = [], timeoutMs = 120_000 } = {}) {
  const bin = berthBinary();
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-sdk-'));
  const child = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir, '--log-format', 'json', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, BERTH_BOOTSTRAP_KEY: '' },
  });
  const log = [];
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth serve did not start within ${timeoutMs} ms:\n${log.join('\n')}`)), timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`berth serve exited (${code}):\n${log.join('\n')}`)); });
    createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(line);
      if (log.length > 2000) log.shift();
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'berth serving' && rec.url) { clearTimeout(timer); resolveUrl(rec.url); }
      } catch { /* not JSON: keep it in the log */ }
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.on('exit', r));
  const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  return {
    url,
    adminKey,
    dataDir,
    log: () => log.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// CLI: `node scripts/server.mjs build` builds the binary (pretest).
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'build') {
  berthBinary({ rebuild: true });
}
