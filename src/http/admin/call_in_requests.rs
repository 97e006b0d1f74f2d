//! `tenants/{tenant}/call-in-requests` (issue 26): the tenant's click-to-call-in requests for
//! operators, newest first, and an audited bulk cancel.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::existing_tenant;
use crate::domain::call_in::RequestState;
use crate::error::{ApiError, FieldProblem};
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::AppState;
use crate::store::{AuditEntry, CallInFilter, CallInRecord};
use crate::time::{format_utc, Moment};

fn parse_query(query: &str) -> Result<CallInFilter, ApiError> {
    let mut filter = CallInFilter { limit: 100, ..Default::default() };
    let mut problems = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "group" => filter.group = Some(value.into_owned()),
            "state" => match value.parse::<RequestState>() {
                Ok(s) => filter.state = Some(s),
                Err(_) => problems.push(FieldProblem::new("state", "must be PENDING, MATCHED, EXPIRED or CANCELLED")),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => filter.limit = n,
                _ => problems.push(FieldProblem::new("limit", "must be a whole number from 1 to 500")),
            },
            "cursor" => match value.split_once(':').and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string()))) {
                Some(before) => filter.before = Some(before),
                None => problems.push(FieldProblem::new("cursor", "is not a cursor this API returned")),
            },
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(ApiError::validation(problems))
    }
}

fn view(r: CallInRecord, now: Moment) -> Value {
    json!({ "id": r.id, "groupName": r.group_name, "state": r.state.as_seen(r.expires_ms, now).as_str(),
        "toPhoneNumber": r.to_number, "accessCode": r.access_code, "fromPhoneNumber": r.from_number,
        "callbackId": r.callback_id, "userData": r.user_data, "expirationTime": format_utc(r.expires_ms),
        "createdTime": format_utc(r.created_ms), "updatedTime": format_utc(r.updated_ms) })
}

pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let filter = parse_query(req.query_string())?;
    let limit = filter.limit;
    let now = crate::time::now();
    let mut records = state.store.list_callins(&tenant.id, &CallInFilter { limit: limit + 1, ..filter }, now).await?;
    let next_cursor = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| format!("{}:{}", r.created_ms.as_ms(), r.id))
    } else {
        None
    };
    let items: Vec<Value> = records.into_iter().map(|r| view(r, now)).collect();
    Ok(envelope::ok(json!({ "items": items, "nextCursor": next_cursor })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub ids: Vec<String>,
}

/// Cancel pending requests (their numbers or codes are free at once), all in one transaction
/// with the audit entry. Already cancelled ones count as cancelled, as in the public cancel.
pub async fn cancel(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: JsonBody<CancelBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let ids = super::bounded_ids(&body.value.ids)?;
    let audit = AuditEntry::new(
        &admin.actor,
        "POST",
        format!("tenants/{}/call-in-requests/cancel", tenant.name),
        Some(&body.raw),
    );
    let done = crate::ops::call_in::cancel_many(&state, &tenant, ids, &audit).await?;
    Ok(envelope::ok(
        json!({ "cancelled": done.cancelled, "notFound": done.not_found, "alreadyCompleted": done.already_completed }),
    ))
}
