-- The callback monitor: who holds a claim, when a hand-off must be acknowledged, publish backoff,
-- what the platform last reported, paused services, queue statistics and the cancel outbox.

ALTER TABLE callbacks ADD COLUMN claimed_by TEXT;
ALTER TABLE callbacks ADD COLUMN ack_deadline_ms INTEGER;
ALTER TABLE callbacks ADD COLUMN processing_ms INTEGER;
ALTER TABLE callbacks ADD COLUMN session_id TEXT;
ALTER TABLE callbacks ADD COLUMN platform_position INTEGER;
ALTER TABLE callbacks ADD COLUMN platform_ewt INTEGER;
ALTER TABLE callbacks ADD COLUMN platform_reported_ms INTEGER;

-- Each monitor query touches only the rows it acts on.
CREATE INDEX callbacks_unpublished ON callbacks (claimed_ms) WHERE state = 'QUEUED' AND published_ms IS NULL;
CREATE INDEX callbacks_unacked ON callbacks (ack_deadline_ms) WHERE state = 'QUEUED' AND acked_ms IS NULL AND published_ms IS NOT NULL;
CREATE INDEX callbacks_in_flight ON callbacks (queued_ms) WHERE state IN ('QUEUED', 'ROUTING');
CREATE INDEX callbacks_finished ON callbacks (updated_ms) WHERE state = 'COMPLETED';
CREATE INDEX callbacks_processing ON callbacks (tenant_id, service_name, processing_ms) WHERE processing_ms IS NOT NULL;

ALTER TABLE services ADD COLUMN dispatch_paused INTEGER NOT NULL DEFAULT 0;

CREATE TABLE queue_stats (
    tenant_id        TEXT NOT NULL,
    virtual_queue    TEXT NOT NULL,
    ewt              INTEGER,
    agents_logged_in INTEGER,
    calls_waiting    INTEGER,
    updated_ms       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, virtual_queue)
);

-- callback.cancel messages for hand-offs cancelled after publication, written with the cancel
-- and published by the monitor, so a cancel is never lost to a Redis blip.
CREATE TABLE dispatch_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
