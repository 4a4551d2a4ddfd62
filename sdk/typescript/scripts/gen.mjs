// npm run gen: writes src/schema.ts from berth's OpenAPI document:
//   by default api/openapi.json, the document as served, which the api
//     package's tests keep current (BERTH_UPDATE_OPENAPI=1 go test ./api
//     -run TestOpenAPIFileIsCurrent rewrites it);
//   BERTH_URL=http://host:port: the document a running server serves;
//   --serve: a berth built from this repository and started on a
//     temporary data directory.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBerth, berthBinary, pkgDir, repoDir } from './server.mjs';
import { schemaSource } from './generate.mjs';

let doc;
let from;
let server;
try {
  let url = process.env.BERTH_URL;
  if (!url && process.argv.includes('--serve')) {
    berthBinary({ rebuild: !process.env.BERTH_BIN });
    server = await startBerth();
    url = server.url;
  }
  if (url) {
    const res = await fetch(new URL('/v1/openapi.json', url));
    if (!res.ok) throw new Error(`GET /v1/openapi.json: ${res.status} ${await res.text()}`);
    doc = await res.json();
    from = url;
  } else {
    from = join(repoDir, 'api', 'openapi.json');
    doc = JSON.parse(readFileSync(from, 'utf8'));
  }
} finally {
  await server?.stop();
}
const out = join(pkgDir, 'src', 'schema.ts');
writeFileSync(out, await schemaSource(doc));
console.log(`wrote ${out} from ${from}`);
