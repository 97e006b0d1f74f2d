//! `GET tenants/{tenant}/reports/outcomes` (issue 27): per day or hour (UTC), what happened to a
//! service's callbacks — booked (immediate, scheduled), refused by reason, handed over,
//! acknowledged, reached a person (`PROCESSING`), completed by reason, follow-ups booked by the
//! retry policy — and the p50/p90 of booking → hand-off and hand-off → `PROCESSING`, from the
//! hourly roll-up (`store::outcomes`). JSON, or CSV with `Accept: text/csv`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::existing_tenant;
use crate::error::{ApiError, FieldProblem};
use crate::http::envelope;
use crate::http::extractors::AdminAuth;
use crate::ops::AppState;
use crate::time::{format_utc, parse_instant, Millis, Moment, DAY, HOUR};

/// The histogram buckets' upper bounds (seconds), as the roll-up's trigger labels them.
const LATENCY_BOUNDS: [&str; 11] = ["1", "5", "15", "60", "300", "900", "3600", "14400", "86400", "604800", "+Inf"];
/// Longest range one report reads.
const MAX_RANGE_DAYS: i64 = 400;

struct Query {
    service: Option<String>,
    from: Moment,
    to: Moment,
    step: Millis,
}

fn parse_query(query: &str, now: Moment) -> Result<Query, ApiError> {
    let (mut service, mut from, mut to, mut step) = (None, None, None, DAY);
    let mut problems = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "service" if !v.is_empty() => service = Some(v.into_owned()),
            "from" | "to" => match parse_instant(&k, &v) {
                Ok(ms) if k == "from" => from = Some(ms),
                Ok(ms) => to = Some(ms),
                Err(p) => problems.push(FieldProblem::new(k.to_string(), p)),
            },
            "groupBy" => match v.as_ref() {
                "day" => step = DAY,
                "hour" => step = HOUR,
                _ => problems.push(FieldProblem::new("groupBy", "must be day or hour")),
            },
            _ => {}
        }
    }
    // Whole buckets: the range is widened to the steps that hold it.
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DAY * 7);
    let (from, to) = (from.truncate(step), (to + step - Millis::from_ms(1)).truncate(step));
    if problems.is_empty() && to <= from {
        problems.push(FieldProblem::new("to", "must be after from"));
    }
    if problems.is_empty() && to - from > DAY * MAX_RANGE_DAYS {
        problems.push(FieldProblem::new("to", format!("the range may span at most {MAX_RANGE_DAYS} days")));
    }
    if problems.is_empty() {
        Ok(Query { service, from, to, step })
    } else {
        Err(ApiError::validation(problems))
    }
}

/// One bucket's figures.
#[derive(Default)]
struct Bucket {
    counts: BTreeMap<(String, String), i64>,
}

impl Bucket {
    fn get(&self, metric: &str, label: &str) -> i64 {
        self.counts.get(&(metric.to_string(), label.to_string())).copied().unwrap_or(0)
    }

    fn by_label(&self, metric: &str) -> Map<String, Value> {
        self.counts.iter().filter(|((m, _), _)| m == metric).map(|((_, l), n)| (l.clone(), json!(n))).collect()
    }

    fn total(&self, metric: &str) -> i64 {
        self.counts.iter().filter(|((m, _), _)| m == metric).map(|(_, n)| n).sum()
    }

    /// The upper bound (seconds) of the bucket holding the `q` quantile; `None` without data or
    /// beyond the last finite bound.
    fn quantile(&self, metric: &str, q: f64) -> Option<i64> {
        let total = self.total(metric);
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil() as i64;
        let mut seen = 0;
        for bound in LATENCY_BOUNDS {
            seen += self.get(metric, bound);
            if seen >= rank {
                return bound.parse().ok();
            }
        }
        None
    }

    fn json(&self, start: Moment) -> Value {
        json!({
            "start": format_utc(start),
            "booked": self.total("booked"),
            "immediate": self.get("booked", "immediate"),
            "scheduled": self.get("booked", "scheduled"),
            "refused": self.total("refused"),
            "refusedByReason": self.by_label("refused"),
            "handedOver": self.get("handed_over", ""),
            "acknowledged": self.get("acknowledged", ""),
            "reached": self.get("reached", ""),
            "completed": self.total("completed"),
            "completedByReason": self.by_label("completed"),
            "retries": self.get("retry", ""),
            "bookingToHandoffSeconds": { "p50": self.quantile("to_handoff", 0.5), "p90": self.quantile("to_handoff", 0.9) },
            "handoffToProcessingSeconds": { "p50": self.quantile("to_processing", 0.5), "p90": self.quantile("to_processing", 0.9) },
        })
    }
}

pub async fn outcomes(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = existing_tenant(&state, &path).await?;
    let q = parse_query(req.query_string(), crate::time::now())?;
    let rows = state.store.list_outcome_rows(&tenant.id, q.service.as_deref(), q.from, q.to).await?;
    let steps = (q.to - q.from).as_ms() / q.step.as_ms();
    let mut buckets: BTreeMap<Moment, Bucket> = (0..steps).map(|i| (q.from + q.step * i, Bucket::default())).collect();
    for (hour, metric, label, n) in rows {
        let start = hour.truncate(q.step);
        *buckets.entry(start).or_default().counts.entry((metric, label)).or_default() += n;
    }
    let items: Vec<Value> = buckets.iter().map(|(start, b)| b.json(*start)).collect();
    if super::csv_export::wants_csv(&req) {
        return Ok(csv(&items));
    }
    Ok(envelope::ok(json!({ "service": q.service, "from": format_utc(q.from), "to": format_utc(q.to),
        "groupBy": if q.step == DAY { "day" } else { "hour" }, "buckets": items })))
}

/// The buckets as CSV: the totals, then one column per reason seen (`refused_<reason>`,
/// `completed_<reason>`), then the latencies.
fn csv(items: &[Value]) -> HttpResponse {
    const TOTALS: [&str; 10] = [
        "start",
        "booked",
        "immediate",
        "scheduled",
        "refused",
        "handedOver",
        "acknowledged",
        "reached",
        "completed",
        "retries",
    ];
    let reasons = |field: &str| -> Vec<String> {
        let mut all: Vec<String> =
            items.iter().flat_map(|i| i[field].as_object().into_iter().flat_map(|m| m.keys().cloned())).collect();
        all.sort();
        all.dedup();
        all
    };
    let (refused, completed) = (reasons("refusedByReason"), reasons("completedByReason"));
    let mut header: Vec<String> = TOTALS.iter().map(|s| s.to_string()).collect();
    header.extend(refused.iter().map(|r| format!("refused_{r}")));
    header.extend(completed.iter().map(|r| format!("completed_{r}")));
    header.extend(
        ["bookingToHandoffP50", "bookingToHandoffP90", "handoffToProcessingP50", "handoffToProcessingP90"]
            .map(String::from),
    );
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = header.iter().map(|h| super::csv_export::cell(h)).collect::<Vec<_>>().join(",") + "\r\n";
    for item in items {
        let mut cells: Vec<String> = TOTALS.iter().map(|t| text(&item[*t])).collect();
        cells.extend(refused.iter().map(|r| item["refusedByReason"][r].as_i64().unwrap_or(0).to_string()));
        cells.extend(completed.iter().map(|r| item["completedByReason"][r].as_i64().unwrap_or(0).to_string()));
        for (field, q) in [
            ("bookingToHandoffSeconds", "p50"),
            ("bookingToHandoffSeconds", "p90"),
            ("handoffToProcessingSeconds", "p50"),
            ("handoffToProcessingSeconds", "p90"),
        ] {
            cells.push(text(&item[field][q]));
        }
        out.push_str(&cells.iter().map(|c| super::csv_export::cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_DISPOSITION, "attachment; filename=\"outcomes.csv\""))
        .body(out)
}
