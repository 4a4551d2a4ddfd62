// Runs the code-assistant agent on a workspace, as in the README:
//
//   BERTH_URL=http://127.0.0.1:8080 BERTH_API_KEY=$(cat berth-data/admin.key) \
//     node --experimental-strip-types examples/agent.ts    (Node 22.6+; or compile with tsc)
//
// It creates the "docs-project" workspace, uploads README.md into it,
// defines the agent (a managed agent on the base template: each run gets a
// fresh sandbox with the workspace at /workspace), runs it once and then
// streams a second run on the same thread.
import { Berth, BerthError } from '@berth-dev/berth';

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

const berth = new Berth({
  url: process.env.BERTH_URL ?? 'http://127.0.0.1:8080',
  apiKey: process.env.BERTH_API_KEY,
});

async function main(): Promise<void> {
  const ws = await berth.workspaces.get('docs-project').catch(async (err: unknown) => {
    if (err instanceof BerthError && err.status === 404) {
      return berth.workspaces.create({ name: 'Docs Project', slug: 'docs-project' });
    }
    throw err;
  });
  await berth.files.upload(ws.id, '/src/README.md', '# Docs Project\n\nHello from the SDK.\n');

  await berth.agents.create({
    slug: 'code-assistant',
    executionMode: 'managed',
    template: 'base',
    mounts: [{ workspaceId: ws.id, path: '/workspace' }],
    // The prompt arrives as $BERTH_PROMPT (and on stdin).
    command: ['/bin/sh', '-c', 'echo "task: $BERTH_PROMPT"; head -n 3 /workspace/src/README.md'],
  });

  const run = await berth.agent.run('code-assistant', 'Open /workspace/src/README.md and summarise it');
  console.log(run.status, run.exitCode);
  console.log(run.output);

  // The same thread, streamed.
  for await (const ev of berth.agent.run('code-assistant', 'And now the title only', { threadId: run.threadId, stream: true })) {
    if (ev.type === 'stdout') console.log(ev.text);
    if (ev.type === 'result') console.log('done:', ev.run.status);
  }
}

main().catch((err: unknown) => {
  if (err instanceof BerthError) console.error(`${err.code}: ${err.message} (request ${err.requestId})`);
  else console.error(err);
  process.exitCode = 1;
});
