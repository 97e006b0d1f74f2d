//! Many bookings in one transaction (the group commit of `store::writer`). The guards are
//! decided per booking, in order, exactly as one booking at a time would: in-queue checking and
//! `maxQueued` count the batch's earlier bookings, a capacity bucket admits the first ones that
//! fit. A statement then writes each kind of row for the whole batch, so a batch costs a handful
//! of round trips, not a handful per booking.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row, Transaction};

use super::backend::BackendKind;
use super::callbacks::{BookingGuards, InsertOutcome, NewCallback};
use super::error::{StoreError, StoreResult};
use super::faults::BatchFault;
use super::handle::Store;
use super::idempotency::IdempotencyResult;
use super::placeholders::{numbered, placeholders};
use crate::domain::booking::CapacityClaim;
use crate::domain::callback::State;
use crate::time::Moment;

/// One booking as the writer receives it.
#[derive(Debug, Clone)]
pub struct Booking {
    pub new: NewCallback,
    pub guards: BookingGuards,
    /// The answer to replay for the request's `Idempotency-Key`, written with the booking.
    pub replay: Option<IdempotencyResult>,
    /// The request's deadline: the writer withdraws the booking unwritten when less than a
    /// statement timeout is left before it.
    pub deadline: std::time::Instant,
}

/// Each booking's outcome, known before the COMMIT is sent: what the writer answers if the
/// commit's own answer is lost (`store::writer` then reads the rows back).
pub type Decided = std::sync::Mutex<Option<Vec<InsertOutcome>>>;

/// (tenant id, service name, phone): the unit of in-queue checking.
type NumberKey<'a> = (&'a str, &'a str, &'a str);
/// (tenant id, service name).
type ServiceKey<'a> = (&'a str, &'a str);
/// (tenant id, service name, bucket start).
type BucketKey<'a> = (&'a str, &'a str, Moment);

/// Rows per multi-row statement: 16 parameters each stays far below both databases' limits.
pub const MAX_BATCH: usize = 128;

const ACTIVE_STATES: &str = "'QUEUED', 'ROUTING', 'PROCESSING'";

fn bind_text<'q>(query: AnyQuery<'q>, value: &str) -> AnyQuery<'q> {
    query.bind(value.to_string())
}

impl Store {
    /// Write a batch of bookings in one transaction; one outcome per booking, in order. An error
    /// is the whole batch's: nothing of it was written.
    /// `decided` is filled just before the COMMIT is sent.
    pub async fn insert_batch(&self, batch: &[&Booking], decided: &Decided) -> StoreResult<Vec<InsertOutcome>> {
        self.timed(async {
            let fault = self.faults.take_batch_fault();
            let mut tx = self.writer.begin_with(self.kind.begin_booking_batch()).await?;
            self.lock_guarded_keys(&mut tx, batch).await?;
            let mut unfinished = unfinished_per_number(&mut tx, batch).await?;
            let mut active = self.active_per_service(&mut tx, batch).await?;
            let mut room = self.room_per_bucket(&mut tx, batch).await?;

            let mut outcomes = Vec::with_capacity(batch.len());
            for b in batch {
                let new = &b.new;
                let number = (new.tenant_id.as_str(), new.service_name.as_str(), new.phone.as_str());
                let service = (new.tenant_id.as_str(), new.service_name.as_str());
                let bucket = b.guards.bucket.map(|c| (service.0, service.1, c.bucket_start));
                let outcome = match b.guards {
                    BookingGuards { max_unfinished_for_number: Some(limit), .. }
                        if unfinished.get(&number).copied().unwrap_or(0) >= limit =>
                    {
                        InsertOutcome::AlreadyQueued
                    }
                    BookingGuards { max_active: Some(limit), .. }
                        if active.get(&service).copied().unwrap_or(0) >= limit =>
                    {
                        InsertOutcome::QueueFull
                    }
                    _ if bucket.is_some_and(|k| room.get(&k).copied().unwrap_or(0) == 0) => InsertOutcome::SlotFull,
                    _ => InsertOutcome::Inserted,
                };
                if outcome == InsertOutcome::Inserted {
                    *unfinished.entry(number).or_default() += 1;
                    if new.state.is_active() {
                        *active.entry(service).or_default() += 1;
                    }
                    if let Some(k) = bucket {
                        *room.entry(k).or_default() -= 1;
                    }
                }
                outcomes.push(outcome);
            }

            let admitted: Vec<&Booking> =
                batch.iter().zip(&outcomes).filter(|(_, o)| **o == InsertOutcome::Inserted).map(|(b, _)| *b).collect();
            if !admitted.is_empty() {
                self.write_admitted(&mut tx, &admitted).await?;
            }
            if self.faults.take_batch_stall() {
                // The database "hangs" before the commit: `timed` gives up, the batch rolls back.
                tokio::time::sleep(self.statement_timeout * 2).await;
            }
            match fault {
                Some(BatchFault::LockTimeout) => {
                    return Err(StoreError::Contention("fault injection: 55P03 lock timeout".into()))
                }
                Some(BatchFault::Panic) => panic!("fault injection: a panic in a booking batch"),
                _ => {}
            }
            *decided.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcomes.clone());
            match fault {
                Some(BatchFault::RolledBackAnswerLost) => {
                    tx.rollback().await?;
                    return Err(StoreError::Unavailable("fault injection: the COMMIT's answer was lost".into()));
                }
                Some(BatchFault::CommitAnswerLost) => {
                    tx.commit().await?;
                    return Err(StoreError::Unavailable("fault injection: the COMMIT's answer was lost".into()));
                }
                _ => tx.commit().await?,
            }
            Ok(outcomes)
        })
        .await
    }

    /// Which of `ids` exist: the read-back of a batch whose COMMIT's answer was lost.
    pub async fn existing_callback_ids(&self, ids: &[&str]) -> StoreResult<std::collections::HashSet<String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        self.timed(async {
            let sql = format!(
                "SELECT id FROM callbacks WHERE id IN ({})",
                placeholders(1, ids.len()).trim_matches(|c| c == '(' || c == ')')
            );
            let rows =
                ids.iter().fold(sqlx::query(&sql), |q, id| q.bind(id.to_string())).fetch_all(&self.writer).await?;
            rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
        })
        .await
    }

    /// Serialise, across replicas, the batches that check the same number (in-queue checking) or
    /// the same service's queue (`maxQueued`), so their counts stay exact (keys sorted).
    async fn lock_guarded_keys(&self, tx: &mut Transaction<'_, Any>, batch: &[&Booking]) -> StoreResult<()> {
        let mut keys = BTreeSet::new();
        for b in batch {
            let n = &b.new;
            if b.guards.max_unfinished_for_number.is_some() {
                keys.insert(format!("{}:{}:{}", n.tenant_id, n.service_name, n.phone));
            }
            if b.guards.max_active.is_some() {
                keys.insert(format!("active:{}:{}", n.tenant_id, n.service_name));
            }
        }
        let Some(sql) = self.kind.key_locks_sql(keys.len()).filter(|_| !keys.is_empty()) else {
            return Ok(());
        };
        keys.into_iter().fold(sqlx::query(&sql), |q, k| q.bind(k)).execute(&mut **tx).await?;
        Ok(())
    }

    /// Active callbacks per service of the batch's immediate bookings, counted up to the largest
    /// limit asked (the answer is only "full or not").
    async fn active_per_service<'a>(
        &self,
        tx: &mut Transaction<'_, Any>,
        batch: &[&'a Booking],
    ) -> StoreResult<HashMap<ServiceKey<'a>, i64>> {
        let mut limits: BTreeMap<ServiceKey<'a>, i64> = BTreeMap::new();
        for b in batch {
            if let Some(limit) = b.guards.max_active {
                let entry = limits.entry((b.new.tenant_id.as_str(), b.new.service_name.as_str())).or_default();
                *entry = (*entry).max(limit);
            }
        }
        let mut counts = HashMap::with_capacity(limits.len());
        for ((tenant, service), limit) in limits {
            let row = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM callbacks
                 WHERE tenant_id = $1 AND service_name = $2 AND state IN ({ACTIVE_STATES}) LIMIT $3) active"
            ))
            .bind(tenant.to_string())
            .bind(service.to_string())
            .bind(limit)
            .fetch_one(&mut **tx)
            .await?;
            counts.insert((tenant, service), row.try_get::<i64, _>("n")?);
        }
        Ok(counts)
    }

    /// Places left per capacity bucket the batch asks for. The bucket rows are created when
    /// missing and locked (PostgreSQL) until the commit, so concurrent batches of other replicas
    /// see each other's reservations.
    async fn room_per_bucket<'a>(
        &self,
        tx: &mut Transaction<'_, Any>,
        batch: &[&'a Booking],
    ) -> StoreResult<HashMap<BucketKey<'a>, i64>> {
        let mut capacities: BTreeMap<BucketKey<'a>, i64> = BTreeMap::new();
        for b in batch {
            if let Some(CapacityClaim { bucket_start: start, capacity }) = b.guards.bucket {
                capacities.insert((b.new.tenant_id.as_str(), b.new.service_name.as_str(), start), i64::from(capacity));
            }
        }
        if capacities.is_empty() {
            return Ok(HashMap::new());
        }
        // The no-op update takes the row lock and returns the count in the same statement.
        let sql = format!(
            "INSERT INTO capacity_buckets (tenant_id, service_name, bucket_ms, reserved) VALUES {}
             ON CONFLICT (tenant_id, service_name, bucket_ms) DO UPDATE SET reserved = capacity_buckets.reserved
             RETURNING tenant_id, service_name, bucket_ms, reserved",
            placeholders(capacities.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (tenant, service, start) in capacities.keys() {
            query = bind_text(bind_text(query, tenant), service).bind(*start).bind(0_i64);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        let mut room = HashMap::with_capacity(rows.len());
        for row in rows {
            let tenant: String = row.try_get("tenant_id")?;
            let service: String = row.try_get("service_name")?;
            let start: Moment = row.try_get("bucket_ms")?;
            let reserved: i64 = row.try_get("reserved")?;
            // Borrow the key back from the request side (the row's strings are equal to it).
            if let Some((key, capacity)) =
                capacities.iter().find(|((t, s, b), _)| *t == tenant && *s == service && *b == start)
            {
                room.insert(*key, (capacity - reserved).max(0));
            }
        }
        Ok(room)
    }

    /// The admitted bookings' rows, their first history entries, their `Idempotency-Key`
    /// answers and their capacity places. PostgreSQL takes all four in one statement (one round
    /// trip: data-modifying CTEs run to completion whether or not the query reads them); SQLite
    /// has no writing CTEs, and its statements cost no round trip.
    async fn write_admitted(&self, tx: &mut Transaction<'_, Any>, admitted: &[&Booking]) -> StoreResult<()> {
        let replays: Vec<&IdempotencyResult> = admitted.iter().filter_map(|b| b.replay.as_ref()).collect();
        let taken = places_taken(admitted);
        let mut next = 1;
        let rows = numbered(&mut next, admitted.len(), 20);
        match self.kind {
            BackendKind::Postgres => {
                let mut sql = format!(
                    "WITH inserted AS (INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES {rows} RETURNING {INSERTED}),
                     history AS ({HISTORY_INSERT} SELECT id, state, NULL, created_ms, 'api', attempt FROM inserted),
                     rollup AS ({}),
                     events AS ({})",
                    booking_rollup("inserted"),
                    super::outbox::booking_events_of_inserted()
                );
                if !replays.is_empty() {
                    let values = numbered(&mut next, replays.len(), 4);
                    sql.push_str(&format!(", {}, replays AS ({REPLAY_UPDATE})", replay_values(&values)));
                }
                if !taken.is_empty() {
                    let values = numbered(&mut next, taken.len(), 4);
                    sql.push_str(&format!(", {}, places AS ({PLACES_UPDATE})", places_values(&values)));
                }
                sql.push_str(" SELECT 1");
                let query = bind_places(bind_replays(bind_rows(sqlx::query(&sql), admitted), &replays), &taken);
                query.execute(&mut **tx).await?;
            }
            BackendKind::Sqlite => {
                let sql = format!("INSERT INTO callbacks ({CALLBACK_COLUMNS}) VALUES {rows}");
                bind_rows(sqlx::query(&sql), admitted).execute(&mut **tx).await?;
                let sql = format!(
                    "{HISTORY_INSERT} SELECT id, state, NULL, created_ms, 'api', attempt FROM callbacks WHERE id IN ({})",
                    (1..=admitted.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                );
                let ids = admitted.iter().fold(sqlx::query(&sql), |q, b| bind_text(q, &b.new.id));
                ids.execute(&mut **tx).await?;
                let marks = (1..=admitted.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let source =
                    format!("(SELECT tenant_id, service_name, state, created_ms FROM callbacks WHERE id IN ({marks}))");
                let sql = booking_rollup(&source);
                let ids = admitted.iter().fold(sqlx::query(&sql), |q, b| bind_text(q, &b.new.id));
                ids.execute(&mut **tx).await?;
                let ids: Vec<&str> = admitted.iter().map(|b| b.new.id.as_str()).collect();
                super::outbox::record_booking_events(tx, &ids).await?;
                if !replays.is_empty() {
                    let sql = format!("WITH {} {REPLAY_UPDATE}", replay_values(&placeholders(replays.len(), 4)));
                    bind_replays(sqlx::query(&sql), &replays).execute(&mut **tx).await?;
                }
                if !taken.is_empty() {
                    let sql = format!("WITH {} {PLACES_UPDATE}", places_values(&placeholders(taken.len(), 4)));
                    bind_places(sqlx::query(&sql), &taken).execute(&mut **tx).await?;
                }
            }
        }
        Ok(())
    }
}

const CALLBACK_COLUMNS: &str = "id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, \
     attempt, claimed_ms, queued_ms, details, created_ms, updated_ms, bucket_ms, claimed_by, queued_ttl_ms, ttl_ms, \
     traceparent";
/// What the inserted rows answer to the history and event inserts of the same statement.
const INSERTED: &str = "id, tenant_id, service_name, state, reason, attempt, due_ms, created_ms, updated_ms";
const HISTORY_INSERT: &str = "INSERT INTO callback_history (callback_id, state, reason, time_ms, actor, attempt)";
/// Reads the `replay` values list (`replay_values`).
const REPLAY_UPDATE: &str = "UPDATE idempotency SET status = replay.status, response = replay.response FROM replay
     WHERE idempotency.tenant_id = replay.tenant_id AND idempotency.key = replay.key";
/// Reads the `place` values list (`places_values`).
const PLACES_UPDATE: &str = "UPDATE capacity_buckets SET reserved = reserved + place.n FROM place
     WHERE capacity_buckets.tenant_id = place.tenant_id AND capacity_buckets.service_name = place.service_name
       AND capacity_buckets.bucket_ms = place.bucket_ms";

/// The outcome report's roll-up of a batch's bookings (migration 0016) from `source` (the rows
/// just inserted): booked by kind, and the hand-off of immediate ones (claimed as they are booked,
/// so in the first latency bucket). A few inserted rows a batch, in the batch's transaction.
fn booking_rollup(source: &str) -> String {
    let hour = "(created_ms / 3600000) * 3600000";
    format!(
        "INSERT INTO outcome_rollup (tenant_id, service_name, hour_ms, metric, label, n)
           SELECT tenant_id, service_name, {hour} AS hour_ms, 'booked' AS metric,
               CASE WHEN state = 'QUEUED' THEN 'immediate' ELSE 'scheduled' END AS label, COUNT(*) AS n
           FROM {source} b GROUP BY tenant_id, service_name, {hour}, state
           UNION ALL
           SELECT tenant_id, service_name, {hour}, 'handed_over', '', COUNT(*)
           FROM {source} b WHERE state = 'QUEUED' GROUP BY tenant_id, service_name, {hour}
           UNION ALL
           SELECT tenant_id, service_name, {hour}, 'to_handoff', '1', COUNT(*)
           FROM {source} b WHERE state = 'QUEUED' GROUP BY tenant_id, service_name, {hour}"
    )
}

fn replay_values(values: &str) -> String {
    format!("replay (tenant_id, key, status, response) AS (VALUES {values})")
}

fn places_values(values: &str) -> String {
    format!("place (tenant_id, service_name, bucket_ms, n) AS (VALUES {values})")
}

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// The 20 columns of `CALLBACK_COLUMNS` per booking.
fn bind_rows<'q>(query: AnyQuery<'q>, admitted: &[&Booking]) -> AnyQuery<'q> {
    admitted.iter().fold(query, |query, b| {
        let new = &b.new;
        let claimed = new.claimed_by.is_some();
        bind_text(bind_text(bind_text(query, &new.id), &new.tenant_id), &new.service_name)
            .bind(new.state.as_str())
            .bind(new.phone.as_str().to_string())
            .bind(new.desired_ms)
            .bind(new.due_ms)
            .bind(new.priority)
            .bind(new.corr_id.clone())
            .bind(i64::from(claimed))
            .bind(claimed.then_some(new.now))
            .bind((new.state == State::Queued).then_some(new.now))
            // A map of JSON values with string keys always serialises.
            .bind(serde_json::to_string(&new.details).unwrap_or_default())
            .bind(new.now)
            .bind(new.now)
            .bind(b.guards.bucket.map(|c| c.bucket_start))
            .bind(new.claimed_by.clone())
            .bind(new.ttls.queued)
            .bind(new.ttls.finished)
            .bind(new.traceparent.clone())
    })
}

fn bind_replays<'q>(query: AnyQuery<'q>, replays: &[&IdempotencyResult]) -> AnyQuery<'q> {
    replays.iter().fold(query, |query, r| {
        bind_text(bind_text(query, &r.tenant_id), &r.key).bind(i64::from(r.status)).bind(r.body.clone())
    })
}

fn bind_places<'q>(query: AnyQuery<'q>, taken: &BTreeMap<BucketKey<'_>, i64>) -> AnyQuery<'q> {
    taken.iter().fold(query, |query, ((tenant, service, start), n)| {
        bind_text(bind_text(query, tenant), service).bind(*start).bind(*n)
    })
}

/// Places the admitted bookings take, per bucket.
fn places_taken<'a>(admitted: &[&'a Booking]) -> BTreeMap<BucketKey<'a>, i64> {
    let mut taken = BTreeMap::new();
    for b in admitted {
        if let Some(CapacityClaim { bucket_start: start, .. }) = b.guards.bucket {
            *taken.entry((b.new.tenant_id.as_str(), b.new.service_name.as_str(), start)).or_default() += 1;
        }
    }
    taken
}

/// Unfinished callbacks per number of the batch's bookings that check them (in-queue checking).
async fn unfinished_per_number<'a>(
    tx: &mut Transaction<'_, Any>,
    batch: &[&'a Booking],
) -> StoreResult<HashMap<NumberKey<'a>, i64>> {
    let numbers: BTreeSet<NumberKey<'a>> = batch
        .iter()
        .filter(|b| b.guards.max_unfinished_for_number.is_some())
        .map(|b| (b.new.tenant_id.as_str(), b.new.service_name.as_str(), b.new.phone.as_str()))
        .collect();
    let mut counts = HashMap::with_capacity(numbers.len());
    if numbers.is_empty() {
        return Ok(counts);
    }
    let sql = format!(
        "SELECT tenant_id, service_name, phone, COUNT(*) AS n FROM callbacks
         WHERE (tenant_id, service_name, phone) IN (VALUES {}) AND state <> 'COMPLETED'
         GROUP BY tenant_id, service_name, phone",
        placeholders(numbers.len(), 3)
    );
    let mut query = sqlx::query(&sql);
    for (tenant, service, phone) in &numbers {
        query = bind_text(bind_text(bind_text(query, tenant), service), phone);
    }
    for row in query.fetch_all(&mut **tx).await? {
        let (tenant, service, phone): (String, String, String) =
            (row.try_get("tenant_id")?, row.try_get("service_name")?, row.try_get("phone")?);
        if let Some(key) = numbers.iter().find(|(t, s, p)| *t == tenant && *s == service && *p == phone) {
            counts.insert(*key, row.try_get::<i64, _>("n")?);
        }
    }
    Ok(counts)
}
