-- +goose Up
-- Agents are addressed by slug, unique per org; every upsert bumps version.
-- Runs and threads keep the agent's id and slug rather than a foreign key:
-- they stay readable after the agent is deleted.
CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    owner_user_id  TEXT NOT NULL,
    slug           TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    execution_mode TEXT NOT NULL CHECK (execution_mode IN ('in_sandbox', 'managed')),
    sandbox_id     TEXT NOT NULL DEFAULT '',
    template       TEXT NOT NULL DEFAULT '',
    command        TEXT NOT NULL,
    env            TEXT NOT NULL DEFAULT '{}',
    timeout_ms     BIGINT NOT NULL DEFAULT 0,
    version        BIGINT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    UNIQUE (org_id, slug)
);
CREATE INDEX agents_sandbox ON agents(sandbox_id);

-- Workspace mounts of managed agents (a fresh sandbox per run gets them).
CREATE TABLE agent_mounts (
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    path         TEXT NOT NULL,
    read_only    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (agent_id, path)
);
CREATE INDEX agent_mounts_workspace ON agent_mounts(workspace_id);

-- next_seq numbers the thread's events; file_workspace_id is where its
-- JSONL mirror was last written.
CREATE TABLE threads (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    owner_user_id     TEXT NOT NULL,
    agent_id          TEXT NOT NULL,
    agent_slug        TEXT NOT NULL,
    title             TEXT NOT NULL DEFAULT '',
    archived          BOOLEAN NOT NULL DEFAULT FALSE,
    next_seq          BIGINT NOT NULL DEFAULT 0,
    file_workspace_id TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX threads_org_created ON threads(org_id, created_at, id);
CREATE INDEX threads_agent ON threads(org_id, agent_slug);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    owner_user_id  TEXT NOT NULL,
    thread_id      TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    agent_id       TEXT NOT NULL,
    agent_slug     TEXT NOT NULL,
    agent_version  BIGINT NOT NULL,
    execution_mode TEXT NOT NULL,
    sandbox_id     TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    status_reason  TEXT NOT NULL DEFAULT '',
    exit_code      BIGINT,
    output         TEXT NOT NULL DEFAULT '',
    stderr         TEXT NOT NULL DEFAULT '',
    truncated      BOOLEAN NOT NULL DEFAULT FALSE,
    timeout_ms     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMP NOT NULL,
    started_at     TIMESTAMP,
    finished_at    TIMESTAMP
);
CREATE INDEX runs_thread ON runs(thread_id, created_at);
CREATE INDEX runs_status ON runs(status);

-- Every event of a thread, in order: prompt, status changes, output chunks,
-- result. data is a JSON object (status and result events).
CREATE TABLE run_events (
    thread_id  TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    run_id     TEXT NOT NULL,
    type       TEXT NOT NULL,
    text       TEXT NOT NULL DEFAULT '',
    data       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
CREATE INDEX run_events_run ON run_events(run_id, seq);

-- +goose Down
DROP TABLE run_events;
DROP TABLE runs;
DROP TABLE threads;
DROP TABLE agent_mounts;
DROP TABLE agents;
