-- Click-to-call-in: groups, their numbers (each in at most one group of the whole deployment) and
-- requests. `slot` is what a pending request holds on its number: its access code on shared
-- numbers, 0 (the whole number) on unique numbers. One partial unique index makes two pending
-- requests on the same (number, slot) impossible, whatever the concurrency.

CREATE TABLE callin_groups (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE callin_numbers (
    number           TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    group_name       TEXT NOT NULL,
    position         INTEGER NOT NULL,
    last_assigned_ms INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (tenant_id, group_name) REFERENCES callin_groups (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX callin_numbers_lru ON callin_numbers (tenant_id, group_name, last_assigned_ms, position);

CREATE TABLE callin_requests (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    group_name       TEXT NOT NULL,
    state            TEXT NOT NULL,
    to_number        TEXT NOT NULL,
    slot             INTEGER NOT NULL,
    access_code      INTEGER,
    from_number      TEXT,
    require_caller   INTEGER NOT NULL,
    callback_id      TEXT,
    user_data        TEXT NOT NULL,
    expires_ms       INTEGER NOT NULL,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL
);
CREATE UNIQUE INDEX callin_pending_slot ON callin_requests (to_number, slot) WHERE state = 'PENDING';
CREATE INDEX callin_pending_expiry ON callin_requests (expires_ms) WHERE state = 'PENDING';
CREATE INDEX callin_finished ON callin_requests (updated_ms) WHERE state <> 'PENDING';
