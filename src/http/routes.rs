//! Every route, in one place. The internal listener serves everything; the external one only the
//! public API and health. Actix parameter names cannot hold `-`, so `{service_name}` here is
//! labelled `{service-name}` in metrics and logs (`middleware::route_label`), as the spec names it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{ApiError, Reason};
use crate::http::{
    admin, availability, call_in, callbacks, clean_input, console, health, internal, middleware, openapi, platform,
    queues, ui,
};

/// Public API, health and the booking page: on both listeners.
pub fn public(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/engagement/v3")
            .service(resource("/callbacks/create").route(web::post().to(callbacks::create)))
            .service(resource("/callbacks/retrieve").route(web::post().to(callbacks::retrieve)))
            .service(resource("/callbacks/cancel").route(web::post().to(callbacks::cancel)))
            .service(resource("/callbacks/reschedule").route(web::post().to(callbacks::reschedule)))
            .service(resource("/callbacks/update").route(web::post().to(callbacks::update)))
            .service(resource("/callbacks/validate").route(web::post().to(callbacks::validate)))
            .service(resource("/callbacks").route(web::get().to(callbacks::list)))
            .service(resource("/callbacks/{id}/state").route(web::post().to(platform::report_state)))
            .service(resource("/queues/{virtual_queue}/stats").route(web::put().to(platform::queue_stats)))
            .service(
                resource("/callbacks/availability/{service_name}").route(web::get().to(availability::availability)),
            )
            .service(resource("/callbacks/open-for/{service_name}").route(web::get().to(availability::open_for)))
            .service(resource("/callbacks/queue-status/{queue_name}").route(web::get().to(queues::queue_status)))
            .service(resource("/call-in/requests/create").route(web::post().to(call_in::create)))
            .service(resource("/call-in/requests/retrieve").route(web::post().to(call_in::retrieve)))
            .service(resource("/call-in/requests/cancel").route(web::post().to(call_in::cancel)))
            .service(resource("/estimated-wait-time").route(web::get().to(queues::estimated_wait_time)))
            .service(
                resource("/estimated-wait-time/virtual-queues/{virtual_queue}")
                    .route(web::get().to(queues::estimated_wait_time_of_queue)),
            )
            .service(resource("/openapi.json").route(web::get().to(openapi::document))),
    )
    .service(resource("/health/live").route(web::get().to(health::live)))
    .service(resource("/health/ready").route(web::get().to(health::ready)))
    .service(resource("/ui").route(web::get().to(ui::redirect_to_page)))
    .service(resource("/ui/").route(web::get().to(ui::asset)))
    .service(resource("/ui/{file}").route(web::get().to(ui::asset)))
    .service(resource("/favicon.ico").route(web::get().to(ui::favicon)));
}

/// Admin, internal and `/metrics`: internal listener only. `faults` adds the fault-injection
/// routes (tests only).
pub fn internal_only(cfg: &mut web::ServiceConfig, faults: bool) {
    let mut admin_scope = web::scope("/admin/v1");
    if faults {
        admin_scope = fault_routes(admin_scope);
    }
    cfg.service(resource("/metrics").route(web::get().to(health::metrics)))
        .service(resource("/console").route(web::get().to(console::redirect_to_console)))
        .service(resource("/console/").route(web::get().to(console::asset)))
        .service(resource("/console/{file}").route(web::get().to(console::asset)))
        .service(
            web::scope("/internal/v1")
                .service(resource("/callbacks/{id}/state").route(web::post().to(internal::report_state)))
                .service(resource("/queues/{tenant}/{virtual_queue}/stats").route(web::put().to(internal::queue_stats)))
                .service(resource("/call-in/match").route(web::post().to(call_in::match_inbound))),
        )
        .service(
            admin_scope
                .service(resource("/tenants").route(web::get().to(admin::tenants::list)))
                .service(
                    resource("/tenants/{tenant}")
                        .route(web::put().to(admin::tenants::put))
                        .route(web::get().to(admin::tenants::get))
                        .route(web::delete().to(admin::tenants::delete)),
                )
                .service(
                    resource("/tenants/{tenant}/api-keys")
                        .route(web::post().to(admin::api_keys::create))
                        .route(web::get().to(admin::api_keys::list)),
                )
                .service(resource("/tenants/{tenant}/api-keys/{id}").route(web::delete().to(admin::api_keys::delete)))
                .service(resource("/tenants/{tenant}/webhooks").route(web::get().to(admin::webhooks::list)))
                .service(
                    resource("/tenants/{tenant}/webhooks/{name}")
                        .route(web::put().to(admin::webhooks::put))
                        .route(web::get().to(admin::webhooks::get))
                        .route(web::delete().to(admin::webhooks::delete)),
                )
                .service(
                    resource("/tenants/{tenant}/webhooks/{name}/rotate-secret")
                        .route(web::post().to(admin::webhooks::rotate_secret)),
                )
                .service(
                    resource("/tenants/{tenant}/webhooks/{name}/deliveries")
                        .route(web::get().to(admin::webhooks::deliveries)),
                )
                .service(
                    resource("/tenants/{tenant}/webhooks/{name}/deliveries/{id}/redeliver")
                        .route(web::post().to(admin::webhooks::redeliver)),
                )
                .service(resource("/tenants/{tenant}/services").route(web::get().to(admin::services::list)))
                .service(resource("/tenants/{tenant}/calendars").route(web::get().to(admin::calendars::list)))
                .service(resource("/tenants/{tenant}/call-in-groups").route(web::get().to(admin::call_in_groups::list)))
                .service(
                    resource("/tenants/{tenant}/call-in-groups/{name}")
                        .route(web::put().to(admin::call_in_groups::put))
                        .route(web::get().to(admin::call_in_groups::get))
                        .route(web::delete().to(admin::call_in_groups::delete)),
                )
                .service(resource("/tenants/{tenant}/callbacks").route(web::get().to(admin::callbacks::list)))
                .service(resource("/tenants/{tenant}/callbacks/cancel").route(web::post().to(admin::callbacks::cancel)))
                .service(
                    resource("/tenants/{tenant}/callbacks/redrive").route(web::post().to(admin::callbacks::redrive)),
                )
                .service(resource("/tenants/{tenant}/callbacks/counts").route(web::get().to(admin::callbacks::counts)))
                // After `cancel`, `redrive` and `counts`: the router takes the first pattern that matches.
                .service(
                    resource("/tenants/{tenant}/callbacks/{id}")
                        .route(web::get().to(admin::callbacks::get))
                        .route(web::patch().to(admin::callbacks::patch)),
                )
                .service(
                    resource("/tenants/{tenant}/callbacks/{id}/reschedule")
                        .route(web::post().to(admin::callbacks::reschedule)),
                )
                .service(
                    resource("/tenants/{tenant}/call-in-requests").route(web::get().to(admin::call_in_requests::list)),
                )
                .service(
                    resource("/tenants/{tenant}/call-in-requests/cancel")
                        .route(web::post().to(admin::call_in_requests::cancel)),
                )
                .service(resource("/tenants/{tenant}/overview").route(web::get().to(admin::overview::get)))
                .service(resource("/tenants/{tenant}/erasure").route(web::post().to(admin::erasure::erase)))
                .service(resource("/tenants/{tenant}/reports/outcomes").route(web::get().to(admin::reports::outcomes)))
                .service(
                    resource("/tenants/{tenant}/services/{name}/slots").route(web::get().to(admin::services::slots)),
                )
                .service(
                    resource("/tenants/{tenant}/services/{name}/availability")
                        .route(web::get().to(admin::services::availability)),
                )
                .service(
                    resource("/tenants/{tenant}/services/{name}/dispatch")
                        .route(web::put().to(admin::callbacks::dispatch)),
                )
                .service(resource("/tenants/{tenant}/watermarks").route(web::get().to(admin::callbacks::watermarks)))
                .service(
                    resource("/tenants/{tenant}/calendars/{name}")
                        .route(web::put().to(admin::calendars::put))
                        .route(web::get().to(admin::calendars::get))
                        .route(web::delete().to(admin::calendars::delete)),
                )
                .service(
                    resource("/tenants/{tenant}/services/{name}")
                        .route(web::put().to(admin::services::put))
                        .route(web::get().to(admin::services::get))
                        .route(web::delete().to(admin::services::delete)),
                )
                .service(resource("/audit").route(web::get().to(admin::audit::list)))
                .service(resource("/openapi.json").route(web::get().to(admin::openapi::document)))
                .service(resource("/me").route(web::get().to(admin::operators::me)))
                .service(
                    resource("/operators")
                        .route(web::get().to(admin::operators::list))
                        .route(web::post().to(admin::operators::create)),
                )
                .service(resource("/operators/{name}").route(web::delete().to(admin::operators::delete)))
                .service(
                    resource("/log-level")
                        .route(web::get().to(admin::log_level::get))
                        .route(web::put().to(admin::log_level::put)),
                ),
        );
}

/// A resource whose unmatched methods answer 405 in the envelope, whose path segments and query
/// parameters are checked for control characters (`clean_input`) and whose handlers' panics
/// answer 500 (`middleware::catch_panic`).
pub fn resource(
    path: &str,
) -> actix_web::Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .wrap(from_fn(crate::http::extractors::admin_guard))
        .wrap(from_fn(clean_input::refuse_unclean_urls))
        .wrap(from_fn(middleware::catch_panic))
        .default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(Reason::MethodNotAllowed, format!("{} is not allowed on {}", req.method(), req.path())))
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(Reason::NotFound, "no such route"))
}

/// The fault-injection routes (`http::admin::faults`), under `/admin/v1` only when `faults.enabled`.
fn fault_routes(scope: actix_web::Scope) -> actix_web::Scope {
    use admin::faults::*;
    scope
        .service(resource("/faults/block-worker").route(web::post().to(block_worker)))
        .service(resource("/faults/panic").route(web::post().to(panic_in_handler)))
        .service(resource("/faults/panic-task").route(web::post().to(panic_in_task)))
        .service(resource("/faults/stall-log-writer").route(web::post().to(stall_log_writer)))
        .service(resource("/faults/fail-vq-proxy").route(web::post().to(fail_vq_proxy)))
        .service(resource("/faults/stall-booking-batch").route(web::post().to(stall_booking_batch)))
        .service(resource("/faults/booking-batch").route(web::post().to(booking_batch_fault)))
        .service(resource("/faults/stall-booking-writer").route(web::post().to(stall_booking_writer)))
        .service(resource("/faults/fail-bulk-midway").route(web::post().to(fail_bulk_midway)))
        .service(resource("/faults/poison-booking").route(web::post().to(poison_booking)))
}
