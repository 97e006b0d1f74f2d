-- Office-hours calendars, capacity buckets and the bucket each callback holds.

CREATE TABLE calendars (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One row per (service, bucket start): reserved counts, incremented conditionally in the booking
-- transaction so a bucket can never hold more than its capacity.
CREATE TABLE capacity_buckets (
    tenant_id    TEXT NOT NULL,
    service_name TEXT NOT NULL,
    bucket_ms    BIGINT NOT NULL,
    reserved     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, service_name, bucket_ms)
);

ALTER TABLE callbacks ADD COLUMN bucket_ms BIGINT;
CREATE INDEX callbacks_active ON callbacks (tenant_id, service_name, state);
