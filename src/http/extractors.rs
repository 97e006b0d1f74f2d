//! Request extractors: a JSON body that fails into our envelope (415/413/400 with field paths),
//! the API key → tenant, and the admin bearer token.

use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::key_scope::KeyScope;
use crate::domain::operator::Operator;
use crate::error::{ApiError, FieldProblem, Reason};
use crate::http::roles;
use crate::ops::AppState;
use crate::store::Tenant;
use crate::telemetry::catalogue::INVALID_CONTENT_LENGTH;

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(ApiError::internal)
}

/// When the request must be answered (`http.request_timeout_ms` after it arrived): its body must
/// have arrived by then, and a booking joins a batch only while a statement timeout is left.
#[derive(Clone, Copy)]
pub struct RequestDeadline(pub Instant);

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl RequestDeadline {
    pub fn of(req: &actix_web::HttpRequest) -> Instant {
        req.extensions().get::<RequestDeadline>().map_or_else(|| Instant::now() + DEFAULT_TIMEOUT, |d| d.0)
    }
}

/// A JSON object body, parsed into `T`. Keeps the raw value (idempotency compares bodies as JSON).
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Value,
}

fn too_large(limit: usize) -> ApiError {
    metrics::counter!(INVALID_CONTENT_LENGTH).increment(1);
    ApiError::new(Reason::PayloadTooLarge, format!("the body is larger than the limit of {limit} bytes"))
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = app_state(&req)?.settings.http.body_limit_bytes;
            let is_json = req
                .mime_type()
                .ok()
                .flatten()
                .is_some_and(|m| m.essence_str() == "application/json" || m.suffix().is_some_and(|s| s == "json"));
            if !is_json {
                return Err(ApiError::new(Reason::UnsupportedMediaType, "send the body as application/json"));
            }
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
            let deadline = tokio::time::Instant::from_std(RequestDeadline::of(&req));
            let read = async {
                while let Some(chunk) = payload.next().await {
                    let chunk =
                        chunk.map_err(|_| ApiError::new(Reason::MalformedJson, "the body could not be read"))?;
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(())
            };
            // A slow upload must not hold a worker's connection past the request's deadline.
            tokio::time::timeout_at(deadline, read).await.map_err(|_| {
                ApiError::new(Reason::RequestTimeout, "the body did not arrive within the request timeout")
            })??;
            let raw: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::new(Reason::MalformedJson, format!("the body is not valid JSON: {e}")))?;
            if !raw.is_object() {
                return Err(ApiError::new(Reason::MalformedJson, "the body must be a JSON object"));
            }
            crate::http::clean_input::check_json(&raw)?;
            let value = serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "body".to_string() } else { path };
                ApiError::validation(vec![FieldProblem::new(field, e.inner().to_string())])
            })?;
            Ok(JsonBody { value, raw })
        })
    }
}

/// The tenant behind the request's `x-api-key`. Also enforces the tenant's CORS origins.
pub struct ApiKeyAuth {
    pub tenant: Tenant,
    pub scope: KeyScope,
    /// The client's address (`http::client_address`), for per-address limits.
    pub client: std::net::IpAddr,
}

impl ApiKeyAuth {
    /// 403 `FORBIDDEN_SCOPE` unless this key may list callbacks.
    pub fn may_list_callbacks(&self) -> Result<(), ApiError> {
        if self.scope.may_list_callbacks() {
            return Ok(());
        }
        Err(ApiError::new(
            Reason::ForbiddenScope,
            "this API key's scope (widget) does not allow listing callbacks; use a full key",
        ))
    }
}

/// The resolved tenant's name, left in the request for the metrics middleware's `tenant` label.
#[derive(Clone)]
pub struct TenantLabel(pub String);

impl FromRequest for ApiKeyAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    /// Any key but a `platform` one: the public API.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let refusal = "a platform key may only report callback states and queue statistics";
            authenticate_as(&req, |scope| scope != KeyScope::Platform, refusal).await
        })
    }
}

/// A `platform` key (issue 24): a voice platform behind a webhook reporting states and queue
/// statistics of its own tenant on the external listener.
pub struct PlatformAuth {
    pub tenant: Tenant,
}

impl FromRequest for PlatformAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let refusal = "only a platform key may report states and statistics";
            let auth = authenticate_as(&req, |scope| scope == KeyScope::Platform, refusal).await?;
            Ok(PlatformAuth { tenant: auth.tenant })
        })
    }
}

/// The key's tenant when `allowed` accepts its scope, else 403 `FORBIDDEN_SCOPE` with `refusal`.
async fn authenticate_as(
    req: &HttpRequest,
    allowed: fn(KeyScope) -> bool,
    refusal: &'static str,
) -> Result<ApiKeyAuth, ApiError> {
    let auth = authenticate(req).await?;
    if allowed(auth.scope) {
        Ok(auth)
    } else {
        Err(ApiError::new(Reason::ForbiddenScope, refusal))
    }
}

/// The key's tenant and scope, with the tenant's CORS origins enforced.
async fn authenticate(req: &HttpRequest) -> Result<ApiKeyAuth, ApiError> {
    let state = app_state(req)?;
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("send your API key in the x-api-key header"))?;
    // No peer address only in in-process tests; they share the unspecified address.
    let client = crate::http::client_address::client_address(req, &state.trusted_proxies)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let resolved = crate::ops::keys::resolve(&state, key)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))?;
    let (tenant, scope) = (resolved.tenant, resolved.scope);
    if !tenant.enabled {
        return Err(ApiError::unauthorized("the API key's tenant is disabled"));
    }
    req.extensions_mut().insert(TenantLabel(tenant.name.clone()));
    if let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        // Ringback's own booking page (`/ui/`) calls from Ringback's origin; browsers send
        // `Origin` on its POSTs too. A page elsewhere cannot claim this origin.
        let own = origin.split_once("://").is_some_and(|(_, authority)| {
            req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) == Some(authority)
        });
        if !own && !tenant.allowed_origins.iter().any(|o| o == origin) {
            return Err(ApiError::unauthorized(format!("origin {origin} is not allowed for this API key")));
        }
        req.extensions_mut().insert(OriginAllowed);
    }
    tracing::trace!(stage = "authenticated", tenant = %tenant.name, "API key accepted");
    crate::telemetry::request_context::record_tenant(&tenant.name);
    Ok(ApiKeyAuth { tenant, scope, client })
}

/// Left in the request when its `Origin` is one of its tenant's allowed origins.
#[derive(Clone, Copy)]
pub struct OriginAllowed;

/// Constant-time comparison against a list of valid tokens (several at once, for rotation). The
/// digests are compared, not the tokens: a byte-slice comparison returns at once when the lengths
/// differ, which tells a prober each token's length.
pub fn token_matches(presented: &str, valid: &[String]) -> Option<usize> {
    let presented = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for (i, token) in valid.iter().enumerate() {
        if bool::from(presented.as_slice().ct_eq(Sha256::digest(token.as_bytes()).as_slice())) {
            found = Some(i);
        }
    }
    found
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The position of the request's bearer token in `internal.tokens`. No tokens configured: the
/// internal API does not exist (404).
fn internal_token_index(req: &HttpRequest) -> Result<usize, ApiError> {
    let state = app_state(req)?;
    let tokens = &state.settings.internal.tokens;
    if tokens.is_empty() {
        return Err(ApiError::not_found("route"));
    }
    let presented =
        bearer(req).ok_or_else(|| ApiError::unauthorized("send an internal token as Authorization: Bearer <token>"))?;
    token_matches(presented, tokens).ok_or_else(|| ApiError::unauthorized("the internal token is not valid"))
}

/// An operator (issue 26): a holder of one of `admin.tokens` (an unlimited admin, named
/// `admin-token-<n>` by its position in the list, never by its text) or of an operator token. The
/// route's role rule (`http::roles`) is checked here, so every admin handler checks it by
/// taking this: a refusal answers 403 `FORBIDDEN_SCOPE`. `actor` is the name the audit log records.
pub struct AdminAuth {
    pub actor: String,
    pub operator: Operator,
}

impl AdminAuth {
    /// Whether the operator may see `tenant` (a tenant-limited operator sees its own only).
    pub fn sees(&self, tenant: &str) -> bool {
        self.operator.sees(tenant)
    }

    /// The tenants a listing is limited to (`None`: all).
    pub fn tenants(&self) -> Option<&[String]> {
        self.operator.tenants.as_deref()
    }
}

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Checked already by `admin_guard`, before any other part of the request was read.
        if let Some(operator) = req.extensions().get::<Operator>().cloned() {
            return Box::pin(std::future::ready(Ok(AdminAuth { actor: operator.name.clone(), operator })));
        }
        let req = req.clone();
        Box::pin(async move { admin_auth(&req, &req.match_pattern().unwrap_or_default()).await })
    }
}

/// Who calls, and whether the rule of the route (`pattern`, as matched) lets them.
async fn admin_auth(req: &HttpRequest, pattern: &str) -> Result<AdminAuth, ApiError> {
    let operator = admin_operator(req).await?;
    authorize(req, pattern, &operator)?;
    Ok(AdminAuth { actor: operator.name.clone(), operator })
}

/// Around every admin resource: the caller and the route's role rule are checked before the body
/// or path is read, so a refused caller learns nothing from validation errors (403 comes first).
/// A method the route does not have goes on to its 405.
pub async fn admin_guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    // Public routes pass at the cost of a prefix comparison.
    let pattern = match req.path().starts_with(roles::PREFIX) {
        true => req.match_pattern().filter(|p| roles::rule(req.method().as_str(), p).is_some()),
        false => None,
    };
    if let Some(pattern) = pattern {
        match admin_auth(req.request(), &pattern).await {
            Ok(auth) => {
                req.extensions_mut().insert(auth.operator);
            }
            Err(e) => return Ok(req.into_response(actix_web::ResponseError::error_response(&e))),
        }
    }
    next.call(req).await.map(actix_web::dev::ServiceResponse::map_into_boxed_body)
}

/// Who the bearer token belongs to: a configured admin token, else an operator's. The admin API
/// exists (else 404) when tokens are configured or any operator exists.
async fn admin_operator(req: &HttpRequest) -> Result<Operator, ApiError> {
    let state = app_state(req)?;
    let tokens = &state.settings.admin.tokens;
    let presented = bearer(req);
    if let Some(i) = presented.and_then(|p| token_matches(p, tokens)) {
        return Ok(Operator::configured_token(i));
    }
    if let Some(presented) = presented {
        if let Some(operator) = crate::ops::operators::recognise(&state.store, presented).await? {
            return Ok(operator);
        }
    }
    if tokens.is_empty() && !crate::ops::operators::any_exist(&state.store).await? {
        return Err(ApiError::not_found("route"));
    }
    Err(match presented {
        None => ApiError::unauthorized("send an admin or operator token as Authorization: Bearer <token>"),
        Some(_) => ApiError::unauthorized("the admin token is not valid"),
    })
}

/// The route's role rule, and its tenant, against the operator.
fn authorize(req: &HttpRequest, pattern: &str, operator: &Operator) -> Result<(), ApiError> {
    let Some(need) = roles::rule(req.method().as_str(), pattern) else {
        tracing::error!(route = %pattern, "an admin route has no role rule (http/roles.rs); refused");
        return Err(ApiError::internal());
    };
    let refuse = |why: String| Err(ApiError::new(Reason::ForbiddenScope, why));
    if !operator.role.may(need) {
        return refuse(format!("a {} may not do this", operator.role.as_str()));
    }
    match req.match_info().get("tenant") {
        Some(tenant) if !operator.sees(tenant) => refuse(format!("tenant {tenant} is not one of this operator's")),
        None if operator.is_limited() && !roles::filters_by_tenant(pattern) => {
            refuse("an operator limited to tenants may not do this".to_string())
        }
        _ => Ok(()),
    }
}

/// The voice platform holding one of `internal.tokens`.
pub struct InternalAuth;

impl FromRequest for InternalAuth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(internal_token_index(req).map(|_| InternalAuth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_allow_rotation() {
        let valid = vec!["old".to_string(), "new".to_string()];
        assert_eq!(token_matches("new", &valid), Some(1));
        assert_eq!(token_matches("old", &valid), Some(0));
        assert_eq!(token_matches("ne", &valid), None);
        assert_eq!(token_matches("newer", &valid), None);
        assert_eq!(token_matches("", &valid), None);
    }
}
