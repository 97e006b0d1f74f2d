//! OpenTelemetry export (issue 25), read back by a real OTLP/HTTP receiver that decodes with the
//! official protobuf definitions (`scripts/otlp_receiver.py`, Python `opentelemetry-proto`): a
//! booking's request, operation and batch, its hand-off, and the platform's state reports are
//! one story across two linked traces. And an unreachable collector costs bookings nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, fresh_database, Backend, RedisServer, INTERNAL_TOKEN, MULTI_PROCESS};
use crate::process::{provision, send, Process};

/// The receiver, on a port of its own.
struct Collector {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new(format!("{}/scripts/otlp-receiver.sh", env!("CARGO_MANIFEST_DIR")))
            .arg(&port_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("scripts/otlp-receiver.sh runs (the test command installs its venv)");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port");
            }
            assert!(Instant::now() < deadline, "the OTLP receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Collector { child, port, _dir: dir }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spans(&self) -> Vec<Value> {
        let text = reqwest::get(format!("{}/spans", self.endpoint())).await.unwrap().text().await.unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // The script execs Python: the child is the receiver itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(spans: &[Value], pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    spans.iter().find(|s| pred(s))
}

fn links_to(span: &Value, trace_id: &str, span_id: &str) -> bool {
    span["links"].as_array().is_some_and(|ls| ls.iter().any(|l| l["traceId"] == trace_id && l["spanId"] == span_id))
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// A trace a public client asks to have sampled.
const FORCED: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_its_batch_its_hand_off_and_the_platforms_reports_are_exported_as_linked_traces() {
    let _turn = MULTI_PROCESS.lock().await;
    let collector = Collector::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(Backend::Sqlite, &dir).await;
    let endpoint = collector.endpoint();
    let p = Process::start(
        &db,
        &[
            ("RINGBACK__ORS_REDIS__URL", &redis.url()),
            ("RINGBACK__INTERNAL__TOKENS", INTERNAL_TOKEN),
            ("RINGBACK__MONITOR__TICK_MS", "200"),
            ("RINGBACK__TELEMETRY__OTLP__ENDPOINT", &endpoint),
            // New traces are never sampled: what is exported is the caller's decision, obeyed on
            // the internal listener (the platform and operators are trusted).
            ("RINGBACK__TELEMETRY__OTLP__SAMPLE_RATIO", "0"),
            ("RINGBACK__TELEMETRY__OTLP__EXPORT_DELAY_MS", "200"),
            ("RINGBACK_LOG", "trace"),
            ("RINGBACK__LISTEN__EXTERNAL", "127.0.0.1:0"),
        ],
    );
    let client = reqwest::Client::new();
    let key = provision(&p, &client).await;
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (status, booked) = send(
        &client,
        Method::POST,
        p.url("/engagement/v3/callbacks/create"),
        &[("x-api-key", &key), ("traceparent", &traceparent), ("tracestate", "rojo=00f067aa0ba902b7")],
        json!({ "serviceName": "sales", "phoneNumber": "+14155552671" }),
    )
    .await;
    assert_eq!(status, 200, "{booked}");
    let id = booked["data"]["id"].as_str().unwrap().to_string();
    let corr = booked["status"]["corrId"].as_str().unwrap().to_string();
    // The same from the public listener: any client could send `sampled`; it is not obeyed there.
    let external = p
        .log_lines()
        .iter()
        .find_map(|l| serde_json::from_str::<Value>(l).ok().filter(|v| v["message"] == "ringback listening"))
        .and_then(|v| v["external"].as_u64())
        .expect("the external listener's port");
    let (status, _) = send(
        &client,
        Method::POST,
        format!("http://127.0.0.1:{external}/engagement/v3/callbacks/create"),
        &[("x-api-key", &key), ("traceparent", &format!("00-{FORCED}-{CALLER_SPAN}-01"))],
        json!({ "serviceName": "sales", "phoneNumber": "+14155552672" }),
    )
    .await;
    assert_eq!(status, 200);

    // The platform: the simulator reads the hand-off and reports back in its trace.
    let mut simulator = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .args(["simulate-dialer", "--redis-url", &redis.url(), "--internal-url", &p.url(""), "--token", INTERNAL_TOKEN])
        .args(["--ack-ms", "0", "--routing-ms", "100", "--processing-ms", "100", "--completion-ms", "100"])
        .args(["--outcomes", "1,0,0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RINGBACK_LOG", "off")
        .stdout(Stdio::null())
        .spawn()
        .expect("the simulator starts");

    let mut spans: Vec<Value>;
    let report = "POST /internal/v1/callbacks/{id}/state";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (request, handoff) = loop {
        spans = collector.spans().await;
        let request = find(&spans, |s| s["traceId"] == TRACE && s["parentSpanId"] == CALLER_SPAN).cloned();
        let handoff = request
            .as_ref()
            .and_then(|r| {
                find(&spans, |s| s["name"] == "callback.submit" && links_to(s, TRACE, r["spanId"].as_str().unwrap()))
            })
            .cloned();
        let reports = handoff
            .as_ref()
            .map_or(0, |h| spans.iter().filter(|s| s["name"] == report && s["parentSpanId"] == h["spanId"]).count());
        if let (Some(r), Some(h), 4..) = (&request, &handoff, reports) {
            break (r.clone(), h.clone());
        }
        assert!(Instant::now() < deadline, "the spans did not all arrive; received: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = simulator.kill();
    let _ = simulator.wait();

    // The request: the caller's trace continued, named by its route, with this service's identity.
    let request_span = request["spanId"].as_str().unwrap();
    assert_eq!(request["name"], "POST /engagement/v3/callbacks/create");
    assert_eq!(request["kind"], "SPAN_KIND_SERVER");
    assert_eq!(request["traceState"], "rojo=00f067aa0ba902b7", "the caller's tracestate is kept");
    assert_eq!(request["resource"]["service.name"], "ringback");
    assert!(request["resource"]["service.instance.id"].as_str().is_some_and(|i| !i.is_empty()));
    assert_eq!(request["resource"]["service.version"], env!("CARGO_PKG_VERSION"));
    // The operation inside it, and the batch that wrote it: a span of its own, linked to the request.
    assert!(
        find(&spans, |s| s["name"] == "create_callback" && s["traceId"] == TRACE && s["parentSpanId"] == request_span)
            .is_some(),
        "the booking operation is a child of the request: {spans:#?}"
    );
    let batch = find(&spans, |s| s["name"] == "booking_batch" && links_to(s, TRACE, request_span))
        .unwrap_or_else(|| panic!("a batch span links to the booking's request: {spans:#?}"));
    assert_ne!(batch["traceId"], TRACE, "the batch serves many traces: it is in none of them");
    // The hand-off: a trace of its own, linked to the booking, its context in the stream entry.
    let (handoff_trace, handoff_span) = (handoff["traceId"].as_str().unwrap(), handoff["spanId"].as_str().unwrap());
    assert_ne!(handoff_trace, TRACE);
    assert_eq!(handoff["kind"], "SPAN_KIND_PRODUCER");
    let entry = stream_traceparent(&redis.url(), &id).await;
    assert_eq!(entry, format!("00-{handoff_trace}-{handoff_span}-01"));
    // The platform's reports joined the hand-off's trace.
    for s in spans.iter().filter(|s| s["name"] == report && s["parentSpanId"] == handoff_span) {
        assert_eq!(s["traceId"], handoff_trace);
    }
    // Exported within 2 s of their end (the export delay is 200 ms).
    for s in &spans {
        let late = s["receivedSeconds"].as_f64().unwrap() - s["endSeconds"].as_f64().unwrap();
        assert!(late < 2.0, "a span arrived {late:.2} s after it ended: {s}");
    }

    // Every log line of the booking request, from `received` to `responded`, carries its trace
    // and span; no other line is in the caller's trace.
    let logged: Vec<Value> = p.log_lines().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
    let of_request: Vec<&Value> = logged.iter().filter(|v| v["spanId"] == request_span).collect();
    let stages: Vec<&str> = of_request.iter().filter_map(|v| v["stage"].as_str()).collect();
    assert!(stages.contains(&"received") && stages.contains(&"responded"), "{of_request:#?}");
    for line in &of_request {
        assert_eq!((&line["traceId"], &line["corrId"]), (&json!(TRACE), &json!(corr)), "{line}");
    }
    for line in logged.iter().filter(|v| v["traceId"] == TRACE) {
        assert_eq!(line["spanId"], request_span, "{line}");
    }
    // The public client's request was not recorded, although it asked.
    assert!(find(&spans, |s| s["traceId"] == FORCED).is_none(), "{spans:#?}");
    // Nothing was dropped.
    let metrics = reqwest::get(p.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("ges_trace_spans_dropped_total{"), "{metrics}");
    drop(redis);
}

/// The `traceparent` field of the callback's stream entry.
async fn stream_traceparent(redis_url: &str, id: &str) -> String {
    let mut conn = redis::Client::open(redis_url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg("NewCallbackStream").arg("-").arg("+").query_async(&mut conn).await.unwrap();
    let get = |e: &redis::streams::StreamId, k: &str| {
        e.map.get(k).and_then(|v| redis::from_redis_value::<String>(v).ok()).unwrap_or_default()
    };
    let entry = reply.ids.iter().find(|e| get(e, "id") == id).expect("the hand-off is in the stream");
    get(entry, "traceparent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_bookings_nothing_and_its_drops_are_counted() {
    let _turn = MULTI_PROCESS.lock().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(Backend::Sqlite, &dir).await;
    let endpoint = format!("http://127.0.0.1:{closed}");
    let p = Process::start(
        &db,
        &[
            ("RINGBACK__TELEMETRY__OTLP__ENDPOINT", &endpoint),
            ("RINGBACK__TELEMETRY__OTLP__SAMPLE_RATIO", "1"),
            ("RINGBACK__TELEMETRY__OTLP__EXPORT_DELAY_MS", "100"),
        ],
    );
    let client = reqwest::Client::new();
    let key = provision(&p, &client).await;
    for i in 0..20 {
        let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415555{:04}", 3000 + i) });
        let (status, resp) =
            send(&client, Method::POST, p.url("/engagement/v3/callbacks/create"), &[("x-api-key", &key)], body).await;
        assert_eq!(status, 200, "{resp}");
    }
    let scrape = || async { reqwest::get(p.url("/metrics")).await.unwrap().text().await.unwrap() };
    eventually(20, "spans the collector never took are counted as dropped", || async {
        let metrics = scrape().await;
        crate::helpers::metric_value(&metrics, r#"ges_trace_spans_dropped_total{reason="export_failed"}"#)
            .is_some_and(|n| n > 0.0)
    })
    .await;
    assert!(crate::helpers::metric_value(&scrape().await, "ges_trace_spans_exported_total").is_none_or(|n| n == 0.0));
}
