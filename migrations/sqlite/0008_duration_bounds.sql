-- Issue 23: service durations are bounded at 10 years (315360000 s); rows stored before the bound
-- are clamped, so the recovery pass's arithmetic never overflows a bigint.
UPDATE callbacks SET queued_ttl_ms = 315360000000 WHERE queued_ttl_ms > 315360000000;
UPDATE callbacks SET ttl_ms = 315360000000 WHERE ttl_ms > 315360000000;
UPDATE services SET config = json_set(config, '$.queuedTtlSeconds', 315360000)
 WHERE CAST(json_extract(config, '$.queuedTtlSeconds') AS REAL) > 315360000;
UPDATE services SET config = json_set(config, '$.ttlSeconds', 315360000)
 WHERE CAST(json_extract(config, '$.ttlSeconds') AS REAL) > 315360000;
UPDATE services SET config = json_set(config, '$.ackTimeoutSeconds', 315360000)
 WHERE CAST(json_extract(config, '$.ackTimeoutSeconds') AS REAL) > 315360000;
UPDATE services SET config = json_set(config, '$.dispatchBufferSeconds', 315360000)
 WHERE CAST(json_extract(config, '$.dispatchBufferSeconds') AS REAL) > 315360000;
UPDATE services SET config = json_set(config, '$.minLeadSeconds', 315360000)
 WHERE CAST(json_extract(config, '$.minLeadSeconds') AS REAL) > 315360000;
