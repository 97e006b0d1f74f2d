//! `POST tenants/{tenant}/erasure` (issue 27; GDPR art. 17, CCPA): every record of a phone number
//! in the tenant, erased in one audited transaction (`ops::erasure`). Admins only.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::existing_tenant;
use crate::error::ApiError;
use crate::http::envelope;
use crate::http::extractors::{AdminAuth, JsonBody};
use crate::ops::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErasureBody {
    pub phone_number: String,
}

pub async fn erase(
    state: web::Data<AppState>,
    admin: AdminAuth,
    path: web::Path<String>,
    body: JsonBody<ErasureBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let answer = crate::ops::erasure::erase(&state, &tenant, &body.value.phone_number, &admin.actor).await?;
    Ok(envelope::ok(answer))
}
