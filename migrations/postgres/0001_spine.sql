-- Ringback schema, PostgreSQL. Instants are epoch milliseconds (BIGINT) and documents are JSON
-- text, so the same runtime queries serve PostgreSQL and SQLite (tests/store_conformance proves it).

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    enabled         BIGINT NOT NULL DEFAULT 1,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_ms);

CREATE TABLE services (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
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
    desired_ms      BIGINT NOT NULL,
    due_ms          BIGINT NOT NULL,
    priority        BIGINT NOT NULL,
    corr_id         TEXT NOT NULL,
    attempt         BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    claimed_ms      BIGINT,
    published_ms    BIGINT,
    acked_ms        BIGINT,
    queued_ms       BIGINT,
    details         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX callbacks_tenant_desired ON callbacks (tenant_id, desired_ms, id);
CREATE INDEX callbacks_due ON callbacks (state, due_ms);
CREATE INDEX callbacks_number ON callbacks (tenant_id, service_name, phone);

CREATE TABLE callback_history (
    id          BIGSERIAL PRIMARY KEY,
    callback_id TEXT NOT NULL REFERENCES callbacks(id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    reason      TEXT,
    time_ms     BIGINT NOT NULL,
    actor       TEXT NOT NULL
);
CREATE INDEX callback_history_callback ON callback_history (callback_id, id);

-- status NULL = the first request with this key is still being processed.
CREATE TABLE idempotency (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     TEXT,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE audit_log (
    id       BIGSERIAL PRIMARY KEY,
    time_ms  BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    resource TEXT NOT NULL,
    body     TEXT
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
