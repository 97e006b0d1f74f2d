-- Issue 24: webhook endpoints (hand-offs and lifecycle events over Standard Webhooks) and the
-- record of their deliveries (no bodies: what was sent, when, and what came back).
CREATE TABLE webhook_endpoints (
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    config              TEXT NOT NULL,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_until_ms   INTEGER,
    failing_since_ms    INTEGER,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE webhook_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    webhook_id    TEXT NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint, id);
