-- Issue 24: one transactional outbox for everything the platform or an endpoint must hear of a
-- committed change. It replaces `dispatch_outbox` (callback.cancel messages for the service's
-- dispatch target: `endpoint` NULL) and carries lifecycle events for webhook endpoints (one row
-- per subscribed endpoint, written in the transaction of the change it reports).
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    endpoint       TEXT,
    callback_id    TEXT NOT NULL,
    service_name   TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    state          TEXT,
    reason         TEXT,
    attempt        BIGINT NOT NULL,
    due_ms         BIGINT,
    occurred_ms    BIGINT NOT NULL,
    next_ms        BIGINT NOT NULL,
    tries          BIGINT NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    claim_until_ms BIGINT,
    failed_ms      BIGINT,
    last_error     TEXT
);
INSERT INTO outbox (tenant_id, endpoint, callback_id, service_name, event_type, attempt, occurred_ms, next_ms)
    SELECT c.tenant_id, NULL, o.callback_id, c.service_name, 'callback.cancel', o.attempt, o.created_ms, o.created_ms
    FROM dispatch_outbox o JOIN callbacks c ON c.id = o.callback_id ORDER BY o.id;
DROP TABLE dispatch_outbox;

-- Cancel messages in order; events due for delivery; the per-callback order check; failed rows to purge.
CREATE INDEX outbox_dispatch ON outbox (id) WHERE endpoint IS NULL;
CREATE INDEX outbox_due ON outbox (next_ms) WHERE endpoint IS NOT NULL AND failed_ms IS NULL;
CREATE INDEX outbox_order ON outbox (callback_id, endpoint, id) WHERE failed_ms IS NULL;
CREATE INDEX outbox_failed ON outbox (failed_ms) WHERE failed_ms IS NOT NULL;

-- Which enabled endpoint hears which event of which service ('' = every service): what a change's
-- transaction joins to write its events, so no replica needs to know the endpoints in memory.
CREATE TABLE webhook_subscriptions (
    tenant_id    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    service_name TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_type, service_name, endpoint),
    FOREIGN KEY (tenant_id, endpoint) REFERENCES webhook_endpoints (tenant_id, name) ON DELETE CASCADE
);
INSERT INTO webhook_subscriptions (tenant_id, event_type, service_name, endpoint)
    SELECT DISTINCT e.tenant_id, ev.value, COALESCE(sv.value, ''), e.name
    FROM webhook_endpoints e
    CROSS JOIN LATERAL json_array_elements_text(e.config::json -> 'events') AS ev(value)
    LEFT JOIN LATERAL json_array_elements_text(e.config::json -> 'services') AS sv(value) ON true
    WHERE (e.config::json ->> 'enabled')::boolean;
