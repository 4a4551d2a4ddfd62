// Friendly names for the generated OpenAPI types (src/schema.ts).
import type { components } from './schema.js';

type S = components['schemas'];

export type Agent = S['Agent'];
export type AgentInput = S['AgentInput'];
export type AgentUpserted = S['AgentUpserted'];
export type AgentDeleted = S['AgentDeleted'];
export type APIKey = S['APIKey'];
export type KeyInput = S['KeyInput'];
export type BatchResult = S['BatchResult'];
export type Deleted = S['Deleted'];
export type ErrorBody = S['ErrorBody'];
export type RunEventRecord = S['Event'];
export type ExecInput = S['ExecInput'];
export type ExecOutput = S['ExecOutput'];
export type ExecResult = S['ExecResult'];
export type FileEntry = S['FileEntry'];
export type FileEvent = S['FileEvent'];
export type FileSummary = S['FileSummary'];
export type Health = S['Health'];
export type Me = S['Me'];
export type Member = S['Member'];
export type MemberInput = S['MemberInput'];
export type Mount = S['Mount'];
export type MountInput = S['MountInput'];
export type Readiness = S['Readiness'];
export type Run = S['Run'];
export type RunInput = S['RunInput'];
export type RunStatus = S['RunStatus'];
export type Sandbox = S['Sandbox'];
export type SandboxCreateInput = S['SandboxCreateInput'];
export type StreamError = S['StreamError'];
export type Template = S['Template'];
export type TemplateBuild = S['TemplateBuild'];
export type Thread = S['Thread'];
export type ThreadUpdateInput = S['ThreadUpdateInput'];
export type WatchReady = S['WatchReady'];
export type Workspace = S['Workspace'];
export type WorkspaceCreateInput = S['WorkspaceCreateInput'];
export type WorkspaceList = S['WorkspaceList'];
export type WorkspaceSpace = S['WorkspaceSpace'];
export type WorkspaceUpdateInput = S['WorkspaceUpdateInput'];
export type WorkspaceUsage = S['WorkspaceUsage'];
export type WorkspaceAccess = S['WorkspaceAccess'];
export type Snapshot = S['Snapshot'];
export type SnapshotRestore = S['SnapshotRestore'];
export type WorkspaceCloneInput = S['WorkspaceCloneInput'];

/** One page of a paginated list. */
export interface Page<T> {
  data: T[];
  hasMore: boolean;
  /** Pass as `cursor` for the next page; null on the last. */
  nextCursor: string | null;
  requestId: string;
}

/** Paging options of every list that takes them. */
export interface PageOptions {
  limit?: number;
  cursor?: string;
  signal?: AbortSignal;
}
