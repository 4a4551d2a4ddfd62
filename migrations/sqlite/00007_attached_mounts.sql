-- +goose Up
-- A mount attached to a running sandbox (POST /v1/sandboxes/{id}/mounts)
-- rather than given at create: the engine does not know it, so berth
-- attaches it again after every start, and only such a mount can be
-- detached.
ALTER TABLE sandbox_mounts ADD COLUMN attached BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE sandbox_mounts DROP COLUMN attached;
