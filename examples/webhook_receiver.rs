//! A minimal webhook receiver for `benches/webhooks.sh`: answers every POST with
//! `{"acknowledged": true}` and counts them (`GET /count`). For lifecycle events it also records
//! the lag from the change (`data.time`) to arrival (`GET /lag`: count, p50, p99, max in ms).
//! Loopback only.
//!
//!   cargo run --release --example webhook_receiver -- 39090

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};

#[derive(Default)]
struct Seen {
    count: AtomicU64,
    lags_ms: Mutex<Vec<i64>>,
}

fn lag_report(seen: &Seen) -> String {
    let mut lags = seen.lags_ms.lock().unwrap().clone();
    lags.sort_unstable();
    let at =
        |q: f64| lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1))).copied().unwrap_or(0);
    format!("{} {} {} {}", lags.len(), at(0.5), at(0.99), lags.last().copied().unwrap_or(0))
}

fn record(seen: &Seen, body: &[u8]) {
    seen.count.fetch_add(1, Ordering::Relaxed);
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let Some(time) = event["data"]["time"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else { return };
    let lag = jiff::Timestamp::now().as_millisecond() - time.as_millisecond();
    seen.lags_ms.lock().unwrap().push(lag);
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(39090);
    let seen = web::Data::new(Arc::new(Seen::default()));
    HttpServer::new(move || {
        App::new()
            .app_data(seen.clone())
            .route(
                "/count",
                web::get().to(|s: web::Data<Arc<Seen>>| async move { s.count.load(Ordering::Relaxed).to_string() }),
            )
            .route("/lag", web::get().to(|s: web::Data<Arc<Seen>>| async move { lag_report(&s) }))
            // The body is read (as a receiver verifying signatures does): actix closes a connection
            // whose request body was left unread, and every request would pay a new connection.
            .default_service(web::to(|s: web::Data<Arc<Seen>>, body: web::Bytes| async move {
                record(&s, &body);
                HttpResponse::Ok().content_type("application/json").body(r#"{"acknowledged":true}"#)
            }))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
