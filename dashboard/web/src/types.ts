// API objects the sandbox, agent and organization pages share (API.md).

export interface Mount {
  workspaceId: string;
  path: string;
  readOnly: boolean;
}

export interface Sandbox {
  id: string;
  name: string;
  status: string;
  statusReason?: string;
  template: string;
  tags: string[];
  env: string[];
  resources: { vcpus?: number; memory?: string; disk?: string; pids?: number };
  mounts: Mount[];
  hasWritableWorkspaceMount: boolean;
  idleTimeout: number;
  network: string;
  ownerUserId: string;
  createdAt: string;
  updatedAt: string;
  lastActivityAt: string;
  ip: string;
}

export interface Template {
  name: string;
  description: string;
  image: string;
  ready: boolean;
  resources: { vcpus: number; memory: string; disk: string; pids: number };
}

export interface WorkspaceRef {
  id: string;
  slug: string;
  name: string;
  isPersonal: boolean;
}

export interface Agent {
  id: string;
  slug: string;
  name: string;
  description: string;
  executionMode: "in_sandbox" | "managed";
  sandboxId: string;
  template: string;
  mounts: Mount[];
  command: string[];
  env: string[];
  timeout: number;
  version: number;
  ownerUserId: string;
  endpoint: string;
  createdAt: string;
  updatedAt: string;
}

export interface Run {
  runId: string;
  threadId: string;
  agentSlug: string;
  agentVersion: number;
  sandboxId: string;
  executionMode: string;
  status: string;
  statusReason: string;
  exitCode: number | null;
  output: string;
  stderr: string;
  truncated: boolean;
  durationMs: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Thread {
  id: string;
  agentSlug: string;
  title: string;
  archived: boolean;
  eventCount: number;
  createdAt: string;
  updatedAt: string;
  runs?: Run[];
}

export interface RunEvent {
  seq: number;
  threadId: string;
  runId: string;
  type: string;
  text?: string;
  data?: unknown;
  createdAt: string;
}

export interface Member {
  id: string;
  name: string;
  email: string;
  role: "admin" | "member";
  createdAt: string;
}

export interface ApiKey {
  id: string;
  name: string;
  keyPrefix: string;
  scopes: string[];
  ownerUserId: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  createdAt: string;
  status: "active" | "revoked" | "expired";
  key?: string;
}
