-- Issue 24: one transactional outbox for everything the platform or an endpoint must hear of a
-- committed change. It replaces `dispatch_outbox` (callback.cancel messages for the service's
-- dispatch target: `endpoint` NULL) and carries lifecycle events for webhook endpoints (one row
-- per subscribed endpoint, written in the transaction of the change it reports).
CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    endpoint       TEXT,
    callback_id    TEXT NOT NULL,
    service_name   TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    state          TEXT,
    reason         TEXT,
    attempt        INTEGER NOT NULL,
    due_ms         INTEGER,
    occurred_ms    INTEGER NOT NULL,
    next_ms        INTEGER NOT NULL,
    tries          INTEGER NOT NULL DEFAULT 0,
    claimed_by     TEXT,
    claim_until_ms INTEGER,
    failed_ms      INTEGER,
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
    JOIN json_each(e.config, '$.events') AS ev
    LEFT JOIN json_each(e.config, '$.services') AS sv ON 1
    WHERE json_extract(e.config, '$.enabled');
