// Builds the dashboard into ../dist (or $OUTDIR): one ES module entry with
// code-split chunks for what the first page does not need, one stylesheet and
// index.html. The output is deterministic (no timestamps; chunk names carry
// content hashes only), so `make dashboard` reproduces the committed dist
// byte for byte and the Go test can compare them.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.OUTDIR || join(here, "..", "dist"));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { app: join(here, "src/main.tsx") },
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: out,
  chunkNames: "chunks/[name]-[hash]",
  logLevel: "warning",
});
await build({
  entryPoints: { app: join(here, "src/app.css") },
  bundle: true,
  minify: true,
  outdir: out,
  logLevel: "warning",
});
cpSync(join(here, "src/index.html"), join(out, "index.html"));
