-- Issue 23: service durations are bounded at 10 years (315360000 s); rows stored before the bound
-- are clamped, so the recovery pass's arithmetic never overflows a bigint.
UPDATE callbacks SET queued_ttl_ms = 315360000000 WHERE queued_ttl_ms > 315360000000;
UPDATE callbacks SET ttl_ms = 315360000000 WHERE ttl_ms > 315360000000;
UPDATE services SET config = jsonb_set(config::jsonb, '{queuedTtlSeconds}', '315360000')::text
 WHERE (config::jsonb ->> 'queuedTtlSeconds')::numeric > 315360000;
UPDATE services SET config = jsonb_set(config::jsonb, '{ttlSeconds}', '315360000')::text
 WHERE (config::jsonb ->> 'ttlSeconds')::numeric > 315360000;
UPDATE services SET config = jsonb_set(config::jsonb, '{ackTimeoutSeconds}', '315360000')::text
 WHERE (config::jsonb ->> 'ackTimeoutSeconds')::numeric > 315360000;
UPDATE services SET config = jsonb_set(config::jsonb, '{dispatchBufferSeconds}', '315360000')::text
 WHERE (config::jsonb ->> 'dispatchBufferSeconds')::numeric > 315360000;
UPDATE services SET config = jsonb_set(config::jsonb, '{minLeadSeconds}', '315360000')::text
 WHERE (config::jsonb ->> 'minLeadSeconds')::numeric > 315360000;
