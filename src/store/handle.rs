//! The `Store` handle: its pools (requests, writer, background), the backend behind it, the
//! breaker that fails database work fast while the database is seen down, and the timing every
//! statement goes through. The queries themselves live in the files of their jobs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use super::backend::{Backend, BackendKind};
use super::error::{StoreError, StoreResult};
use super::faults::StoreFaults;
use super::{postgres, sqlite};
use crate::breaker::Breaker;

use crate::config::DatabaseSettings;

fn backend_for(url: &str) -> Box<dyn Backend + Send + Sync> {
    if url.starts_with("sqlite:") {
        Box::new(sqlite::Sqlite)
    } else {
        Box::new(postgres::Postgres)
    }
}

#[derive(Clone)]
pub struct Store {
    pub(super) kind: BackendKind,
    pub(super) reader: AnyPool,
    /// SQLite has one writer: a pool of one connection makes concurrent bookings queue in-process
    /// instead of failing with "database is locked". On Postgres it is the reader pool.
    pub(super) writer: AnyPool,
    /// Connections of the replica's budget that HTTP load cannot take (PostgreSQL): the monitor
    /// and health checker use them through `for_background`, so a flood of requests never starves
    /// hand-offs (a starved monitor let its claims age until another replica re-claimed them).
    pub(super) background: Option<AnyPool>,
    pub(super) statement_timeout: Duration,
    /// Bumped by every admin write of configuration (services, calendars, tenants, keys), so
    /// in-memory copies of it (`http::service_context`) know at once that they are stale.
    pub(super) config_generation: Arc<AtomicU64>,
    pub(super) faults: Arc<StoreFaults>,
    /// Open once the database is seen down: calls fail at once until a probe reaches it.
    pub(super) breaker: Breaker,
}

const BREAKER_OPEN: &str = "the database was seen down moments ago; failing fast until it answers again";

/// Multi-row statements carry at most this many rows (placeholders stay far below the limits
/// of both databases).
pub(super) const ROWS_PER_STATEMENT: usize = 100;

/// A bulk admin operation (up to 1,000 ids in one transaction) gets this many statement timeouts.
pub(super) const BULK_TIMEOUT_FACTOR: u32 = 4;

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

    pub(super) fn config_changed(&self) {
        self.config_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Bound every database call by the statement timeout, so a slow or absent database is a
    /// fast 503 rather than a hung request.
    pub(super) async fn timed<T>(&self, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.timed_within(self.statement_timeout, work).await
    }

    /// Also the breaker: while it is open, calls fail at once; a call that finds the database
    /// down opens it, and calls in flight then stop waiting too.
    pub(super) async fn timed_within<T>(
        &self,
        limit: Duration,
        work: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
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
