//! The voice platform's state reports (internal API): one conditional transition per report, with
//! the retry policy's follow-up booked in the same transaction.

use sqlx::{Any, Transaction};

use super::callbacks::CallbackRecord;
use super::error::StoreResult;
use super::handle::Store;
use super::outbox::record_events;
use crate::domain::callback::{Actor, State};
use crate::domain::webhook::LifecycleEvent;
use crate::time::Moment;
/// Platform report on a hand-off (internal API).
#[derive(Debug, Clone, Default)]
pub struct PlatformReport {
    pub state: Option<State>,
    pub reason: Option<String>,
    pub position: Option<i64>,
    pub ewt: Option<i64>,
    pub session_id: Option<String>,
    pub attempt: Option<i64>,
}

/// A follow-up to book if the report completes the callback (issue 27): its id, the outcome it
/// follows, and the times it may take, earliest first (`domain::retry::candidates`).
#[derive(Debug, Clone)]
pub struct FollowUpPlan {
    pub id: String,
    pub reason: crate::domain::callback::CompletionReason,
    pub candidates: Vec<crate::domain::retry::Candidate>,
}

/// What became of a planned follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpOutcome {
    Booked {
        id: String,
        desired_ms: Moment,
    },
    /// Every candidate's slot was full by the time of the report (or there was none).
    NoSlot,
}

#[derive(Debug, Clone)]
pub enum ReportOutcome {
    /// Moved forward (or acknowledged); with the follow-up booked in the same transaction, if one
    /// was planned and the report completed the callback.
    Applied {
        record: Box<CallbackRecord>,
        from: State,
        follow_up: Option<FollowUpOutcome>,
    },
    /// Same state again, or a report for an older attempt: nothing moved.
    Unchanged,
    Illegal(State),
    NotFound,
}

impl Store {
    /// The platform's report on a hand-off: forward moves, acknowledgements, idempotent repeats.
    pub async fn apply_platform_report(
        &self,
        id: &str,
        report: &PlatformReport,
        plan: Option<&FollowUpPlan>,
        now: Moment,
    ) -> StoreResult<ReportOutcome> {
        self.timed(async {
            let mut tx = self.writer.begin().await?;
            loop {
                let Some(current) = super::callbacks::fetch_any_in_tx(&mut tx, id).await? else {
                    return Ok(ReportOutcome::NotFound);
                };
                match report.attempt {
                    Some(a) if a < current.attempt => return Ok(ReportOutcome::Unchanged),
                    Some(a) if a > current.attempt => return Ok(ReportOutcome::Illegal(current.state)),
                    _ => {}
                }
                let target = report.state.unwrap_or(current.state);
                if current.state == State::Scheduled || target < current.state || (current.state == State::Completed && target != State::Completed) {
                    return Ok(ReportOutcome::Illegal(current.state));
                }
                // Every accepted report acknowledges the hand-off ("every later state implies it").
                let first_ack = current.acked_ms.is_none();
                let completing = target == State::Completed && current.state != State::Completed;
                let moved = sqlx::query(
                    "UPDATE callbacks SET state = $1, reason = COALESCE($2, reason), acked_ms = COALESCE(acked_ms, $3),
                         processing_ms = CASE WHEN $1 = 'PROCESSING' THEN COALESCE(processing_ms, $3) ELSE processing_ms END,
                         platform_position = COALESCE($4, platform_position), platform_ewt = COALESCE($5, platform_ewt),
                         platform_reported_ms = CASE WHEN $4 IS NOT NULL OR $5 IS NOT NULL THEN $3 ELSE platform_reported_ms END,
                         session_id = COALESCE($6, session_id), updated_ms = CASE WHEN $1 <> $7 THEN $3 ELSE updated_ms END
                     WHERE id = $8 AND state = $7 AND attempt = $9",
                )
                .bind(target.as_str())
                .bind(if completing { report.reason.clone() } else { None })
                .bind(now)
                .bind(report.position)
                .bind(report.ewt)
                .bind(report.session_id.clone())
                .bind(current.state.as_str())
                .bind(id)
                .bind(current.attempt)
                .execute(&mut *tx)
                .await?;
                if moved.rows_affected() == 0 {
                    continue; // moved under us; read again
                }
                if target == current.state {
                    if first_ack && target == State::Queued {
                        // The timeline shows the acknowledgement (a later state implies it).
                        super::callbacks::append_noted_history_rows(
                            &mut tx,
                            &[id],
                            State::Queued,
                            None,
                            Some("acknowledged"),
                            Actor::Platform,
                            now,
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    return Ok(if first_ack && target == State::Queued {
                        ReportOutcome::Applied { record: Box::new(current.clone()), from: current.state, follow_up: None }
                    } else {
                        ReportOutcome::Unchanged
                    });
                }
                let reason = (target == State::Completed).then(|| report.reason.clone()).flatten();
                let follow_up = match plan.filter(|_| completing) {
                    Some(plan) => Some(book_follow_up(&mut tx, &current, plan, now).await?),
                    None => None,
                };
                let note = follow_up.as_ref().map(|f| match f {
                    FollowUpOutcome::Booked { id, desired_ms } => {
                        format!("follow-up {id} booked for {}", crate::time::format_utc(*desired_ms))
                    }
                    FollowUpOutcome::NoSlot => "no follow-up: no open slot with room within maxFuture".to_string(),
                });
                super::callbacks::append_noted_history_rows(
                    &mut tx,
                    &[id],
                    target,
                    reason.as_deref(),
                    note.as_deref(),
                    Actor::Platform,
                    now,
                )
                .await?;
                let event =
                    if target == State::Completed { LifecycleEvent::Completed } else { LifecycleEvent::StateChanged };
                record_events(&mut tx, event, &[id]).await?;
                tx.commit().await?;
                let from = current.state;
                let record = CallbackRecord { state: target, reason, updated_ms: now, ..current };
                return Ok(ReportOutcome::Applied { record: Box::new(record), from, follow_up });
            }
        })
        .await
    }
}

/// Book `plan`'s follow-up of `original` in the report's transaction: the first candidate whose
/// slot still has a place (taken here, conditionally, as any booking takes one), with the
/// original's number, priority, details (its `userData`) and time limits.
async fn book_follow_up(
    tx: &mut Transaction<'_, Any>,
    original: &CallbackRecord,
    plan: &FollowUpPlan,
    now: Moment,
) -> StoreResult<FollowUpOutcome> {
    for c in &plan.candidates {
        if let Some(claim) = c.claim {
            let taken = super::capacity::reserve(
                tx,
                &original.tenant_id,
                &original.service_name,
                claim.bucket_start,
                claim.capacity,
            )
            .await?;
            if !taken {
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id,
                 attempt, details, created_ms, updated_ms, bucket_ms, queued_ttl_ms, ttl_ms, traceparent, retry_of, retry_number)
             SELECT $1, tenant_id, service_name, 'SCHEDULED', phone, $2, $3, priority, corr_id, 0, details, $4, $4, $5,
                 queued_ttl_ms, ttl_ms, traceparent, id, retry_number + 1
             FROM callbacks WHERE id = $6",
        )
        .bind(plan.id.clone())
        .bind(c.desired_ms)
        .bind(c.due_ms)
        .bind(now)
        .bind(c.claim.map(|claim| claim.bucket_start))
        .bind(original.id.clone())
        .execute(&mut **tx)
        .await?;
        let note = format!("follow-up {} of {} after {}", original.retry_number + 1, original.id, plan.reason.as_str());
        let ids = [plan.id.as_str()];
        super::callbacks::append_noted_history_rows(tx, &ids, State::Scheduled, None, Some(&note), Actor::Monitor, now)
            .await?;
        super::outbox::record_booking_events(tx, &ids).await?;
        return Ok(FollowUpOutcome::Booked { id: plan.id.clone(), desired_ms: c.desired_ms });
    }
    Ok(FollowUpOutcome::NoSlot)
}
