//! Persistence. One `Store` type, two backends: PostgreSQL for production and SQLite as the
//! embedded default. The SQL is shared (runtime queries over sqlx's `Any` driver, epoch-ms integers
//! and JSON text so both backends read the same); what differs — pools, pragmas, row locking,
//! migrations — lives behind the `Backend` trait in `postgres.rs` and `sqlite.rs`.
//! sqlx's compile-time macros cannot check two databases in one crate; the conformance tests
//! (`tests/api`, run against both backends) prove the queries instead.

mod api_keys;
mod audit;
mod booking_batch;
mod calendars;
mod call_in;
mod call_in_create;
mod call_in_groups;
mod callback_changes;
mod callback_queries;
mod callbacks;
mod capacity;
mod deletes;
mod erasure;
mod faults;
mod handoffs;
mod housekeeping;
mod idempotency;
mod operators;
mod outbox;
mod outcomes;
mod placeholders;
mod platform_reports;
mod postgres;
mod queues;
mod service_control;
mod services;
mod settings;
mod sqlite;
mod tenants;
mod webhooks;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

pub use api_keys::{ApiKeyRecord, NewApiKey, ResolvedKey};
pub use audit::{AuditEntry, AuditRecord};
pub use booking_batch::Booking;
pub use call_in::{
    CallInFilter, CallInKey, CallInLabelFacts, CallInRecord, CancelCallInOutcome, CreateCallInOutcome, NewCallIn,
    CALLIN_EXPIRY_BATCH,
};
pub use call_in_groups::{CallInGroupRecord, PutGroupOutcome};
pub use callback_changes::{CallbackEdit, CancelOutcome, NewTime, RescheduleOutcome};
pub use callback_queries::CallbackFilter;
pub use callbacks::{BookingGuards, CallbackRecord, HistoryEntry, InsertOutcome, NewCallback, Ttls};
pub use deletes::DeleteOutcome;
pub use erasure::{Erased, ERASED_NUMBER};
pub use faults::{BatchFault, StoreFaults};
pub use handoffs::HandOff;
pub use housekeeping::{Finished, ORPHAN_BATCH, RECOVERY_BATCH, SERVICE_DELETED_NOTE};
pub use idempotency::{IdempotencyBegin, IdempotencyResult, STALE_IN_PROGRESS_MS};
pub use operators::OperatorRecord;
pub use outbox::{ClaimScope, EventOutcome, PendingEvent};
pub use outcomes::{OutcomeRow, RefusalCount};
pub use platform_reports::{FollowUpOutcome, FollowUpPlan, PlatformReport, ReportOutcome};
pub use queues::QueueStats;
pub use service_control::{RedriveOutcome, ServiceNow};
pub use services::{ServiceRecord, ServiceWrite};
pub use tenants::Tenant;
pub use webhooks::{DeliveryRecord, EndpointRecord};
pub use writer::BookingWriter;

use crate::breaker::Breaker;

use crate::config::DatabaseSettings;

/// A unique index refused the write.
fn is_unique_violation(e: &sqlx::Error) -> bool {
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
    fn begin_booking_batch(self) -> &'static str {
        match self {
            BackendKind::Postgres => "BEGIN; SET LOCAL plan_cache_mode = auto",
            BackendKind::Sqlite => "BEGIN",
        }
    }

    fn key_locks_sql(self, keys: usize) -> Option<String> {
        match self {
            // A VALUES list is scanned in its written order.
            BackendKind::Postgres => Some(format!(
                "WITH v (k) AS (VALUES {}) SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM v",
                placeholders::placeholders(keys, 1)
            )),
            BackendKind::Sqlite => None,
        }
    }
}

/// What differs between the two databases.
trait Backend {
    fn kind(&self) -> BackendKind;
    /// The URL sqlx should connect to (defaults filled in).
    fn connect_url(&self, url: &str) -> String;
    /// Statements run on every new connection.
    fn session_setup(&self, settings: &DatabaseSettings) -> Vec<String>;
    /// Pool size for writes; `None` = share the read pool.
    fn writer_connections(&self, settings: &DatabaseSettings) -> Option<u32>;
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;
}

fn backend_for(url: &str) -> Box<dyn Backend + Send + Sync> {
    if url.starts_with("sqlite:") {
        Box::new(sqlite::Sqlite)
    } else {
        Box::new(postgres::Postgres)
    }
}

#[derive(Clone)]
pub struct Store {
    kind: BackendKind,
    reader: AnyPool,
    /// SQLite has one writer: a pool of one connection makes concurrent bookings queue in-process
    /// instead of failing with "database is locked". On Postgres it is the reader pool.
    writer: AnyPool,
    /// Connections of the replica's budget that HTTP load cannot take (PostgreSQL): the monitor
    /// and health checker use them through `for_background`, so a flood of requests never starves
    /// hand-offs (a starved monitor let its claims age until another replica re-claimed them).
    background: Option<AnyPool>,
    statement_timeout: Duration,
    /// Bumped by every admin write of configuration (services, calendars, tenants, keys), so
    /// in-memory copies of it (`http::service_context`) know at once that they are stale.
    config_generation: Arc<AtomicU64>,
    faults: Arc<faults::StoreFaults>,
    /// Open once the database is seen down: calls fail at once until a probe reaches it.
    breaker: Breaker,
}

const BREAKER_OPEN: &str = "the database was seen down moments ago; failing fast until it answers again";

/// Multi-row statements carry at most this many rows (placeholders stay far below the limits
/// of both databases).
const ROWS_PER_STATEMENT: usize = 100;

/// A bulk admin operation (up to 1,000 ids in one transaction) gets this many statement timeouts.
const BULK_TIMEOUT_FACTOR: u32 = 4;

/// How many of `database.max_connections` are set aside for background work on PostgreSQL.
const BACKGROUND_CONNECTIONS: u32 = 2;

impl Store {
    /// Connect and apply migrations (Postgres serialises concurrent migrators with an advisory lock).
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Store> {
        let store = Self::connect_without_migrating(settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn connect_without_migrating(settings: &DatabaseSettings) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = backend_for(&settings.url);
        let url = backend.connect_url(&settings.url);
        let setup = backend.session_setup(settings);
        let pool = |size: u32, acquire_ms: u64| {
            let setup = setup.clone();
            AnyPoolOptions::new()
                .max_connections(size)
                .min_connections(0)
                .acquire_timeout(Duration::from_millis(acquire_ms))
                // A connection in steady use needs no ping before each use (a round trip per
                // query); one idle for a second may have outlived a database restart.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= Duration::from_secs(1) {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |conn, _meta| {
                    let setup = setup.clone();
                    Box::pin(async move {
                        for statement in &setup {
                            sqlx::Executor::execute(&mut *conn, statement.as_str()).await?;
                        }
                        Ok(())
                    })
                })
                .connect_lazy(&url)
        };
        let writer_size = backend.writer_connections(settings);
        // SQLite has one writer anyway; PostgreSQL splits the budget when there is room to.
        let split = writer_size.is_none() && settings.max_connections > 2 * BACKGROUND_CONNECTIONS;
        let request_connections =
            if split { settings.max_connections - BACKGROUND_CONNECTIONS } else { settings.max_connections };
        let reader = pool(request_connections, settings.acquire_timeout_ms)?;
        let background = if split { Some(pool(BACKGROUND_CONNECTIONS, settings.statement_timeout_ms)?) } else { None };
        // Writes queue for SQLite's single writer; give them the statement budget to get a turn.
        let writer_acquire_ms = settings.acquire_timeout_ms.max(settings.statement_timeout_ms);
        let writer = match writer_size {
            Some(n) => pool(n, writer_acquire_ms)?,
            None => reader.clone(),
        };
        let store = Store {
            kind: backend.kind(),
            reader,
            writer,
            background,
            statement_timeout: Duration::from_millis(settings.statement_timeout_ms),
            config_generation: Arc::new(AtomicU64::new(0)),
            faults: Arc::default(),
            breaker: Breaker::new("database"),
        };
        Ok(store)
    }

    /// The breaker that fails database work fast while the database is seen down.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// This store's fault switches (`http::admin::faults`).
    pub fn faults(&self) -> &StoreFaults {
        &self.faults
    }

    /// The same store over the connections set aside for background work (the whole store where
    /// none are).
    pub fn for_background(&self) -> Store {
        match &self.background {
            Some(pool) => Store { reader: pool.clone(), writer: pool.clone(), background: None, ..self.clone() },
            None => self.clone(),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let backend = backend_for(match self.kind {
            BackendKind::Sqlite => "sqlite:",
            BackendKind::Postgres => "postgres:",
        });
        let mut conn = self.writer.acquire().await.map_err(|e| anyhow::anyhow!("cannot reach the database: {e}"))?;
        backend.migrator().run(&mut *conn).await.map_err(|e| anyhow::anyhow!("applying migrations failed: {e}"))?;
        Ok(())
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Changes whenever this process writes configuration; other replicas' writes are seen
    /// through the caches' age limit.
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Ordering::Acquire)
    }

    fn config_changed(&self) {
        self.config_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Bound every database call by the statement timeout, so a slow or absent database is a
    /// fast 503 rather than a hung request.
    async fn timed<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.timed_within(self.statement_timeout, work).await
    }

    /// Also the breaker: while it is open, calls fail at once; a call that finds the database
    /// down opens it, and calls in flight then stop waiting too.
    async fn timed_within<T>(&self, limit: Duration, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        if self.breaker.is_open() {
            return Err(StoreError::Down(BREAKER_OPEN.into()));
        }
        let result = tokio::select! {
            biased;
            answer = tokio::time::timeout(limit, work) => match answer {
                Ok(Err(StoreError::NoConnection(cause))) if self.reader.size() == 0 && self.writer.size() == 0 => {
                    Err(StoreError::Down(cause))
                }
                Ok(Err(StoreError::NoConnection(cause))) => Err(StoreError::Unavailable(cause)),
                Ok(result) => result,
                Err(_) => Err(StoreError::Unavailable(format!("no answer within {} ms", limit.as_millis()))),
            },
            () = self.breaker.opened() => Err(StoreError::Down(BREAKER_OPEN.into())),
        };
        if let Err(StoreError::Down(cause)) = &result {
            self.seen_down(cause);
        }
        result
    }

    /// Open the breaker (once); its probe pings over the request pool, past the breaker.
    pub fn seen_down(&self, cause: &str) {
        let pool = self.reader.clone();
        self.breaker.trip(cause, move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.is_ok() }
        });
    }

    pub async fn ping(&self) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        })
        .await
    }

    /// (idle, in use) connections of the request and background pools together: the gauge keeps
    /// the spec's labels and shows the replica's whole PostgreSQL budget.
    pub fn pool_connections(&self) -> (u32, u32) {
        let pools = std::iter::once(&self.reader).chain(self.background.as_ref());
        pools.fold((0, 0), |(idle, in_use), pool| {
            let (size, free) = (pool.size(), pool.num_idle() as u32);
            (idle + free, in_use + size.saturating_sub(free))
        })
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        if let Some(pool) = &self.background {
            pool.close().await;
        }
    }
}

/// Decode helpers: sqlx's `Any` driver reports integers as i64 on both backends.
pub(crate) fn flag(value: bool) -> i64 {
    i64::from(value)
}
