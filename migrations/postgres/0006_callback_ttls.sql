-- Issue 14 (no stranded callbacks): each callback carries its service's queuedTtlSeconds and
-- ttlSeconds (kept in step when the service's TTLs change), so the monitor expires and purges it
-- without a service row that may be gone. History entries may carry a note ("service deleted").
ALTER TABLE callbacks ADD COLUMN queued_ttl_ms BIGINT NOT NULL DEFAULT 14400000;
ALTER TABLE callbacks ADD COLUMN ttl_ms BIGINT NOT NULL DEFAULT 86400000;
UPDATE callbacks c
   SET queued_ttl_ms = COALESCE((s.config::jsonb ->> 'queuedTtlSeconds')::bigint * 1000, c.queued_ttl_ms),
       ttl_ms = COALESCE((s.config::jsonb ->> 'ttlSeconds')::bigint * 1000, c.ttl_ms)
  FROM services s
 WHERE s.tenant_id = c.tenant_id AND s.name = c.service_name;
ALTER TABLE callback_history ADD COLUMN note TEXT;
