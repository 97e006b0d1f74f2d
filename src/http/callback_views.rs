//! Callbacks as the APIs show them (`CallbackView`, its history, pages with a cursor) and the
//! list query both the public and the admin list read. Shared rendering and parsing, not a
//! handler: the handler files that list callbacks both use it.

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::domain::callback::State;
use crate::error::{ApiError, FieldProblem};
use crate::ops::AppState;
use crate::store::{CallbackFilter, CallbackRecord, HistoryEntry, Tenant};
use crate::time::{format_utc, parse_instant, Moment};

/// A callback as `retrieve` and `list` return it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    pub id: String,
    pub service_name: String,
    pub desired_time: String,
    pub callback_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_reason: Option<String>,
    pub phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position_in_queue: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_time: Option<i64>,
    pub created_time: String,
    pub updated_time: String,
    #[schema(value_type = Object)]
    pub user_data: Value,
    /// Extension (issue 27): the callback a follow-up retries, and its number in the chain (1: the
    /// first follow-up). Absent on an original booking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_number: Option<i64>,
    /// Stored reporting fields (`language`, `channel`, `cbOfferType`, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub reporting: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryView {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub time: String,
    /// `api`, `admin`, `monitor` or `platform`.
    pub actor: String,
    /// Extension: why, where state and reason do not say ("service deleted").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Extension: the hand-off attempt the entry belongs to (0: before the first hand-off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackPage {
    pub items: Vec<CallbackView>,
    pub next_cursor: Option<String>,
}

pub fn view(record: CallbackRecord, history: Option<Vec<HistoryEntry>>) -> CallbackView {
    let mut reporting = record.details;
    let user_data = reporting.remove("userData").unwrap_or_else(|| json!({}));
    CallbackView {
        id: record.id,
        service_name: record.service_name,
        desired_time: format_utc(record.desired_ms),
        callback_state: record.state.as_str().to_string(),
        callback_reason: if record.state == State::Completed { record.reason } else { None },
        phone_number: record.phone,
        position_in_queue: None,
        estimated_wait_time: None,
        created_time: format_utc(record.created_ms),
        updated_time: format_utc(record.updated_ms),
        user_data,
        retry_number: record.retry_of.is_some().then_some(record.retry_number),
        retry_of: record.retry_of,
        reporting,
        history: history.map(|h| {
            h.into_iter()
                .map(|e| HistoryView {
                    state: e.state.as_str().to_string(),
                    reason: e.reason,
                    time: format_utc(e.time_ms),
                    actor: e.actor,
                    note: e.note,
                    attempt: e.attempt,
                })
                .collect()
        }),
    }
}

pub async fn list_page(state: &AppState, tenant: &Tenant, filter: CallbackFilter) -> Result<CallbackPage, ApiError> {
    let (records, next_cursor) = page_of(state, tenant, filter).await?;
    Ok(CallbackPage { items: records.into_iter().map(|r| view(r, None)).collect(), next_cursor })
}

/// One page of records and the cursor of the next (one extra row tells whether there is one).
pub async fn page_of(
    state: &AppState,
    tenant: &Tenant,
    filter: CallbackFilter,
) -> Result<(Vec<CallbackRecord>, Option<String>), ApiError> {
    let limit = filter.limit;
    let mut records = state.store.list_callbacks(&tenant.id, &CallbackFilter { limit: limit + 1, ..filter }).await?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| encode_cursor(r.desired_ms, &r.id))
    } else {
        None
    };
    Ok((records, next_cursor))
}

pub fn parse_list_query(query: &str) -> Result<CallbackFilter, ApiError> {
    let mut filter = CallbackFilter { limit: 100, ..Default::default() };
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "serviceName" => filter.service_name = Some(value.into_owned()),
            "phoneNumber" => match crate::domain::booking::parse_phone(&value, &Default::default()) {
                Ok(n) => filter.phone = Some(n.as_str().to_string()),
                Err(_) => problems.push(FieldProblem::new("phoneNumber", "is not a phone number")),
            },
            "phoneEndsWith" => match value.len() {
                2..=15 if value.bytes().all(|b| b.is_ascii_digit()) => filter.phone_suffix = Some(value.into_owned()),
                _ => problems.push(FieldProblem::new("phoneEndsWith", "must be 2 to 15 digits")),
            },
            "state" => match value.strip_prefix('!') {
                Some(excluded) => match excluded.parse::<State>() {
                    Ok(x) => filter.states.extend(State::ALL.into_iter().filter(|s| *s != x)),
                    Err(p) => problems.push(FieldProblem::new("state", p)),
                },
                None => match value.parse::<State>() {
                    Ok(s) => filter.states.push(s),
                    Err(p) => problems.push(FieldProblem::new("state", p)),
                },
            },
            "from" => match parse_instant("from", &value) {
                Ok(ms) => filter.from_ms = Some(ms),
                Err(p) => problems.push(FieldProblem::new("from", p)),
            },
            "to" => match parse_instant("to", &value) {
                Ok(ms) => filter.to_ms = Some(ms),
                Err(p) => problems.push(FieldProblem::new("to", p)),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => filter.limit = n,
                _ => problems.push(FieldProblem::new("limit", "must be a whole number from 1 to 500")),
            },
            "cursor" => match decode_cursor(&value) {
                Some(after) => filter.after = Some(after),
                None => problems.push(FieldProblem::new("cursor", "is not a cursor this API returned")),
            },
            _ => {}
        }
    }
    filter.states.sort();
    filter.states.dedup();
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(ApiError::validation(problems))
    }
}

fn encode_cursor(desired_ms: Moment, id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{id}", desired_ms.as_ms()))
}

fn decode_cursor(text: &str) -> Option<(Moment, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ms, id) = text.split_once(':')?;
    Some((Moment::from_ms(ms.parse().ok()?), id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_reads_repeated_states_negation_and_cursor() {
        let f = parse_list_query("state=SCHEDULED&state=QUEUED&limit=5").unwrap();
        assert_eq!(f.states, vec![State::Scheduled, State::Queued]);
        assert_eq!(f.limit, 5);
        let f = parse_list_query("state=%21COMPLETED").unwrap();
        assert_eq!(f.states.len(), 4);
        assert!(!f.states.contains(&State::Completed));
        let c = encode_cursor(Moment::from_ms(42), "abc");
        assert_eq!(
            parse_list_query(&format!("cursor={c}")).unwrap().after,
            Some((Moment::from_ms(42), "abc".to_string()))
        );
        let e = parse_list_query("limit=0&state=DONE&cursor=zz").unwrap_err();
        assert_eq!(e.details.len(), 3);
    }
}
