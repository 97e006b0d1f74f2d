-- Issue 26: operators, each with a role and optionally a list of tenants (JSON array; NULL: all);
-- tokens stored hashed. Revoking deletes the row.
CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    tenants    TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
);
-- Audit entries name the tenant they concern (NULL: none), so a tenant-limited operator reads
-- only its tenants' entries.
ALTER TABLE audit_log ADD COLUMN tenant TEXT;
UPDATE audit_log SET tenant = substr(resource, 9, instr(substr(resource, 9) || '/', '/') - 1)
 WHERE resource LIKE 'tenants/%';
CREATE INDEX audit_log_by_tenant ON audit_log (tenant, id);
