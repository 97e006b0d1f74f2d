-- Issue 27: a tenant may keep finished callbacks' personal data (the number and userData) this
-- many days at most; NULL keeps it until the callback is purged (its ttlSeconds).
ALTER TABLE tenants ADD COLUMN retention_days INTEGER;
