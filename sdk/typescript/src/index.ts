// @berth-dev/berth: a fetch-based TypeScript client for berth's HTTP API.
export {
  Berth,
  Workspaces,
  Files,
  Sandboxes,
  Templates,
  Agents,
  Runs,
  Threads,
  Members,
  Keys,
  RunStream,
  type ArchiveFormat,
  type DownloadOptions,
  type WatchOptions,
  type WatchEvent,
  type SandboxListOptions,
  type ExecEvent,
  type ExecOptions,
  type BuildEvent,
  type RunEvent,
  type RunOptions,
} from './client.js';
export { BerthError } from './errors.js';
export { Transport, type BerthOptions, type RequestOptions, type Query } from './http.js';
export { parseSSE, type SSEvent } from './sse.js';
export type { UploadSource } from './upload.js';
export type * from './types.js';
export type { paths, components, operations } from './schema.js';
