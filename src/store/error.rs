//! The store's errors: what went wrong with the database, in the terms callers act on
//! (unavailable, down, contention, shed, other). How they reach a client is the edge's business
//! (`ops::store_errors`).

/// A unique index refused the write.
pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer in time or could not be reached: a 503 for the client.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database cannot be reached at all (refused, dropped, shutting down, no connection
    /// within the acquire timeout): a 503, and the breaker opens so others fail fast.
    #[error("database down: {0}")]
    Down(String),
    /// No connection within the acquire timeout. Only `timed_within` sees it: it becomes `Down`
    /// when the pool holds no connection at all (connecting fails), else `Unavailable` (every
    /// connection is busy: load, not an outage, so the breaker stays closed).
    #[error("no database connection in time: {0}")]
    NoConnection(String),
    /// Lock timeout (55P03), deadlock (40P01) or serialization failure (40001): other writers
    /// held what this one needed. Retried, then a 503 — contention is not an error of ours.
    #[error("database contention: {0}")]
    Contention(String),
    /// Not attempted: the booking queue was full, or a booking's deadline left no time to write it.
    #[error("not attempted: {0}")]
    Shed(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // sqlx retries a refused connection until the acquire timeout, then reports
            // PoolTimedOut — as it does when every connection is busy that long.
            sqlx::Error::PoolTimedOut => StoreError::NoConnection(e.to_string()),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => StoreError::Down(e.to_string()),
            // 57P01..03 = server shutting down / gone.
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03")) => {
                StoreError::Down(e.to_string())
            }
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("55P03" | "40P01" | "40001")) => {
                StoreError::Contention(e.to_string())
            }
            // 57014 = query_canceled (statement_timeout): this query was slow, not the database down.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
                StoreError::Unavailable(e.to_string())
            }
            // SQLite's "database is locked" after the busy timeout: contention, not a bug.
            sqlx::Error::Database(db) if db.message().contains("database is locked") => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(anyhow::Error::new(e)),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Other(anyhow::Error::new(e).context("stored JSON does not parse"))
    }
}
