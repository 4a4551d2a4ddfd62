-- +goose Up
-- Workspace snapshots (btrfs storage driver): the tree is a read-only
-- subvolume named by id; the row holds what the API shows. Deleting a
-- workspace deletes its rows here (and the driver its subvolumes).
CREATE TABLE snapshots (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    size_bytes   BIGINT,
    UNIQUE (workspace_id, name)
);
CREATE INDEX snapshots_workspace_created ON snapshots(workspace_id, created_at, id);

-- A mount of a snapshot (always read-only) names it here; '' is the live tree.
ALTER TABLE sandbox_mounts ADD COLUMN snapshot_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sandbox_mounts DROP COLUMN snapshot_id;
DROP TABLE snapshots;
