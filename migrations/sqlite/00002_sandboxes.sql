-- +goose Up
-- instance identifies this database's berth installation on a shared engine:
-- containers carry it as a label, and reconcile only touches its own.
CREATE TABLE instance (
    id         TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE sandboxes (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    owner_user_id    TEXT NOT NULL,
    name             TEXT NOT NULL,
    template         TEXT NOT NULL,
    image            TEXT NOT NULL,
    status           TEXT NOT NULL,
    status_reason    TEXT NOT NULL DEFAULT '',
    env_keys         TEXT NOT NULL DEFAULT '[]',
    resources        TEXT NOT NULL DEFAULT '{}',
    metadata         TEXT NOT NULL DEFAULT '{}',
    idle_timeout     BIGINT NOT NULL DEFAULT 0,
    network          TEXT NOT NULL,
    container_id     TEXT NOT NULL DEFAULT '',
    ip               TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    last_activity_at TIMESTAMP NOT NULL
);
-- Names are unique among live sandboxes; a destroyed one frees its name.
CREATE UNIQUE INDEX sandboxes_live_name ON sandboxes(org_id, name) WHERE status <> 'destroyed';
CREATE INDEX sandboxes_org_created ON sandboxes(org_id, created_at, id);

CREATE TABLE sandbox_mounts (
    sandbox_id   TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    path         TEXT NOT NULL,
    read_only    BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (sandbox_id, path)
);
CREATE INDEX sandbox_mounts_workspace ON sandbox_mounts(workspace_id);

CREATE TABLE sandbox_tags (
    sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (sandbox_id, tag)
);
CREATE INDEX sandbox_tags_tag ON sandbox_tags(tag);

-- +goose Down
DROP TABLE sandbox_tags;
DROP TABLE sandbox_mounts;
DROP TABLE sandboxes;
DROP TABLE instance;
