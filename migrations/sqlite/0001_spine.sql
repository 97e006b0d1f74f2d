-- Ringback schema, SQLite (the embedded default). Instants are epoch milliseconds (INTEGER) and
-- documents are JSON text, so the same runtime queries serve both backends (tests prove it).

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_ms);

CREATE TABLE services (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- The virtual-queue proxy record: which services feed a virtual queue.
CREATE TABLE vq_proxy (
    tenant_id     TEXT NOT NULL,
    virtual_queue TEXT NOT NULL,
    service_name  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, virtual_queue, service_name)
);
CREATE UNIQUE INDEX vq_proxy_service ON vq_proxy (tenant_id, service_name);

CREATE TABLE callbacks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    service_name    TEXT NOT NULL,
    state           TEXT NOT NULL,
    reason          TEXT,
    phone           TEXT NOT NULL,
    desired_ms      INTEGER NOT NULL,
    due_ms          INTEGER NOT NULL,
    priority        INTEGER NOT NULL,
    corr_id         TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    claimed_ms      INTEGER,
    published_ms    INTEGER,
    acked_ms        INTEGER,
    queued_ms       INTEGER,
    details         TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX callbacks_tenant_desired ON callbacks (tenant_id, desired_ms, id);
CREATE INDEX callbacks_due ON callbacks (state, due_ms);
CREATE INDEX callbacks_number ON callbacks (tenant_id, service_name, phone);

CREATE TABLE callback_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_id TEXT NOT NULL REFERENCES callbacks(id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    reason      TEXT,
    time_ms     INTEGER NOT NULL,
    actor       TEXT NOT NULL
);
CREATE INDEX callback_history_callback ON callback_history (callback_id, id);

-- status NULL = the first request with this key is still being processed.
CREATE TABLE idempotency (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER,
    response     TEXT,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms  INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    resource TEXT NOT NULL,
    body     TEXT
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
