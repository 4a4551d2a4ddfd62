// npm run gen: writes src/schema.ts from the OpenAPI document of a berth
// server: $BERTH_URL if set, else one built from this repository and
// started on a temporary data directory.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBerth, berthBinary, pkgDir } from './server.mjs';
import { schemaSource } from './generate.mjs';

let url = process.env.BERTH_URL;
let server;
if (!url) {
  berthBinary({ rebuild: !process.env.BERTH_BIN });
  server = await startBerth();
  url = server.url;
}
try {
  const res = await fetch(new URL('/v1/openapi.json', url));
  if (!res.ok) throw new Error(`GET /v1/openapi.json: ${res.status} ${await res.text()}`);
  const out = join(pkgDir, 'src', 'schema.ts');
  writeFileSync(out, await schemaSource(await res.json()));
  console.log(`wrote ${out} from ${url}`);
} finally {
  await server?.stop();
}
