//! Many bookings in one transaction (the group commit of `store::writer`). The guards are
//! decided per booking, in order, exactly as one booking at a time would: in-queue checking and
//! `maxQueued` count the batch's earlier bookings, a capacity bucket admits the first ones that
//! fit. A statement then writes each kind of row for the whole batch, so a batch costs a handful
//! of round trips, not a handful per booking.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row, Transaction};

use super::callbacks::{BookingGuards, InsertOutcome, NewCallback};
use super::idempotency::IdempotencyResult;
use super::{BackendKind, Store, StoreResult};
use crate::domain::callback::State;

/// One booking as the writer receives it.
#[derive(Debug, Clone)]
pub struct Booking {
    pub new: NewCallback,
    pub guards: BookingGuards,
    /// The answer to replay for the request's `Idempotency-Key`, written with the booking.
    pub replay: Option<IdempotencyResult>,
}

/// (tenant id, service name, phone): the unit of in-queue checking.
type NumberKey<'a> = (&'a str, &'a str, &'a str);
/// (tenant id, service name).
type ServiceKey<'a> = (&'a str, &'a str);
/// (tenant id, service name, bucket start).
type BucketKey<'a> = (&'a str, &'a str, i64);

/// Rows per multi-row statement: 16 parameters each stays far below both databases' limits.
pub const MAX_BATCH: usize = 128;

const ACTIVE_STATES: &str = "'QUEUED', 'ROUTING', 'PROCESSING'";

/// `($1, $2, $3), ($4, $5, $6), ...`: `rows` groups of `width` numbered placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

fn bind_text<'q>(query: Query<'q, Any, AnyArguments<'q>>, value: &str) -> Query<'q, Any, AnyArguments<'q>> {
    query.bind(value.to_string())
}

impl Store {
    /// Write a batch of bookings in one transaction; one outcome per booking, in order. An error
    /// is the whole batch's: nothing of it was written.
    pub async fn insert_batch(&self, batch: &[&Booking]) -> StoreResult<Vec<InsertOutcome>> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            self.lock_guarded_keys(&mut tx, batch).await?;
            let mut unfinished = unfinished_per_number(&mut tx, batch).await?;
            let mut active = self.active_per_service(&mut tx, batch).await?;
            let mut room = self.room_per_bucket(&mut tx, batch).await?;

            let mut outcomes = Vec::with_capacity(batch.len());
            for b in batch {
                let new = &b.new;
                let number = (new.tenant_id.as_str(), new.service_name.as_str(), new.phone.as_str());
                let service = (new.tenant_id.as_str(), new.service_name.as_str());
                let bucket = b.guards.bucket.map(|(start, _)| (service.0, service.1, start));
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
                self.insert_rows(&mut tx, &admitted).await?;
                record_replays(&mut tx, &admitted).await?;
                take_bucket_places(&mut tx, &admitted).await?;
            }
            if crate::telemetry::faults::take_batch_stall() {
                // The database "hangs" before the commit: `timed` gives up, the batch rolls back.
                tokio::time::sleep(self.statement_timeout * 2).await;
            }
            tx.commit().await?;
            Ok(outcomes)
        })
        .await
    }

    /// PostgreSQL: serialise, across replicas, the batches that check the same number (in-queue
    /// checking) or the same service's queue (`maxQueued`), so their counts stay exact. Taken in
    /// one sorted order, so two batches never wait on each other crosswise. SQLite has one writer.
    async fn lock_guarded_keys(&self, tx: &mut Transaction<'_, Any>, batch: &[&Booking]) -> StoreResult<()> {
        if self.kind != BackendKind::Postgres {
            return Ok(());
        }
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
        if keys.is_empty() {
            return Ok(());
        }
        // A VALUES list is scanned in its written order, which is the sorted order.
        let sql = format!(
            "WITH v (k) AS (VALUES {}) SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM v",
            placeholders(keys.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for k in keys {
            query = query.bind(k);
        }
        query.execute(&mut **tx).await?;
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
            if let Some((start, capacity)) = b.guards.bucket {
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
            let start: i64 = row.try_get("bucket_ms")?;
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

    /// The callback rows and their first history entries.
    async fn insert_rows(&self, tx: &mut Transaction<'_, Any>, admitted: &[&Booking]) -> StoreResult<()> {
        const COLUMNS: &str = "id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, \
             attempt, claimed_ms, queued_ms, details, created_ms, updated_ms, bucket_ms, claimed_by";
        let values = placeholders(admitted.len(), 17);
        // PostgreSQL writes both tables in one statement; SQLite has no writing CTEs, and its
        // statements cost no round trip.
        let history = "INSERT INTO callback_history (callback_id, state, reason, time_ms, actor)";
        let sql = match self.kind {
            BackendKind::Postgres => format!(
                "WITH inserted AS (INSERT INTO callbacks ({COLUMNS}) VALUES {values} RETURNING id, state, created_ms)
                 {history} SELECT id, state, NULL, created_ms, 'api' FROM inserted"
            ),
            BackendKind::Sqlite => format!("INSERT INTO callbacks ({COLUMNS}) VALUES {values}"),
        };
        let mut query = sqlx::query(&sql);
        for b in admitted {
            let new = &b.new;
            let claimed = new.claimed_by.is_some();
            query = bind_text(bind_text(bind_text(query, &new.id), &new.tenant_id), &new.service_name)
                .bind(new.state.as_str())
                .bind(new.phone.clone())
                .bind(new.desired_ms)
                .bind(new.due_ms)
                .bind(new.priority)
                .bind(new.corr_id.clone())
                .bind(i64::from(claimed))
                .bind(claimed.then_some(new.now_ms))
                .bind((new.state == State::Queued).then_some(new.now_ms))
                .bind(serde_json::to_string(&new.details)?)
                .bind(new.now_ms)
                .bind(new.now_ms)
                .bind(b.guards.bucket.map(|(start, _)| start))
                .bind(new.claimed_by.clone());
        }
        query.execute(&mut **tx).await?;
        if self.kind == BackendKind::Sqlite {
            let sql = format!(
                "{history} SELECT id, state, NULL, created_ms, 'api' FROM callbacks WHERE id IN ({})",
                (1..=admitted.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
            );
            let mut query = sqlx::query(&sql);
            for b in admitted {
                query = bind_text(query, &b.new.id);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
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

/// The answers to replay for the admitted bookings' `Idempotency-Key`s.
async fn record_replays(tx: &mut Transaction<'_, Any>, admitted: &[&Booking]) -> StoreResult<()> {
    let replays: Vec<&IdempotencyResult> = admitted.iter().filter_map(|b| b.replay.as_ref()).collect();
    if replays.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "WITH v (tenant_id, key, status, response) AS (VALUES {})
         UPDATE idempotency SET status = v.status, response = v.response FROM v
         WHERE idempotency.tenant_id = v.tenant_id AND idempotency.key = v.key",
        placeholders(replays.len(), 4)
    );
    let mut query = sqlx::query(&sql);
    for r in replays {
        query = bind_text(bind_text(query, &r.tenant_id), &r.key).bind(i64::from(r.status)).bind(r.body.clone());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// One increment per bucket for all of the batch's places in it.
async fn take_bucket_places(tx: &mut Transaction<'_, Any>, admitted: &[&Booking]) -> StoreResult<()> {
    let mut taken: BTreeMap<BucketKey<'_>, i64> = BTreeMap::new();
    for b in admitted {
        if let Some((start, _)) = b.guards.bucket {
            *taken.entry((b.new.tenant_id.as_str(), b.new.service_name.as_str(), start)).or_default() += 1;
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "WITH v (tenant_id, service_name, bucket_ms, n) AS (VALUES {})
         UPDATE capacity_buckets SET reserved = reserved + v.n FROM v
         WHERE capacity_buckets.tenant_id = v.tenant_id AND capacity_buckets.service_name = v.service_name
           AND capacity_buckets.bucket_ms = v.bucket_ms",
        placeholders(taken.len(), 4)
    );
    let mut query = sqlx::query(&sql);
    for ((tenant, service, start), n) in taken {
        query = bind_text(bind_text(query, tenant), service).bind(start).bind(n);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
