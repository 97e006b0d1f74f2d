//! `GET /engagement/v3/openapi.json`: OpenAPI 3.1 of the public API, generated from the handlers'
//! annotations.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{availability, call_in, callbacks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ringback public API", description = "GES v3-compatible callback API. Every answer is an envelope `{ status: { code, message, corrId, reason?, details? }, data? }`."),
    paths(callbacks::create, callbacks::retrieve, callbacks::cancel, callbacks::reschedule, callbacks::list,
        availability::availability, availability::open_for,
        call_in::create, call_in::retrieve, call_in::cancel),
    components(schemas(
        callbacks::CreateCallbackParms, callbacks::IdParms, callbacks::RescheduleParms, callbacks::IdData,
        callbacks::CallbackView, callbacks::HistoryView, callbacks::CallbackPage, callbacks::RescheduleData,
        availability::SlotView, availability::AvailabilityData,
        call_in::CreateCallInParms, call_in::CallInIdParms, call_in::CallInView
    )),
    modifiers(&ApiKeyScheme),
    tags((name = "callbacks", description = "Book, read, move and cancel callbacks"),
        (name = "call-in", description = "Click-to-call-in: a number (and access code) for the customer to call"))
)]
pub struct PublicApi;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(PublicApi::openapi())
}
