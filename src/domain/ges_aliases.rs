//! GES option names accepted as aliases in a service's admin body (`_vq`, `_ttl`, …): rewritten
//! into our camelCase fields before validation, string scalars coerced where GES sends strings.

use serde_json::{Map, Value};

use crate::error::FieldProblem;

/// GES option name → our field (a JSON pointer into the camelCase body).
/// Later entries win: `_vq` over `_urs_virtual_queue` (issue 27) when a body sends both.
const GES_ALIASES: &[(&str, &str)] = &[
    ("_urs_virtual_queue", "/virtualQueue"),
    ("_vq", "/virtualQueue"),
    ("_business_hours_service", "/calendar"),
    ("_immediate_enabled", "/immediateEnabled"),
    ("_scheduled_enabled", "/scheduledEnabled"),
    ("_request_time_bucket", "/slotMinutes"),
    ("_max_request_by_time_bucket", "/slotCapacity"),
    ("_enable_reject_out_of_office_hours", "/rejectOutOfOfficeHours"),
    ("_reject_future_desired_time", "/maxFuture"),
    ("_min_time_before_callback", "/minLeadSeconds"),
    ("_throttle_request_parameters_limit", "/perNumberLimit/limit"),
    ("_throttle_callbacks_per_service_1", "/serviceRateLimits/0/limit"),
    ("_throttle_ttl_1", "/serviceRateLimits/0/windowSeconds"),
    ("_throttle_callbacks_per_service_2", "/serviceRateLimits/1/limit"),
    ("_throttle_ttl_2", "/serviceRateLimits/1/windowSeconds"),
    ("_enable_in_queue_checking", "/inQueueChecking"),
    ("_max_queued_callbacks_per_service", "/maxQueued"),
    ("_default_country", "/defaultCountry"),
    ("_disallow_impossible_phone_numbers", "/disallowImpossibleNumbers"),
    ("_disallow_premium_phone_numbers", "/disallowPremiumNumbers"),
    ("_max_ors_submit_attempts", "/maxDispatchAttempts"),
    ("_request_execution_time_buffer", "/dispatchBufferSeconds"),
    ("_queue_ping_ors_period", "/ackTimeoutSeconds"),
    ("_urs_queued_ttl", "/queuedTtlSeconds"),
    ("_max_dial_attempts", "/maxDialAttempts"),
    ("_dial_retry_timeout", "/dialRetrySeconds"),
    ("_ttl", "/ttlSeconds"),
];

/// Rewrite GES option names into our camelCase fields. GES option values are often strings
/// (`"300"`, `"true"`), so scalar strings that look like numbers or booleans are converted.
/// `defaults` is the default configuration as JSON: a nested alias is merged onto it.
pub(super) fn apply_ges_aliases(body: Value, defaults: &Value) -> Result<Value, Vec<FieldProblem>> {
    let Value::Object(mut map) = body else {
        return Err(vec![FieldProblem::new("body", "must be a JSON object")]);
    };
    let mut out = Value::Object(Map::new());
    for (alias, pointer) in GES_ALIASES {
        if let Some(value) = map.remove(*alias) {
            set_pointer(&mut out, pointer, coerce_ges_scalar(pointer, value));
        }
    }
    // Aliases only fill gaps: a camelCase field given in the same body wins, and nested objects
    // (perNumberLimit, serviceRateLimits) keep the keys the aliases did not set.
    if let Value::Object(aliased) = out {
        for (key, value) in aliased {
            let merged = match (map.remove(&key), value) {
                (Some(explicit), _) => explicit,
                (None, Value::Object(partial)) => merge_onto(defaults.get(&key).cloned(), Value::Object(partial)),
                (None, Value::Array(partial)) => merge_onto(defaults.get(&key).cloned(), Value::Array(partial)),
                (None, scalar) => scalar,
            };
            map.insert(key, merged);
        }
    }
    Ok(Value::Object(map))
}

fn merge_onto(base: Option<Value>, patch: Value) -> Value {
    match (base, patch) {
        (Some(Value::Object(mut b)), Value::Object(p)) => {
            for (k, v) in p {
                let merged = merge_onto(b.remove(&k), v);
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (Some(Value::Array(mut b)), Value::Array(p)) => {
            for (i, v) in p.into_iter().enumerate() {
                if v.is_null() {
                    continue;
                }
                if i < b.len() {
                    let old = std::mem::take(&mut b[i]);
                    b[i] = merge_onto(Some(old), v);
                } else {
                    b.push(v);
                }
            }
            Value::Array(b)
        }
        (_, patch) => patch,
    }
}

fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if let Ok(idx) = part.parse::<usize>() {
            if !cur.is_array() {
                *cur = Value::Array(Vec::new());
            }
            let arr = cur.as_array_mut().expect("array");
            while arr.len() <= idx {
                arr.push(Value::Null);
            }
            if last {
                arr[idx] = value;
                return;
            }
            if !arr[idx].is_object() {
                arr[idx] = Value::Object(Map::new());
            }
            cur = &mut arr[idx];
        } else {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let obj = cur.as_object_mut().expect("object");
            if last {
                obj.insert(part.to_string(), value);
                return;
            }
            let next_is_index = parts[i + 1].parse::<usize>().is_ok();
            cur = obj.entry(part.to_string()).or_insert_with(|| {
                if next_is_index {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                }
            });
        }
    }
}

fn coerce_ges_scalar(pointer: &str, value: Value) -> Value {
    let Value::String(s) = &value else { return value };
    // String-typed targets keep their text.
    if ["/virtualQueue", "/calendar", "/maxFuture", "/defaultCountry", "/inQueueChecking"].contains(&pointer) {
        return value;
    }
    if let Ok(n) = s.trim().parse::<i64>() {
        return Value::from(n);
    }
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => value,
    }
}
