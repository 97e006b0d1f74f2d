-- Replica liveness (issue 11): each replica's monitor records when it last made progress. A claim
-- lease is re-claimed only from a replica that has not been seen within the lease, so a live but
-- busy replica never loses its claims (and never spends a callback's attempt).
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);
