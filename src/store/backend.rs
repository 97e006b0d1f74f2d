//! The two databases behind the store: which one a URL names, and what differs between them
//! (connection URL, session set-up, writer pool, migrations, booking-batch and lock SQL).

use crate::config::DatabaseSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Postgres => "postgres",
            BackendKind::Sqlite => "sqlite",
        }
    }

    /// Transaction locks on `keys` text keys ($1..$keys), taken in the order given: writers that
    /// check the same number, queue or call-in group take turns, so their counts hold under
    /// concurrency. Callers pass keys sorted, so two transactions never wait crosswise. SQLite
    /// needs none: it has one writer.
    /// How a booking batch's transaction starts. On PostgreSQL its statements may use cached
    /// generic plans (the session plans every execution, for the monitor's skewed queue queries):
    /// re-planning the batch's multi-row write each time cost more than executing it.
    pub(super) fn begin_booking_batch(self) -> &'static str {
        match self {
            BackendKind::Postgres => "BEGIN; SET LOCAL plan_cache_mode = auto",
            BackendKind::Sqlite => "BEGIN",
        }
    }

    pub(super) fn key_locks_sql(self, keys: usize) -> Option<String> {
        match self {
            // A VALUES list is scanned in its written order.
            BackendKind::Postgres => Some(format!(
                "WITH v (k) AS (VALUES {}) SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM v",
                super::placeholders::placeholders(keys, 1)
            )),
            BackendKind::Sqlite => None,
        }
    }
}

/// What differs between the two databases.
pub(super) trait Backend {
    fn kind(&self) -> BackendKind;
    /// The URL sqlx should connect to (defaults filled in).
    fn connect_url(&self, url: &str) -> String;
    /// Statements run on every new connection.
    fn session_setup(&self, settings: &DatabaseSettings) -> Vec<String>;
    /// Pool size for writes; `None` = share the read pool.
    fn writer_connections(&self, settings: &DatabaseSettings) -> Option<u32>;
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;
}
