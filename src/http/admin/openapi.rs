//! `GET /admin/v1/openapi.json` (issue 26): OpenAPI 3.1 of the admin API, internal listener only
//! (the public document stays public-only). Its operations are the role table's routes
//! (`roles::RULES`, fault injection left out), so a new admin route is documented or a test
//! fails; each operation says which roles may call it (`x-roles`). The console calls nothing
//! this document does not list (its browser test checks every request against it).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use crate::domain::operator::{Need, Role};
use crate::http::extractors::AdminAuth;
use crate::http::roles::{PREFIX, RULES};

/// What one operation does, its query parameters and the fields of its JSON body.
struct Doc {
    summary: &'static str,
    query: &'static [&'static str],
    body: Option<Value>,
}

fn doc(summary: &'static str) -> Doc {
    Doc { summary, query: &[], body: None }
}

/// A body described by its documentation (service, calendar, ... configuration).
fn config_body(what: &str) -> Option<Value> {
    Some(json!({ "type": "object", "description": format!("the {what} configuration; see README and docs") }))
}

fn fields(required: &[&str], properties: Value) -> Option<Value> {
    Some(json!({ "type": "object", "required": required, "properties": properties }))
}

const LIST_FILTERS: &[&str] =
    &["serviceName", "phoneNumber", "phoneEndsWith", "state", "from", "to", "limit", "cursor"];

fn describe(method: &str, path: &str) -> Option<Doc> {
    let ids = json!({ "type": "array", "items": { "type": "string" }, "maxItems": 1000 });
    Some(match (method, path) {
        ("GET", "/tenants") => doc("List tenants (a tenant-limited operator sees its own)"),
        ("PUT", "/tenants/{tenant}") => Doc { body: config_body("tenant"), ..doc("Create or replace a tenant") },
        ("GET", "/tenants/{tenant}") => doc("Read a tenant"),
        ("DELETE", "/tenants/{tenant}") => Doc { query: &["cancelUnfinished"], ..doc("Delete a tenant") },
        ("POST", "/tenants/{tenant}/api-keys") => Doc { body: config_body("API key"), ..doc("Create an API key") },
        ("GET", "/tenants/{tenant}/api-keys") => doc("List API keys (hashes are never shown)"),
        ("DELETE", "/tenants/{tenant}/api-keys/{id}") => doc("Revoke an API key"),
        ("GET", "/tenants/{tenant}/webhooks") => doc("List webhook endpoints"),
        ("PUT", "/tenants/{tenant}/webhooks/{name}") => {
            Doc { body: config_body("webhook endpoint"), ..doc("Create or replace a webhook endpoint") }
        }
        ("GET", "/tenants/{tenant}/webhooks/{name}") => doc("Read a webhook endpoint"),
        ("DELETE", "/tenants/{tenant}/webhooks/{name}") => doc("Delete a webhook endpoint"),
        ("POST", "/tenants/{tenant}/webhooks/{name}/rotate-secret") => doc("Rotate an endpoint's signing secret"),
        ("GET", "/tenants/{tenant}/webhooks/{name}/deliveries") => {
            Doc { query: &["limit", "cursor"], ..doc("An endpoint's recent deliveries") }
        }
        ("POST", "/tenants/{tenant}/webhooks/{name}/deliveries/{id}/redeliver") => doc("Deliver an event again"),
        ("GET", "/tenants/{tenant}/services") => doc("List services"),
        ("PUT", "/tenants/{tenant}/services/{name}") => Doc {
            body: config_body("service"),
            ..doc("Create or replace a service (every field checked; errors name the field)")
        },
        ("GET", "/tenants/{tenant}/services/{name}") => doc("Read a service"),
        ("DELETE", "/tenants/{tenant}/services/{name}") => {
            Doc { query: &["cancelUnfinished"], ..doc("Delete a service") }
        }
        ("PUT", "/tenants/{tenant}/services/{name}/dispatch") => Doc {
            body: fields(&["paused"], json!({ "paused": { "type": "boolean" } })),
            ..doc("Pause or resume a service's hand-offs")
        },
        ("GET", "/tenants/{tenant}/services/{name}/slots") => Doc {
            query: &["from", "to"],
            ..doc("Every bookable slot in [from, to) (default the next 7 days, at most 31) with places and use")
        },
        ("GET", "/tenants/{tenant}/services/{name}/availability") => Doc {
            query: &["start", "startMS", "end", "endMS", "numberOfDays", "timezone", "maxTimeSlots", "reportBusy"],
            ..doc("Open slots, as the public availability answers them")
        },
        ("GET", "/tenants/{tenant}/calendars") => doc("List calendars"),
        ("PUT", "/tenants/{tenant}/calendars/{name}") => {
            Doc { body: config_body("calendar"), ..doc("Create or replace a calendar") }
        }
        ("GET", "/tenants/{tenant}/calendars/{name}") => doc("Read a calendar"),
        ("DELETE", "/tenants/{tenant}/calendars/{name}") => doc("Delete a calendar"),
        ("GET", "/tenants/{tenant}/call-in-groups") => doc("List call-in groups"),
        ("PUT", "/tenants/{tenant}/call-in-groups/{name}") => {
            Doc { body: config_body("call-in group"), ..doc("Create or replace a call-in group") }
        }
        ("GET", "/tenants/{tenant}/call-in-groups/{name}") => doc("Read a call-in group"),
        ("DELETE", "/tenants/{tenant}/call-in-groups/{name}") => doc("Delete a call-in group"),
        ("GET", "/tenants/{tenant}/call-in-requests") => {
            Doc { query: &["group", "state", "limit", "cursor"], ..doc("Call-in requests, newest first") }
        }
        ("POST", "/tenants/{tenant}/call-in-requests/cancel") => Doc {
            body: fields(&["ids"], json!({ "ids": ids })),
            ..doc("Cancel pending call-in requests, all or nothing")
        },
        ("GET", "/tenants/{tenant}/callbacks") => Doc {
            query: LIST_FILTERS,
            ..doc("Callbacks under the filters, cursor-paged; with Accept: text/csv the whole filtered set as CSV")
        },
        ("GET", "/tenants/{tenant}/callbacks/counts") => {
            Doc { query: LIST_FILTERS, ..doc("How many callbacks the filters match, per state") }
        }
        ("GET", "/tenants/{tenant}/callbacks/{id}") => doc("One callback with its history"),
        ("PATCH", "/tenants/{tenant}/callbacks/{id}") => Doc {
            body: fields(
                &[],
                json!({ "desiredTime": { "type": "string", "format": "date-time" },
                "userData": { "type": "object" } }),
            ),
            ..doc("Edit a SCHEDULED callback's userData and/or desiredTime")
        },
        ("POST", "/tenants/{tenant}/callbacks/{id}/reschedule") => Doc {
            body: fields(&["desiredTime"], json!({ "desiredTime": { "type": "string", "format": "date-time" } })),
            ..doc("Move a SCHEDULED callback")
        },
        ("POST", "/tenants/{tenant}/callbacks/cancel") => Doc {
            body: fields(&["ids"], json!({ "ids": ids, "reason": { "type": "string" } })),
            ..doc("Cancel callbacks, all or nothing")
        },
        ("POST", "/tenants/{tenant}/callbacks/redrive") => Doc {
            body: fields(
                &[],
                json!({ "ids": ids, "reason": { "enum": ["SUBMIT_FAILED", "FAIL_TIMEOUT_TTL"] },
                "since": { "type": "string", "format": "date-time" } }),
            ),
            ..doc("Hand failed callbacks over again, all or nothing")
        },
        ("GET", "/tenants/{tenant}/watermarks") => doc("Active callbacks per service"),
        ("GET", "/tenants/{tenant}/overview") => {
            doc("Per service: active, due not handed over, oldest due, failed in the last hour, paused; and health")
        }
        ("POST", "/tenants/{tenant}/erasure") => Doc {
            body: fields(&["phoneNumber"], json!({ "phoneNumber": { "type": "string" } })),
            ..doc("Erase a phone number from the tenant: callbacks (unfinished ones completed ERASED), call-in requests, idempotency answers, audit bodies, outbox rows, delivery records, throttle counters, stream entries; answers the counts")
        },
        ("GET", "/tenants/{tenant}/reports/outcomes") => Doc {
            query: &["service", "from", "to", "groupBy"],
            ..doc("Per day or hour (UTC): booked, refused by reason, handed over, acknowledged, reached, completed by reason, retries, p50/p90 latencies; CSV with Accept: text/csv")
        },
        ("GET", "/audit") => Doc { query: &["limit", "cursor"], ..doc("Recent admin writes") },
        ("GET", "/log-level") => doc("Read the log level"),
        ("PUT", "/log-level") => {
            Doc { body: fields(&["level"], json!({ "level": { "type": "string" } })), ..doc("Change the log level") }
        }
        ("GET", "/operators") => doc("List operators"),
        ("POST", "/operators") => Doc {
            body: fields(
                &["name", "role"],
                json!({ "name": { "type": "string" },
                "role": { "enum": ["admin", "supervisor", "monitor", "developer"] },
                "tenants": { "type": "array", "items": { "type": "string" } } }),
            ),
            ..doc("Create an operator; the answer holds its token, shown once")
        },
        ("DELETE", "/operators/{name}") => doc("Revoke an operator"),
        ("GET", "/openapi.json") => doc("This document"),
        ("GET", "/me") => doc("Who the token belongs to: name, role, tenants, and what the role may do"),
        _ => return None,
    })
}

fn roles_for(need: Need) -> Vec<&'static str> {
    Role::ALL.iter().filter(|r| r.may(need)).map(|r| r.as_str()).collect()
}

fn operation(method: &str, path: &str, need: Need, d: Doc) -> Value {
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(
        d.query
            .iter()
            .map(|name| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })),
    );
    let mut op = json!({
        "summary": d.summary,
        "operationId": format!("{} {path}", method.to_lowercase()),
        "x-roles": roles_for(need),
        "parameters": parameters,
        "security": [{ "bearer": [] }],
        "responses": {
            "200": { "description": "the envelope with data", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Envelope" } } } },
            "400": { "description": "VALIDATION_FAILED (details name the fields) or another 400 reason" },
            "401": { "description": "no operator token, or an unknown one" },
            "403": { "description": "FORBIDDEN_SCOPE: the operator's role or tenants do not allow this" },
            "404": { "description": "NOT_FOUND" },
        },
    });
    if let Some(body) = d.body {
        op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body } } });
    }
    op
}

/// The document, built once from the role table.
pub fn document_json() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut paths = Map::new();
        for (method, path, need) in RULES.iter().filter(|(_, p, _)| !p.starts_with("/faults")) {
            let Some(d) = describe(method, path) else { continue };
            let item = paths.entry(format!("{PREFIX}{path}")).or_insert_with(|| json!({}));
            item[method.to_lowercase()] = operation(method, path, *need, d);
        }
        json!({
            "openapi": "3.1.0",
            "info": { "title": "Ringback admin API", "version": env!("CARGO_PKG_VERSION"),
                "description": "Internal listener only. Bearer operator tokens; every operation lists the roles that may call it (x-roles). Every answer is an envelope { status, data? }." },
            "paths": paths,
            "components": {
                "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
                "schemas": { "Envelope": { "type": "object", "required": ["status"],
                    "properties": { "status": { "type": "object" }, "data": {} } } },
            },
        })
    })
}

pub async fn document(_admin: AdminAuth) -> HttpResponse {
    HttpResponse::Ok().json(document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every admin route but fault injection is documented: a route added without a description
    /// fails here.
    #[test]
    fn every_admin_route_is_documented() {
        for (method, path, _) in RULES.iter().filter(|(_, p, _)| !p.starts_with("/faults")) {
            assert!(describe(method, path).is_some(), "{method} {path} is not in the admin OpenAPI document");
            let item = &document_json()["paths"][format!("{PREFIX}{path}")][method.to_lowercase()];
            assert!(item["x-roles"].as_array().is_some_and(|r| r.contains(&json!("admin"))), "{method} {path}");
        }
    }
}
