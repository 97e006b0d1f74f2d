//! `audit`: recent admin writes, newest first, each with the tenant it concerns (if any).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::Collection;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::AdminAuth;
use crate::ops::AppState;
use crate::time::format_utc;

const PAGE: i64 = 100;

pub async fn list(state: web::Data<AppState>, admin: AdminAuth, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let mut before = None;
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if k == "cursor" {
            before =
                Some(v.parse::<i64>().map_err(|_| ApiError::field("cursor", "is not a cursor this API returned"))?);
        }
    }
    // A tenant-limited operator reads its tenants' entries only.
    let records = state.store.list_audit(before, PAGE, admin.tenants()).await?;
    let next_cursor = (records.len() as i64 == PAGE).then(|| records.last().map(|r| r.id.to_string())).flatten();
    let items = records
        .into_iter()
        .map(|r| json!({ "time": format_utc(r.time_ms), "actor": r.actor, "tenant": r.tenant, "action": r.action, "resource": r.resource, "body": r.body }))
        .collect();
    Ok(envelope::ok(Collection { items, next_cursor }))
}
