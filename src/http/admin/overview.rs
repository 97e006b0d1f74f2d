//! `GET tenants/{tenant}/overview` (issue 26): the console's "Now" page in one answer: per service
//! the active callbacks (the watermark), due callbacks not yet handed over and how long the oldest
//! has waited, hand-offs failed in the last hour, whether hand-offs are paused; and the
//! dependencies' health as `/health/ready` reports it on this replica.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::existing_tenant;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::AdminAuth;
use crate::ops::AppState;
use crate::time::{format_utc, Millis};

pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let now = crate::time::now();
    let services: Vec<Value> = state
        .store
        .list_service_overview(&tenant.id, now, now - crate::time::HOUR)
        .await?
        .into_iter()
        .map(|s| {
            json!({ "name": s.name, "paused": s.paused, "active": s.active, "dueNotHandedOver": s.due,
                "oldestDueTime": s.oldest_due_ms.map(format_utc),
                "oldestDueAgeSeconds": s.oldest_due_ms.map(|t| (now - t).max(Millis::ZERO).as_secs()),
                "failedLastHour": s.failed })
        })
        .collect();
    let (_, health) = crate::ops::readiness::readiness(&state).await;
    Ok(envelope::ok(json!({ "time": format_utc(now), "services": services, "health": health })))
}
