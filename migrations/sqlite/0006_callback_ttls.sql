-- Issue 14 (no stranded callbacks): each callback carries its service's queuedTtlSeconds and
-- ttlSeconds (kept in step when the service's TTLs change), so the monitor expires and purges it
-- without a service row that may be gone. History entries may carry a note ("service deleted").
ALTER TABLE callbacks ADD COLUMN queued_ttl_ms BIGINT NOT NULL DEFAULT 14400000;
ALTER TABLE callbacks ADD COLUMN ttl_ms BIGINT NOT NULL DEFAULT 86400000;
UPDATE callbacks
   SET queued_ttl_ms = COALESCE((SELECT json_extract(s.config, '$.queuedTtlSeconds') * 1000 FROM services s
                                  WHERE s.tenant_id = callbacks.tenant_id AND s.name = callbacks.service_name),
                                queued_ttl_ms),
       ttl_ms = COALESCE((SELECT json_extract(s.config, '$.ttlSeconds') * 1000 FROM services s
                           WHERE s.tenant_id = callbacks.tenant_id AND s.name = callbacks.service_name),
                         ttl_ms);
ALTER TABLE callback_history ADD COLUMN note TEXT;
