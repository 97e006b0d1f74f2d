//! Every input is clean (api.md § Every input is bounded and clean): no NUL or other control
//! character in any string a request carries — path segments, query parameters, body fields,
//! `userData` keys and values, `Idempotency-Key` — except tab, CR and LF in `userData` values
//! (free text such as a customer's note). Refused with 400 `VALIDATION_FAILED` naming the field,
//! before anything reaches the database (PostgreSQL's text columns refuse NUL with an error, so a
//! NUL in an id used to answer 500). A query parameter repeated more than 20 times is refused too.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use serde_json::{Map, Value};
use std::fmt::Write as _;

use crate::error::{ApiError, FieldProblem};

/// The most times one query parameter may be given (api.md).
pub const MAX_REPEATS: usize = 20;

const CONTROL: &str = "must not contain control characters";

/// A control character (Unicode `Cc`: U+0000–U+001F, U+007F–U+009F), other than the whitespace
/// `allow_whitespace` lets through (tab, CR, LF).
fn has_control(s: &str, allow_whitespace: bool) -> bool {
    s.chars().any(|c| c.is_control() && !(allow_whitespace && matches!(c, '\t' | '\r' | '\n')))
}

/// Refuse a header-borne string (`Idempotency-Key`) holding a control character.
pub fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    match has_control(value, false) {
        true => Err(ApiError::field(field, CONTROL)),
        false => Ok(()),
    }
}

/// Every string of a JSON body, keys included. Tab, CR and LF pass in `userData` values only.
pub fn check_json(body: &Value) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    walk(body, &mut String::new(), false, &mut problems);
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ApiError::validation(problems)),
    }
}

fn walk(value: &Value, path: &mut String, free_text: bool, problems: &mut Vec<FieldProblem>) {
    match value {
        Value::String(s) if has_control(s, free_text) => {
            problems.push(FieldProblem::new(field_name(path), CONTROL));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(item, path, false, problems);
                path.truncate(len);
            }
        }
        Value::Object(fields) => {
            // Values directly under the top-level `userData` are free text.
            let free_text = path == "userData";
            for (key, item) in fields {
                if has_control(key, false) {
                    problems.push(FieldProblem::new(field_name(path), format!("a key {CONTROL}")));
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, free_text, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() {
        "body".to_string()
    } else {
        path.to_string()
    }
}

/// Path segments and query parameters, checked once the route is matched (so a segment is named
/// by its parameter). Wrapped around every resource by `http::routes::resource`.
pub async fn refuse_unclean_urls(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Err(e) = check_url(&req) {
        return Ok(req.error_response(e));
    }
    next.call(req).await.map(|r| r.map_into_boxed_body())
}

fn check_url(req: &ServiceRequest) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (name, segment) in req.match_info().iter() {
        // The router has decoded all but `%`, `/` and `+`; this decodes what the handler will see.
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if has_control(&decoded, false) {
            problems.push(FieldProblem::new(name, CONTROL));
        }
    }
    let mut repeats: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if has_control(&key, false) {
            problems.push(FieldProblem::new("query", format!("a parameter name {CONTROL}")));
            continue;
        }
        if has_control(&value, false) {
            problems.push(FieldProblem::new(key.as_ref(), CONTROL));
        }
        let seen = repeats.entry(key.to_string()).or_default();
        *seen += 1;
        if *seen == MAX_REPEATS + 1 {
            problems.push(FieldProblem::new(key.as_ref(), format!("may be given at most {MAX_REPEATS} times")));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ApiError::validation(problems)),
    }
}
const USER_DATA_MAX_KEYS: usize = 64;
const USER_DATA_MAX_BYTES: usize = 16 * 1024;

fn is_js_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// `userData` as callbacks and call-in requests keep it: keys that are JavaScript identifiers,
/// values that are strings, numbers or booleans (nulls dropped), at most 64 keys and 16 KiB.
pub fn clean_user_data(data: Map<String, Value>, problems: &mut Vec<FieldProblem>) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in data {
        if !is_js_identifier(&key) || value.is_null() {
            continue;
        }
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                kept.insert(key, value);
            }
            _ => problems.push(FieldProblem::new(format!("userData.{key}"), "must be a string, number or boolean")),
        }
    }
    if kept.len() > USER_DATA_MAX_KEYS {
        problems.push(FieldProblem::new("userData", format!("must have at most {USER_DATA_MAX_KEYS} keys")));
    }
    if Value::Object(kept.clone()).to_string().len() > USER_DATA_MAX_BYTES {
        problems.push(FieldProblem::new("userData", "must be at most 16 KiB as JSON"));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_data_keeps_identifiers_and_scalars_only() {
        let mut problems = Vec::new();
        let data = json!({ "ok_1": "x", "n": 2, "b": true, "bad key": "dropped", "1st": "dropped", "gone": null });
        let kept = clean_user_data(data.as_object().unwrap().clone(), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(kept.len(), 3);
        let data = json!({ "nested": { "a": 1 } });
        clean_user_data(data.as_object().unwrap().clone(), &mut problems);
        assert_eq!(problems[0].field, "userData.nested");
    }
}
