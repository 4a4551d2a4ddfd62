-- +goose Up
-- Leases of servers sharing this database (--replicas): a named lease
-- ("sandbox:<id>", "leader", "process:<instance>") is held by one server
-- process until expires_at; its holder renews it while it works, and a
-- lease past expires_at (its holder died) may be taken by anyone.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

-- The server process (its instance id) executing a run; '' before this
-- column existed. A run whose holder's process lease has expired can
-- never finish and is marked interrupted.
ALTER TABLE runs ADD COLUMN holder TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE runs DROP COLUMN holder;
DROP TABLE leases;
