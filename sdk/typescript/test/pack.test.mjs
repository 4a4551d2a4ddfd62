// npm pack makes a publishable tarball: the compiled module with its
// types, README and LICENSE, importable on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pkgDir } from '../scripts/server.mjs';

test('npm pack: files, exports, and the packed module imports', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-pack-'));
  try {
    // --ignore-scripts: npm test has built dist/ already, and prepack's
    // rebuild would pull it from under the other test files.
    const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: pkgDir, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    const files = info.files.map((f) => f.path);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/schema.d.ts']) {
      assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(', ')}`);
    }
    assert.ok(!files.some((f) => f.startsWith('node_modules/') || f.startsWith('test/')), files.join(', '));
    execFileSync('tar', ['-xzf', join(dir, info.filename), '-C', dir]);
    const pkg = JSON.parse(readFileSync(join(dir, 'package', 'package.json'), 'utf8'));
    assert.equal(pkg.type, 'module');
    assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], 'the SDK has no runtime dependencies');
    const mod = await import(pathToFileURL(join(dir, 'package', pkg.exports['.'].import)).href);
    assert.equal(typeof mod.Berth, 'function');
    assert.equal(typeof mod.BerthError, 'function');
    const b = new mod.Berth({ url: 'http://127.0.0.1:1' });
    assert.equal(typeof b.agent.run, 'function');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
