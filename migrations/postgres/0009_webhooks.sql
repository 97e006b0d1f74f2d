-- Issue 24: webhook endpoints (hand-offs and lifecycle events over Standard Webhooks) and the
-- record of their deliveries (no bodies: what was sent, when, and what came back).
CREATE TABLE webhook_endpoints (
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    config              TEXT NOT NULL,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_until_ms   BIGINT,
    failing_since_ms    BIGINT,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE webhook_deliveries (
    id            BIGSERIAL PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    endpoint      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    webhook_id    TEXT NOT NULL,
    status_code   BIGINT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint, id);
