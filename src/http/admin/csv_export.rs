//! `GET …/callbacks` with `Accept: text/csv` (issue 26): the list's filtered set as CSV, every page,
//! streamed page by page (500 rows a query), so an export of any size holds one page in memory.
//! A cell a spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a
//! carriage return, as OWASP lists them) is written as text: prefixed with `'` and quoted.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::stream::{self, StreamExt};

use crate::http::callback_views::page_of;
use crate::ops::AppState;
use crate::store::{CallbackFilter, CallbackRecord, Tenant};
use crate::time::format_utc;

const PAGE: i64 = 500;
const HEADER: &str =
    "id,serviceName,state,reason,phoneNumber,desiredTime,createdTime,updatedTime,attempt,failedAttempts,userData\r\n";

/// The caller asked for CSV (`Accept: text/csv`).
pub fn wants_csv(req: &HttpRequest) -> bool {
    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"))
}

/// Every callback `filter` matches (from its cursor on, if it has one), as a CSV download.
pub fn callbacks(state: Arc<AppState>, tenant: Tenant, filter: CallbackFilter) -> HttpResponse {
    let first = CallbackFilter { limit: PAGE, ..filter };
    let pages = stream::unfold(Some(first), move |next| {
        let (state, tenant) = (state.clone(), tenant.clone());
        async move {
            let filter = next?;
            match page_of(&state, &tenant, filter.clone()).await {
                Ok((records, more)) => {
                    let after = more.and(records.last().map(|r| (r.desired_ms, r.id.clone())));
                    let next = after.map(|after| CallbackFilter { after: Some(after), ..filter });
                    let text: String = records.iter().map(row).collect();
                    Some((Ok::<_, actix_web::Error>(Bytes::from(text)), next))
                }
                Err(e) => {
                    // The 200 is already sent: end the body early (the client sees a broken
                    // download, never a short file that looks whole).
                    tracing::warn!(error = %e.message, "CSV export stopped by a store error");
                    Some((Err(actix_web::error::ErrorInternalServerError(e.message)), None))
                }
            }
        }
    });
    let body = stream::once(async { Ok(Bytes::from_static(HEADER.as_bytes())) }).chain(pages);
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "attachment; filename=\"callbacks.csv\""))
        .streaming(body)
}

fn row(r: &CallbackRecord) -> String {
    let user_data = r.details.get("userData").map(|v| v.to_string()).unwrap_or_else(|| "{}".to_string());
    let cells = [
        r.id.clone(),
        r.service_name.clone(),
        r.state.as_str().to_string(),
        r.reason.clone().filter(|_| r.state == crate::domain::callback::State::Completed).unwrap_or_default(),
        r.phone.clone(),
        format_utc(r.desired_ms),
        format_utc(r.created_ms),
        format_utc(r.updated_ms),
        r.attempt.to_string(),
        r.failed_attempts.to_string(),
        user_data,
    ];
    let mut line = cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// One CSV cell (RFC 4180 quoting), made inert for spreadsheets.
pub fn cell(text: &str) -> String {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let text = if formula { format!("'{text}") } else { text.to_string() };
    if formula || text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_become_text_and_quotes_are_doubled() {
        assert_eq!(cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(cell("+442071838750"), "\"'+442071838750\"");
        assert_eq!(cell("@cmd"), "\"'@cmd\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("plain"), "plain");
    }
}
