//! The create body as GES clients send it (`CreateCallbackParms`) and its field checks: what
//! `callbacks/create` and `callbacks/validate` turn into a booking request.

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::booking::CreateRequest;
use crate::error::{ApiError, FieldProblem};
use crate::http::clean_input::clean_user_data;
use crate::time::parse_instant;

/// `CreateCallbackParms` as GES v3 names it. Unknown fields are ignored; `null` means absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallbackParms {
    /// Required.
    pub service_name: Option<String>,
    /// Required. Normalised to E.164.
    pub phone_number: Option<String>,
    /// ISO 8601 with a zone. Absent or not in the future: an immediate callback.
    pub desired_time: Option<String>,
    /// `ASAP` | `SCHEDULED` | `COMBINED_SCHEDULED_AND_ASAP` (reporting only). Any other value
    /// falls back to the default: `SCHEDULED` with `desiredTime`, else `ASAP`.
    pub cb_offer_type: Option<String>,
    pub language: Option<String>,
    #[serde(rename = "inboundVQ")]
    #[schema(rename = "inboundVQ")]
    pub inbound_vq: Option<String>,
    pub channel: Option<String>,
    pub cb_origination_ixn_id: Option<String>,
    #[serde(rename = "surveyRP")]
    #[schema(rename = "surveyRP")]
    pub survey_rp: Option<String>,
    pub route_point: Option<String>,
    pub offer_threshold: Option<i64>,
    /// `ON-HOURS` | `OFF-HOURS` (reporting only); any other value is not stored.
    pub offer_timing: Option<String>,
    pub priority: Option<i64>,
    /// Keys must be JavaScript identifiers (others are dropped); values string, number or bool.
    #[schema(value_type = Option<Object>)]
    pub user_data: Option<Map<String, Value>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub push_targets: Option<Vec<Value>>,
    pub always_check_capacity: Option<bool>,
    /// Accepted and ignored.
    pub captcha_token: Option<String>,
}

const OFFER_TYPES: [&str; 3] = ["ASAP", "SCHEDULED", "COMBINED_SCHEDULED_AND_ASAP"];

/// Field rules of `CreateCallbackParms` (api.md), every problem listed at once.
pub fn validate_create(p: CreateCallbackParms) -> Result<CreateRequest, ApiError> {
    let mut problems = Vec::new();
    let service_name = p.service_name.filter(|s| !s.trim().is_empty());
    if service_name.is_none() {
        problems.push(FieldProblem::new("serviceName", "is required"));
    }
    let phone = p.phone_number.filter(|s| !s.trim().is_empty());
    if phone.is_none() {
        problems.push(FieldProblem::new("phoneNumber", "is required"));
    }
    let desired_ms = match p.desired_time.as_deref() {
        Some(t) => match parse_instant("desiredTime", t) {
            Ok(ms) => Some(ms),
            Err(problem) => {
                problems.push(FieldProblem::new("desiredTime", problem));
                None
            }
        },
        None => None,
    };
    // Reporting only, and lenient as GES is: Genesys' generated client sends the field's
    // description text as its default, so any other value falls back to the default rule.
    let default_offer = if p.desired_time.is_some() { "SCHEDULED" } else { "ASAP" };
    let offer_type = match p.cb_offer_type {
        Some(t) if OFFER_TYPES.contains(&t.as_str()) => t,
        Some(_) => {
            tracing::debug!(default = default_offer, "unrecognised cbOfferType; using the default");
            default_offer.to_string()
        }
        None => default_offer.to_string(),
    };
    // Reporting only too: an unrecognised value is left out rather than refusing the booking.
    let offer_timing = p.offer_timing.filter(|t| {
        let known = t == "ON-HOURS" || t == "OFF-HOURS";
        if !known {
            tracing::debug!("unrecognised offerTiming; not stored");
        }
        known
    });
    let user_data = match p.user_data {
        Some(data) => clean_user_data(data, &mut problems),
        None => Map::new(),
    };
    if let Some(targets) = &p.push_targets {
        for (i, t) in targets.iter().enumerate() {
            let ok = t.get("channel").and_then(Value::as_str) == Some("FCM")
                && t.get("target").is_some_and(Value::is_string);
            if !ok {
                problems.push(FieldProblem::new(
                    format!("pushTargets[{i}]"),
                    "must be {\"channel\": \"FCM\", \"target\": \"...\"}",
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let mut details = Map::new();
    details.insert("cbOfferType".into(), Value::from(offer_type));
    details.insert("language".into(), Value::from(p.language.unwrap_or_else(|| "en-US".to_string())));
    let optional = [
        ("inboundVQ", p.inbound_vq.map(Value::from)),
        ("channel", p.channel.map(Value::from)),
        ("cbOriginationIxnId", p.cb_origination_ixn_id.map(Value::from)),
        ("surveyRP", p.survey_rp.map(Value::from)),
        ("routePoint", p.route_point.map(Value::from)),
        ("offerThreshold", p.offer_threshold.map(Value::from)),
        ("offerTiming", offer_timing.map(Value::from)),
        ("pushTargets", p.push_targets.map(Value::from)),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            details.insert(name.into(), v);
        }
    }
    details.insert("userData".into(), Value::Object(user_data));
    Ok(CreateRequest {
        service_name: service_name.unwrap_or_default(),
        phone_raw: phone.unwrap_or_default(),
        desired_ms,
        priority: p.priority,
        always_check_capacity: p.always_check_capacity.unwrap_or(false),
        details,
    })
}
