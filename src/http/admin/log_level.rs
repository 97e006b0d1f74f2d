//! `log-level`: change the log filter at run time. Applied at once on this replica and stored,
//! so the other replicas pick it up (they poll the stored value).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    pub level: String,
}

pub async fn get(state: web::Data<AppState>, _admin: AdminAuth) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(json!({ "level": state.log.current() })))
}

pub async fn put(
    state: web::Data<AppState>,
    admin: AdminAuth,
    body: JsonBody<LevelBody>,
) -> Result<HttpResponse, ApiError> {
    let level = body.value.level.trim().to_string();
    crate::config::parse_log_filter(&level).map_err(|p| ApiError::field("level", p))?;
    let audit = super::AuditEntry::new(&admin.actor, "PUT", "log-level".to_string(), Some(&body.raw));
    crate::ops::configuration::set_log_level(&state, &level, &audit).await?;
    Ok(envelope::ok(json!({ "level": level })))
}
