//! The booking writer fails fast and exactly once (issue 23): contention is retried then a 503,
//! a lost COMMIT answer is read back, a booking past its deadline is withdrawn unwritten, a full
//! queue refuses at once, a panicking batch is answered and the writer goes on.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{metric_value, phone, Backend, Response, TestApp};
use crate::on_both_backends;

on_both_backends!(backend:
    contention_retries_the_batch_once_then_answers_503_never_500,
    a_lost_commit_answer_is_read_back_and_a_retry_never_books_twice,
    a_booking_past_its_deadline_is_withdrawn_unwritten_and_a_full_queue_refuses_at_once,
    a_panic_in_a_batch_is_answered_counted_and_bookings_go_on,
);

async fn app(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, String) {
    let mut env = vec![("RINGBACK__FAULTS__ENABLED", "true"), ("RINGBACK__DATABASE__STATEMENT_TIMEOUT_MS", "1000")];
    env.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &env).await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    (app, key)
}

async fn arm(app: &TestApp, fault: &str, times: u32) {
    app.admin(Method::POST, "/faults/booking-batch", Some(json!({ "fault": fault, "times": times })))
        .await
        .expect(200, None);
}

async fn book(app: &TestApp, key: &str, n: u32, idempotency_key: Option<&str>) -> Response {
    let mut headers = vec![("x-api-key", key)];
    headers.extend(idempotency_key.map(|k| ("idempotency-key", k)));
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(n) });
    app.call(Method::POST, "/engagement/v3/callbacks/create", &headers, Some(body)).await
}

async fn stored(app: &TestApp, key: &str) -> Vec<Value> {
    let r = app.call(Method::GET, "/engagement/v3/callbacks?limit=500", &[("x-api-key", key)], None).await;
    r.expect(200, None);
    r.body["data"]["items"].as_array().expect("items").clone()
}

fn unavailable_with_retry_after(r: &Response) {
    r.expect(503, Some("UNAVAILABLE"));
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
}

async fn contention_retries_the_batch_once_then_answers_503_never_500(backend: Backend) {
    let (app, key) = app(backend, &[]).await;
    arm(&app, "lock_timeout", 1).await;
    book(&app, &key, 1, None).await.expect(200, None);
    arm(&app, "lock_timeout", 2).await;
    unavailable_with_retry_after(&book(&app, &key, 2, None).await);
    assert_eq!(stored(&app, &key).await.len(), 1, "the refused batch wrote nothing");
    book(&app, &key, 3, None).await.expect(200, None);
}

async fn a_lost_commit_answer_is_read_back_and_a_retry_never_books_twice(backend: Backend) {
    let (app, key) = app(backend, &[]).await;
    // Committed, answer lost: the row exists, so 200; a retry replays it.
    arm(&app, "commit_answer_lost", 1).await;
    let first = book(&app, &key, 1, Some("k-1")).await;
    first.expect(200, None);
    let replay = book(&app, &key, 1, Some("k-1")).await;
    replay.expect(200, None);
    assert_eq!(replay.id(), first.id());
    // Rolled back, answer lost: the row does not exist, so 503; the retry books it, once.
    arm(&app, "rolled_back_answer_lost", 1).await;
    unavailable_with_retry_after(&book(&app, &key, 2, Some("k-2")).await);
    let retried = book(&app, &key, 2, Some("k-2")).await;
    retried.expect(200, None);
    book(&app, &key, 2, Some("k-2")).await.expect(200, None);
    let rows = stored(&app, &key).await;
    assert_eq!(rows.len(), 2, "one row per Idempotency-Key: {rows:?}");
}

async fn a_booking_past_its_deadline_is_withdrawn_unwritten_and_a_full_queue_refuses_at_once(backend: Backend) {
    let (app, key) =
        app(backend, &[("RINGBACK__HTTP__REQUEST_TIMEOUT_MS", "2000"), ("RINGBACK__BOOKING__QUEUE_LIMIT", "1")]).await;
    // The writer hangs for 1.5 s before its next batch: the booking waiting for it has 0.5 s of
    // its 2 s left, less than a statement timeout (1 s), so it is withdrawn unwritten.
    app.admin(Method::POST, "/faults/stall-booking-writer", Some(json!({ "ms": 1500 }))).await.expect(200, None);
    let started = Instant::now();
    let (stalled, refused) = tokio::join!(book(&app, &key, 1, None), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The stalled booking is in the writer's hands; this one fills the queue of 1 ...
        let queued = book(&app, &key, 2, None);
        let full = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let at = Instant::now();
            (book(&app, &key, 3, None).await, at.elapsed())
        };
        let (queued, full) = tokio::join!(queued, full);
        (queued, full)
    });
    unavailable_with_retry_after(&stalled);
    assert!(started.elapsed() < Duration::from_millis(2000 + 1000), "answered within deadline + statement timeout");
    let (queued, (full, full_took)) = refused;
    // ... and the next is refused at once: the queue is full.
    unavailable_with_retry_after(&full);
    assert!(full_took < Duration::from_millis(500), "a full queue answers at once, took {full_took:?}");
    assert!(matches!(queued.status.as_u16(), 200 | 503), "{}", queued.status);
    let rows = stored(&app, &key).await;
    assert_eq!(rows.len(), usize::from(queued.status == 200), "the withdrawn booking was not written: {rows:?}");
    book(&app, &key, 4, None).await.expect(200, None);
}

async fn a_panic_in_a_batch_is_answered_counted_and_bookings_go_on(backend: Backend) {
    let (app, key) = app(backend, &[]).await;
    let panics = |m: String| metric_value(&m, "UNCAUGHT_EXCEPTION").expect("UNCAUGHT_EXCEPTION exposed");
    let before = panics(app.metrics().await);
    arm(&app, "panic", 1).await;
    unavailable_with_retry_after(&book(&app, &key, 1, Some("p-1")).await);
    assert!(panics(app.metrics().await) > before, "the panic is counted");
    assert!(stored(&app, &key).await.is_empty(), "nothing of the panicking batch was written");
    book(&app, &key, 1, Some("p-1")).await.expect(200, None);
    book(&app, &key, 2, None).await.expect(200, None);
    let ready = app.call(Method::GET, "/health/ready", &[], None).await;
    assert_eq!(ready.status, 200, "the writer still runs: {:?}", ready.body);
}

/// A body that arrives slower than `http.request_timeout_ms` is cut with 408 `REQUEST_TIMEOUT`
/// (issue 23): a slow upload cannot hold a worker's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_with_408_at_the_request_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, key) = app(Backend::Sqlite, &[("RINGBACK__HTTP__REQUEST_TIMEOUT_MS", "2000")]).await;
    let address = app.external.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /engagement/v3/callbacks/create HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"serviceName\":"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await.expect("an answer").unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "cut at the deadline, took {:?}", started.elapsed());
}
