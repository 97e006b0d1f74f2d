//! A minimal webhook receiver for `benches/webhooks.sh`: answers every POST with
//! `{"acknowledged": true}` and counts them (`GET /count`). Loopback only.
//!
//!   cargo run --release --example webhook_receiver -- 39090

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(39090);
    let count = web::Data::new(Arc::new(AtomicU64::new(0)));
    HttpServer::new(move || {
        App::new()
            .app_data(count.clone())
            .route(
                "/count",
                web::get().to(|c: web::Data<Arc<AtomicU64>>| async move { c.load(Ordering::Relaxed).to_string() }),
            )
            // The body is read (as a receiver verifying signatures does): actix closes a connection
            // whose request body was left unread, and every request would pay a new connection.
            .default_service(web::to(|c: web::Data<Arc<AtomicU64>>, _body: web::Bytes| async move {
                c.fetch_add(1, Ordering::Relaxed);
                HttpResponse::Ok().content_type("application/json").body(r#"{"acknowledged":true}"#)
            }))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
