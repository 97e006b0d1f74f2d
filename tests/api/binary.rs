//! The real binary as an operator runs it: the JSON log story of a booking, graceful SIGTERM,
//! `--help`, fail-fast configuration, start-up refusals, demo mode and health gauges.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, metric_value, Backend, ADMIN_TOKEN};
use crate::process::{provision, send, Process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_log_tells_a_bookings_story_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let client = reqwest::Client::new();
    let mut p = Process::start(&url, &[("RINGBACK_LOG", "trace")]);
    let key = provision(&p, &client).await;
    let body = json!({ "serviceName": "sales", "phoneNumber": "+14155552671", "userData": { "secretOrder": "ZX-99-PRIVATE" } });
    let (status, resp) =
        send(&client, Method::POST, p.url("/engagement/v3/callbacks/create"), &[("x-api-key", &key)], body).await;
    assert_eq!(status, 200);
    let corr = resp["status"]["corrId"].as_str().unwrap().to_string();
    let id = resp["data"]["id"].as_str().unwrap().to_string();
    let exit = p.terminate();
    assert!(exit.success(), "graceful SIGTERM exits 0, got {exit}");
    let lines = p.log_lines();
    let parsed: Vec<Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    for v in &parsed {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
    }
    let story: Vec<&Value> = parsed.iter().filter(|v| v["corrId"] == corr.as_str()).collect();
    let stages: Vec<&str> = story.iter().filter_map(|v| v["stage"].as_str()).collect();
    // The request's own stages in order; the hand-off may add its later stages under the same corrId.
    assert!(stages.contains(&"responded"), "{story:#?}");
    let request_part: Vec<&str> =
        stages.iter().copied().take_while(|s| *s != "responded").chain(["responded"]).collect();
    assert_eq!(
        request_part,
        vec!["received", "authenticated", "validated", "throttle", "stored", "responded"],
        "{story:#?}"
    );
    let later = &stages[request_part.len().min(stages.len())..];
    assert!(later.iter().all(|s| ["claimed", "published", "acknowledged", "state_changed"].contains(s)), "{story:#?}");
    let responded = story.iter().find(|v| v["stage"] == "responded").unwrap();
    assert_eq!(responded["route"], "/engagement/v3/callbacks/create");
    assert_eq!(responded["status"], 200);
    assert_eq!(responded["tenant"], "acme");
    assert_eq!(responded["service"], "sales");
    assert_eq!(responded["callbackId"], id.as_str());
    assert!(responded["latencyMs"].is_number());
    let all = lines.join("\n");
    assert!(!all.contains("4155552671"), "full phone number logged");
    assert!(all.contains("2671"), "masked number keeps its last 4 digits");
    assert!(!all.contains(&key), "API key logged");
    assert!(!all.contains("ZX-99-PRIVATE"), "userData logged");
    assert!(!all.contains(ADMIN_TOKEN), "admin token logged");
    assert!(parsed.iter().any(|v| v["message"] == "stopped"));
}

#[test]
fn help_documents_the_operator_interface() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringback")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "migrate", "--config"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ringback")).args(["serve", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--demo"));
}

#[test]
fn bad_configuration_fails_fast_naming_the_field() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("serve")
        .env("RINGBACK__DATABASE__STATEMENT_TIMEOUT_MS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.statement_timeout_ms"), "{err}");
}

/// PostgreSQL with no Redis to hand callbacks over to would book and never dial: refused at
/// start-up, naming `ors_redis.url`, unless the replica is told to hand nothing over. SQLite (the
/// embedded default) starts without Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_cannot_dispatch_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let out = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .arg("serve")
        .env_clear()
        .env("RINGBACK__DATABASE__URL", &url)
        .env("RINGBACK__LISTEN__INTERNAL", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ors_redis.url"), "{err}");
    let client = reqwest::Client::new();
    let off = Process::start(
        &url,
        &[
            ("RINGBACK__MONITOR__DISPATCH", "none"),
            ("RINGBACK__MONITOR__TICK_MS", "100"),
            ("RINGBACK__MONITOR__RECOVERY_SECONDS", "1"),
        ],
    );
    let ready: Value = client.get(off.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["dependencies"]["orsRedis"], "off", "{ready}");
    // It claims nothing: once its own recovery pass counts the callback as due, it is still
    // SCHEDULED (a claim would have made it QUEUED).
    let key = provision(&off, &client).await;
    let due = crate::helpers::in_seconds(1);
    let body = json!({ "serviceName": "sales", "phoneNumber": "+14155552671", "desiredTime": due });
    let h = [("x-api-key", key.as_str())];
    let (status, booked) = send(&client, Method::POST, off.url("/engagement/v3/callbacks/create"), &h, body).await;
    assert_eq!(status, 200, "{booked}");
    crate::helpers::eventually(10, "the recovery pass sees the callback due", || async {
        let m = client.get(off.url("/metrics")).send().await.unwrap().text().await.unwrap();
        crate::helpers::metric_value(&m, r#"ges_monitor_size{type="due"}"#) == Some(1.0)
    })
    .await;
    let id = json!({ "id": booked["data"]["id"] });
    let (_, cb) = send(&client, Method::POST, off.url("/engagement/v3/callbacks/retrieve"), &h, id).await;
    assert_eq!(cb["data"]["callbackState"], "SCHEDULED", "{cb}");
    let sqlite = fresh_database(Backend::Sqlite, &dir).await;
    let embedded = Process::start(&sqlite, &[("RINGBACK__MONITOR__DISPATCH", "stream")]);
    let ready = client.get(embedded.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_prints_a_working_key_and_curl() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringback"))
        .args(["serve", "--demo"])
        .current_dir(dir.path())
        .env("RINGBACK__LISTEN__INTERNAL", "127.0.0.1:0")
        .env("RINGBACK__LISTEN__EXTERNAL", "")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut printed = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        printed.push(line);
        if printed.iter().filter(|l| l.contains("curl")).count() >= 2 {
            break;
        }
    }
    let key = printed.iter().find_map(|l| l.strip_prefix("demo api key: ")).expect("key line").to_string();
    let curl = printed.iter().find(|l| l.trim_start().starts_with("curl")).expect("curl line");
    let url = curl.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    assert!(dir.path().join("ringback.db").exists(), "embedded default is a SQLite file in the working directory");
    let client = reqwest::Client::new();
    let (status, resp) = send(
        &client,
        Method::POST,
        url,
        &[("x-api-key", &key)],
        json!({ "serviceName": "demo-callbacks", "phoneNumber": "+14155552671" }),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    // The page, with a widget key and the service in the fragment (never the query string).
    let page = printed.iter().find_map(|l| l.strip_prefix("open the booking page: ")).expect("page line");
    let (address, fragment) = page.split_once('#').expect("a fragment");
    assert!(!address.contains('?') && fragment.starts_with("service=demo-callbacks&key=rbk_"), "{page}");
    let html = client.get(address).send().await.unwrap();
    assert_eq!(html.status(), 200);
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let widget_key = fragment.rsplit_once("key=").unwrap().1;
    let origin = address.trim_end_matches("/ui/");
    let listed = client.get(format!("{origin}/engagement/v3/callbacks")).header("x-api-key", widget_key).send().await;
    assert_eq!(listed.unwrap().status(), 403, "the page's key cannot list callbacks");
    child.kill().ok();
    child.wait().ok();
}

/// Health gauges flip within a check period when Redis (cache and dispatch stream) stops,
/// `GES_HEALTH` follows the required dependency, readiness follows the database only, and
/// everything recovers without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_gauges_follow_dependencies_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let mut redis = crate::helpers::RedisServer::start();
    let port = redis.port;
    let p = Process::start(
        &url,
        &[("RINGBACK__REDIS__URL", redis.url().as_str()), ("RINGBACK__HEALTH__INTERVAL_SECONDS", "1")],
    );
    let client = reqwest::Client::new();
    let scrape = || {
        let req = client.get(p.url("/metrics"));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let ready = || {
        let req = client.get(p.url("/health/ready"));
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let all_are = |value: f64| {
        let scrape = &scrape;
        move || async move {
            let m = scrape().await;
            ["REDIS_CONNECTION", "ORS_REDIS_STATUS", "GES_HEALTH"].iter().all(|g| metric_value(&m, g) == Some(value))
        }
    };
    crate::helpers::eventually(10, "gauges up", all_are(0.0)).await;
    let m = scrape().await;
    assert_eq!(metric_value(&m, "POSTGRES_STATUS"), None, "not configured: no gauge");
    for pool in ["cache", "ors"] {
        for state in ["idle", "in_use"] {
            let series = format!(r#"ges_redis_pool_connections{{pool="{pool}",state="{state}"}}"#);
            assert!(m.contains(&series), "{series} missing:\n{m}");
        }
    }
    redis.stop();
    crate::helpers::eventually(10, "gauges down", all_are(1.0)).await;
    let (status, body) = ready().await;
    assert_eq!(status, 200, "readiness follows the database only: {body}");
    assert_eq!(
        (body["dependencies"]["redis"].as_str(), body["dependencies"]["orsRedis"].as_str()),
        (Some("down"), Some("down"))
    );
    let _back = crate::helpers::RedisServer::start_on(port);
    crate::helpers::eventually(10, "gauges recovered", all_are(0.0)).await;
    assert_eq!(ready().await.1["dependencies"]["redis"], "up");
}

/// W3C Trace Context (issue 25): every log line of a request carries its `traceId` and `spanId`:
/// the caller's trace continued from a valid `traceparent` (with a span id of our own), a new trace
/// for a request without one or with a malformed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_request_carries_its_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let client = reqwest::Client::new();
    let mut p = Process::start(&url, &[("RINGBACK_LOG", "trace")]);
    let key = provision(&p, &client).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut corrs = Vec::new();
    for (n, traceparent) in [Some(parent), None, Some("00-not-a-trace-01")].into_iter().enumerate() {
        let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415555267{n}") });
        let mut headers = vec![("x-api-key", key.as_str())];
        headers.extend(traceparent.map(|t| ("traceparent", t)));
        let (status, resp) =
            send(&client, Method::POST, p.url("/engagement/v3/callbacks/create"), &headers, body).await;
        assert_eq!(status, 200, "{resp}");
        corrs.push(resp["status"]["corrId"].as_str().unwrap().to_string());
    }
    assert!(p.terminate().success());
    let parsed: Vec<Value> = p.log_lines().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut trace_ids = Vec::new();
    for corr in &corrs {
        // The request's own lines (the hand-off's later lines carry the corrId as a field only).
        let lines: Vec<&Value> = parsed
            .iter()
            .filter(|v| v["corrId"] == corr.as_str())
            .take_while(|v| v["stage"] != "claimed" && v["stage"] != "published")
            .collect();
        assert!(lines.len() >= 5, "the request's stages: {lines:#?}");
        let trace = lines[0]["traceId"].as_str().expect("traceId").to_string();
        let span = lines[0]["spanId"].as_str().expect("spanId").to_string();
        assert_eq!((trace.len(), span.len()), (32, 16), "{trace} {span}");
        assert!(lines.iter().all(|v| v["traceId"] == trace.as_str() && v["spanId"] == span.as_str()), "{lines:#?}");
        assert_ne!(span, "00f067aa0ba902b7", "a span of our own, the caller's as its parent");
        trace_ids.push(trace);
    }
    assert_eq!(trace_ids[0], "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continued");
    assert!(trace_ids[1] != trace_ids[0] && trace_ids[2] != trace_ids[0] && trace_ids[1] != trace_ids[2], "new traces");
}
