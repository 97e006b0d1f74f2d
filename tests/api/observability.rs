//! Observability over HTTP against the real binary (each test its own process, so process-wide
//! counters and gauges belong to it alone): every alarm reads 0 until its condition happens and
//! then counts each occurrence (raised for real through the fault-injection routes), health
//! gauges follow the database, event-loop lag rises on a blocked worker, log lines are cut at
//! `log.max_len`, and a log-level change applies at once here and within 30 s on other replicas.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{eventually, fresh_database, metric_value, phone, Backend, ADMIN_TOKEN};
use crate::outage::ChaosProxy;
use crate::process::{provision, send, Process};

const FAULTS: (&str, &str) = ("RINGBACK__FAULTS__ENABLED", "true");

struct Subject {
    process: Process,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Subject {
    async fn start(extra: &[(&str, &str)]) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let url = fresh_database(Backend::Sqlite, &dir).await;
        let mut env = vec![FAULTS];
        env.extend_from_slice(extra);
        Subject { process: Process::start(&url, &env), client: reqwest::Client::new(), _dir: dir }
    }

    async fn admin(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        send(&self.client, method, self.process.url(&format!("/admin/v1{path}")), &[("authorization", &auth)], body)
            .await
    }

    async fn metrics(&self) -> String {
        self.client.get(self.process.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    async fn alarm(&self, name: &str) -> f64 {
        metric_value(&self.metrics().await, name).unwrap_or_else(|| panic!("{name} is not registered"))
    }
}

const GLOBAL_ALARMS: [&str; 6] = [
    "MONITOR_LAGGING_BEHIND",
    "RBAC_CREATE_VQ_PROXY_ERROR",
    "DNS_FAILURE",
    "LOGGING_FAILURE",
    "UNCAUGHT_EXCEPTION",
    "INVALID_CONTENT_LENGTH",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_answers_500_and_counts_uncaught_exception() {
    let s = Subject::start(&[]).await;
    let scrape = s.metrics().await;
    for alarm in GLOBAL_ALARMS {
        assert_eq!(metric_value(&scrape, alarm), Some(0.0), "{alarm} is registered at 0 before any occurrence");
    }
    for n in 1..=2 {
        let (status, body) = s.admin(Method::POST, "/faults/panic", json!({})).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["status"]["reason"], "INTERNAL");
        assert!(body["status"]["corrId"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
        assert_eq!(s.alarm("UNCAUGHT_EXCEPTION").await, f64::from(n), "each panic counts once");
    }
    // The worker that panicked keeps serving.
    let (status, _) = s.admin(Method::GET, "/tenants", json!(null)).await;
    assert_eq!(status, 200);
    // The log says where, never what: a panic's message is free text that may carry request data.
    // (Lines reach stdout within the writer's 20 ms poll, not with the response.)
    let logged = |text: &'static str, with: &'static str| {
        let lines = s.process.log_lines();
        async move { lines.iter().any(|l| l.contains(text) && l.contains(with)) }
    };
    eventually(10, "the catcher logged", || logged("handler panicked", "\"corrId\"")).await;
    eventually(10, "the hook logged where", || logged("\"location\":\"src/http/admin/faults.rs", "")).await;
    let lines = s.process.log_lines();
    assert!(!lines.iter().any(|l| l.contains("fault injection: panic in a handler")), "no panic message in the log");
    let errors = s.process.stderr_lines();
    assert!(!errors.iter().any(|l| l.contains("fault injection")), "nor on stderr: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_task_panic_counts_and_the_task_restarts() {
    let s = Subject::start(&[("RINGBACK__MONITOR__TICK_MS", "100")]).await;
    assert_eq!(s.alarm("UNCAUGHT_EXCEPTION").await, 0.0);
    let passes =
        |m: &str| metric_value(m, r#"ges_monitor_cycle_duration_seconds_count{pass="dispatch"}"#).unwrap_or(0.0);
    let (status, _) = s.admin(Method::POST, "/faults/panic-task", json!({})).await;
    assert_eq!(status, 200);
    eventually(10, "the dispatch task's panic is counted", || async { s.alarm("UNCAUGHT_EXCEPTION").await == 1.0 })
        .await;
    let after_panic = passes(&s.metrics().await);
    eventually(10, "the restarted dispatch task runs passes again", || async {
        passes(&s.metrics().await) > after_panic + 2.0
    })
    .await;
    assert_eq!(s.alarm("UNCAUGHT_EXCEPTION").await, 1.0, "one panic, one count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_vq_proxy_write_counts_and_stores_nothing() {
    let s = Subject::start(&[]).await;
    assert_eq!(s.admin(Method::PUT, "/tenants/acme", json!({})).await.0, 200);
    assert_eq!(s.alarm("RBAC_CREATE_VQ_PROXY_ERROR").await, 0.0);
    assert_eq!(s.admin(Method::POST, "/faults/fail-vq-proxy", json!({})).await.0, 200);
    let (status, body) = s.admin(Method::PUT, "/tenants/acme/services/sales", json!({ "virtualQueue": "vq" })).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(s.alarm("RBAC_CREATE_VQ_PROXY_ERROR").await, 1.0);
    let (status, _) = s.admin(Method::GET, "/tenants/acme/services/sales", json!(null)).await;
    assert_eq!(status, 404, "the service was not half-written without its proxy record");
    let (status, body) = s.admin(Method::PUT, "/tenants/acme/services/sales", json!({ "virtualQueue": "vq" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.alarm("RBAC_CREATE_VQ_PROXY_ERROR").await, 1.0, "a good write raises nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_count_invalid_content_length_each() {
    let s = Subject::start(&[]).await;
    let key = provision(&s.process, &s.client).await;
    assert_eq!(s.alarm("INVALID_CONTENT_LENGTH").await, 0.0);
    let huge = json!({ "serviceName": "sales", "phoneNumber": phone(7), "pad": "x".repeat(70_000) });
    for n in 1..=3 {
        let (status, body) = send(
            &s.client,
            Method::POST,
            s.process.url("/engagement/v3/callbacks/create"),
            &[("x-api-key", &key)],
            huge.clone(),
        )
        .await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(s.alarm("INVALID_CONTENT_LENGTH").await, f64::from(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_writer_drops_lines_counts_them_and_stalls_no_request() {
    let s = Subject::start(&[]).await;
    assert_eq!(s.alarm("LOGGING_FAILURE").await, 0.0);
    // More lines (~300 bytes each) than the writer's 16 MiB buffer while it is stuck: the request still returns.
    let (status, body) = s.admin(Method::POST, "/faults/stall-log-writer", json!({ "ms": 3000, "lines": 80000 })).await;
    assert_eq!(status, 200, "{body}");
    let dropped = s.alarm("LOGGING_FAILURE").await;
    assert!(dropped > 0.0, "lines beyond the buffer were dropped and counted");
    assert!(dropped <= 80_000.0);
    // Once the writer is back, what was written is still one valid JSON object per line.
    eventually(20, "the writer catches up", || async {
        s.process.log_lines().iter().any(|l| l.contains("\"n\":1000"))
    })
    .await;
    for line in s.process.log_lines() {
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_dependency_host_counts_dns_failure_on_each_check() {
    let s = Subject::start(&[
        ("RINGBACK__REDIS__URL", "redis://ringback-no-such-host.invalid:6379"),
        ("RINGBACK__HEALTH__INTERVAL_SECONDS", "1"),
    ])
    .await;
    eventually(20, "DNS_FAILURE counts repeated failed resolutions", || async { s.alarm("DNS_FAILURE").await >= 2.0 })
        .await;
    let m = s.metrics().await;
    assert_eq!(metric_value(&m, "REDIS_CONNECTION"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_worker_shows_its_lag_on_its_own_series() {
    let s = Subject::start(&[("RINGBACK__HTTP__WORKERS", "2")]).await;
    let (status, body) = s.admin(Method::POST, "/faults/block-worker", json!({ "ms": 1500 })).await;
    assert_eq!(status, 200, "{body}");
    let blocked = body["data"]["worker"].as_str().expect("the blocked worker's label").to_string();
    assert!(blocked.starts_with("internal-"), "{blocked}");
    let m = s.metrics().await;
    // Samples over 1 s: the histogram's count minus its le="1" bucket.
    let slow_samples = |worker: &str| {
        let series = |s: String| metric_value(&m, &s).unwrap_or_else(|| panic!("{s} exposed"));
        series(format!(r#"ges_eventloop_delay_seconds_count{{worker="{worker}"}}"#))
            - series(format!(r#"ges_eventloop_delay_seconds_bucket{{worker="{worker}",le="1"}}"#))
    };
    assert!(slow_samples(&blocked) >= 1.0, "the blocked worker recorded its stall:\n{m}");
    for worker in ["internal-0", "internal-1", "monitor"] {
        assert!(
            m.contains(&format!(r#"ges_eventloop_lag_seconds{{worker="{worker}"}}"#)),
            "{worker} has a probe:\n{m}"
        );
        if worker != blocked {
            assert_eq!(slow_samples(worker), 0.0, "{worker} was not blocked");
        }
    }
}

/// `POSTGRES_STATUS` and `GES_HEALTH` go to 1 within a check period when the database stops
/// answering (a loopback proxy is cut), readiness fails, and all recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gauge_and_readiness_follow_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let (prefix, rest) = url.split_once('@').unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    let proxy = ChaosProxy::start(host_port.to_string()).await;
    let proxied = format!("{prefix}@127.0.0.1:{}/{database}", proxy.port);
    let p = Process::start(
        &proxied,
        &[
            ("RINGBACK__HEALTH__INTERVAL_SECONDS", "1"),
            ("RINGBACK__DATABASE__ACQUIRE_TIMEOUT_MS", "500"),
            ("RINGBACK__DATABASE__STATEMENT_TIMEOUT_MS", "500"),
        ],
    );
    let client = reqwest::Client::new();
    let scrape = || async { client.get(p.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let ready = || async { client.get(p.url("/health/ready")).send().await.unwrap().status().as_u16() };
    let both_are = |value: f64| {
        let scrape = &scrape;
        move || async move {
            let m = scrape().await;
            metric_value(&m, "POSTGRES_STATUS") == Some(value) && metric_value(&m, "GES_HEALTH") == Some(value)
        }
    };
    eventually(10, "database up", both_are(0.0)).await;
    assert_eq!(ready().await, 200);
    assert!(scrape().await.contains(r#"ges_db_pool_connections{state="idle"}"#));
    proxy.cut();
    eventually(10, "POSTGRES_STATUS and GES_HEALTH down", both_are(1.0)).await;
    assert_eq!(ready().await, 503, "readiness follows the database");
    proxy.restore();
    eventually(15, "recovered without a restart", both_are(0.0)).await;
    assert_eq!(ready().await, 200);
}

/// `database.max_connections` is the replica's whole budget (api.md): the monitor's and health
/// checker's own connections come out of it. Seen from PostgreSQL's side while bookings saturate
/// the request pool and the monitor hands them over, and in `ges_db_pool_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_budget_includes_the_monitors_own_connections() {
    use futures_util::future::join_all;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let p = Process::start(&url, &[("RINGBACK__DATABASE__MAX_CONNECTIONS", "6"), ("RINGBACK__MONITOR__TICK_MS", "50")]);
    let client = reqwest::Client::new();
    let key = provision(&p, &client).await;
    let mut admin =
        <sqlx::AnyConnection as sqlx::Connection>::connect(&crate::helpers::postgres_admin_url()).await.unwrap();
    let mut most = 0_i64;
    for round in 0..5_u32 {
        let headers = [("x-api-key", key.as_str())];
        let bookings = join_all((0..40).map(|i| {
            let body = json!({ "serviceName": "sales", "phoneNumber": phone(round * 100 + i) });
            send(&client, Method::POST, p.url("/engagement/v3/callbacks/create"), &headers, body)
        }));
        let sample = async {
            let mut seen = Vec::new();
            for _ in 0..10 {
                let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
                    .bind(&database)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
                seen.push(open);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            seen
        };
        let (answers, seen) = tokio::join!(bookings, sample);
        assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
        most = most.max(seen.into_iter().max().unwrap());
    }
    assert!((3..=6).contains(&most), "at most 6 connections open at once, saw {most}");
    let m = client.get(p.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let pooled = metric_value(&m, r#"ges_db_pool_connections{state="idle"}"#).unwrap()
        + metric_value(&m, r#"ges_db_pool_connections{state="in_use"}"#).unwrap();
    assert!((1.0..=6.0).contains(&pooled), "the gauge counts both pools within the budget: {pooled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_field_values_are_cut_at_max_len_and_flagged() {
    let s = Subject::start(&[("RINGBACK_LOG", "trace"), ("RINGBACK__LOG__MAX_LEN", "64")]).await;
    let long_path = format!("/engagement/v3/{}", "x".repeat(300));
    let r = s.client.get(s.process.url(&long_path)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    eventually(10, "the request's lines are written", || async {
        s.process.log_lines().iter().any(|l| l.contains("/engagement/v3/xxxx"))
    })
    .await;
    let lines: Vec<Value> = s.process.log_lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let received = lines
        .iter()
        .find(|v| v["stage"] == "received" && v["path"].as_str().is_some_and(|p| p.starts_with("/engagement/v3/xx")))
        .expect("the received line of the long path");
    assert_eq!(received["truncated"], true, "{received}");
    assert_eq!(received["path"].as_str().unwrap().chars().count(), 64);
    for v in &lines {
        for (k, value) in v.as_object().unwrap() {
            if let Some(text) = value.as_str() {
                assert!(text.chars().count() <= 64, "{k} longer than log.max_len: {v}");
            }
        }
        if v.get("truncated").is_some() {
            assert!(v.as_object().unwrap().values().any(|x| x.as_str().is_some_and(|t| t.chars().count() == 64)));
        }
    }
}

/// A log-level change applies at once on the replica that takes it and within 30 s on another
/// replica of the same database, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_change_applies_here_at_once_and_on_other_replicas_within_30s() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, &dir).await;
    let client = reqwest::Client::new();
    let a = Process::start(&url, &[("RINGBACK_LOG", "info")]);
    let b = Process::start(&url, &[("RINGBACK_LOG", "info")]);
    let key = provision(&a, &client).await;
    let book = |p: &Process, n: u32| {
        let req = client
            .post(p.url("/engagement/v3/callbacks/create"))
            .header("x-api-key", key.as_str())
            .header("content-type", "application/json")
            .body(json!({ "serviceName": "sales", "phoneNumber": phone(n) }).to_string());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()["status"]["corrId"].as_str().unwrap().to_string()
        }
    };
    let traced =
        |p: &Process, corr: &str| p.log_lines().iter().any(|l| l.contains(corr) && l.contains(r#""stage":"received""#));
    let before = book(&a, 1).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (status, body) = send(
        &client,
        Method::PUT,
        a.url("/admin/v1/log-level"),
        &[("authorization", &auth)],
        json!({ "level": "trace" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = book(&a, 2).await;
    eventually(5, "trace lines of the booking after the change", || async { traced(&a, &after) }).await;
    assert!(!traced(&a, &before), "no trace lines before the change");
    // Replicas re-read the stored level periodically: book on B until its lines turn up at trace.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut booked_on_b = Vec::new();
    for n in 3.. {
        booked_on_b.push(book(&b, n).await);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if booked_on_b.iter().any(|corr| traced(&b, corr)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replica B did not follow the log-level change within 30 s");
    }
}

/// A trace-level log of a whole workload — bookings in several number formats, reads, lists
/// filtered by number, cancels, refusals, platform reports, key management — holds no full phone
/// number, API key, token or `userData` value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_log_of_a_whole_workload_holds_no_number_key_token_or_user_data() {
    const INTERNAL: &str = "workload-internal-token";
    let s = Subject::start(&[("RINGBACK_LOG", "trace"), ("RINGBACK__INTERNAL__TOKENS", INTERNAL)]).await;
    let key = provision(&s.process, &s.client).await;
    let public = |path: &str| s.process.url(&format!("/engagement/v3{path}"));
    let h = [("x-api-key", key.as_str())];
    let secret = "PRIVATE-ORDER-7731";
    let mut ids = Vec::new();
    for number in ["+14155550187", "(415) 555-0188", "415.555.0189"] {
        let body = json!({ "serviceName": "sales", "phoneNumber": number, "userData": { "order": secret } });
        let (status, resp) = send(&s.client, Method::POST, public("/callbacks/create"), &h, body).await;
        assert_eq!(status, 200, "{resp}");
        ids.push(resp["data"]["id"].as_str().unwrap().to_string());
    }
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let body = json!({ "serviceName": "sales", "phoneNumber": "+14155550190", "desiredTime": later });
    assert_eq!(send(&s.client, Method::POST, public("/callbacks/create"), &h, body).await.0, 200);
    let bad = json!({ "serviceName": "sales", "phoneNumber": "+1415555019" });
    assert_eq!(send(&s.client, Method::POST, public("/callbacks/create"), &h, bad).await.0, 400);
    let wrong_key = [("x-api-key", "rb_not_a_real_key_123456")];
    let body = json!({ "serviceName": "sales", "phoneNumber": "+14155550191" });
    assert_eq!(send(&s.client, Method::POST, public("/callbacks/create"), &wrong_key, body).await.0, 401);
    for id in &ids {
        assert_eq!(send(&s.client, Method::POST, public("/callbacks/retrieve"), &h, json!({ "id": id })).await.0, 200);
    }
    let listed =
        s.client.get(public("/callbacks?phoneNumber=%2B14155550187")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    assert_eq!(send(&s.client, Method::POST, public("/callbacks/cancel"), &h, json!({ "id": ids[0] })).await.0, 200);
    let auth = format!("Bearer {INTERNAL}");
    let report = json!({ "state": "PROCESSING" });
    let (status, resp) = send(
        &s.client,
        Method::POST,
        s.process.url(&format!("/internal/v1/callbacks/{}/state", ids[1])),
        &[("authorization", &auth)],
        report,
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    // Click-to-call-in: a caller's number, an access code and userData on create and match.
    let group = json!({ "numbers": ["+14155550192"], "accessCodeDigits": 6, "requireCallerMatch": true });
    assert_eq!(s.admin(Method::PUT, "/tenants/acme/call-in-groups/callers", group).await.0, 200);
    let body = json!({ "groupName": "callers", "fromPhoneNumber": "+14155550193", "userData": { "order": secret } });
    let (status, issued) = send(&s.client, Method::POST, public("/call-in/requests/create"), &h, body).await;
    assert_eq!(status, 200, "{issued}");
    let code = issued["data"]["accessCode"].as_i64().expect("access code").to_string();
    let call = json!({ "toPhoneNumber": "+14155550192", "accessCode": code, "fromPhoneNumber": "+14155550193" });
    let match_url = s.process.url("/internal/v1/call-in/match");
    assert_eq!(send(&s.client, Method::POST, match_url, &[("authorization", &auth)], call).await.0, 200);
    let (status, created) = s.admin(Method::POST, "/tenants/acme/api-keys", json!({})).await;
    assert_eq!(status, 200);
    let second_key = created["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(s.admin(Method::GET, "/tenants/acme/api-keys", json!(null)).await.0, 200);

    eventually(10, "the workload's last lines are written", || async {
        s.process.log_lines().iter().any(|l| l.contains("/admin/v1/tenants/{tenant}/api-keys") && l.contains("\"GET\""))
    })
    .await;
    let log = s.process.log_lines().join("\n");
    assert!(log.contains("\"stage\":\"stored\""), "the log is at trace level");
    assert!(
        !log.contains(&format!("\"{code}\"")) && !log.contains(&format!(":{code}")),
        "the access code reached the log"
    );
    for digits in
        ["4155550187", "4155550188", "4155550189", "4155550190", "415555019", "4155550191", "4155550192", "4155550193"]
    {
        assert!(!log.contains(digits), "a phone number ({digits}) reached the log");
    }
    for raw in ["(415) 555-0188", "415.555.0189", "555-0188"] {
        assert!(!log.contains(raw), "a raw phone number ({raw}) reached the log");
    }
    for secret_text in [key.as_str(), second_key.as_str(), "rb_not_a_real_key_123456", INTERNAL, ADMIN_TOKEN, secret] {
        assert!(!log.contains(secret_text), "a secret or userData value reached the log: {secret_text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerance_gauges_carry_the_configured_values() {
    let configured = [
        ("RINGBACK__ALERTS__HTTP_400_TOLERANCE", "http_400_tolerance", 7.0),
        ("RINGBACK__ALERTS__HTTP_401_TOLERANCE", "http_401_tolerance", 3.0),
        ("RINGBACK__ALERTS__HTTP_404_TOLERANCE", "http_404_tolerance", 70.0),
        ("RINGBACK__ALERTS__HTTP_500_TOLERANCE", "http_500_tolerance", 2.0),
        ("RINGBACK__ALERTS__RBAC_CREATE_VQ_PROXY_ERROR_TOLERANCE", "rbac_create_vq_proxy_error_tolerance", 1.0),
        ("RINGBACK__ALERTS__INVALID_CONTENT_LENGTH_TOLERANCE", "invalid_content_length_tolerance", 12.0),
    ];
    let values: Vec<String> = configured.iter().map(|(_, _, v)| v.to_string()).collect();
    let env: Vec<(&str, &str)> = configured.iter().zip(&values).map(|((k, _, _), v)| (*k, v.as_str())).collect();
    let s = Subject::start(&env).await;
    let m = s.metrics().await;
    for (_, gauge_name, value) in configured {
        assert_eq!(metric_value(&m, gauge_name), Some(value), "{gauge_name}");
    }
}

/// With the cache and the dispatch stream on separate Redis servers, losing the cache alone sets
/// `REDIS_CONNECTION` but not `GES_HEALTH` (throttles go per-replica; nothing required is down);
/// losing the stream's Redis raises both `ORS_REDIS_STATUS` and `GES_HEALTH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ges_health_follows_only_the_required_dependencies() {
    let mut cache = crate::helpers::RedisServer::start();
    let mut stream = crate::helpers::RedisServer::start();
    let s = Subject::start(&[
        ("RINGBACK__REDIS__URL", cache.url().as_str()),
        ("RINGBACK__ORS_REDIS__URL", stream.url().as_str()),
        ("RINGBACK__HEALTH__INTERVAL_SECONDS", "1"),
    ])
    .await;
    let gauges = || async {
        let m = s.metrics().await;
        ["REDIS_CONNECTION", "ORS_REDIS_STATUS", "GES_HEALTH"].map(|g| metric_value(&m, g))
    };
    eventually(10, "all up", || async { gauges().await == [Some(0.0); 3] }).await;
    cache.stop();
    eventually(10, "cache down, health unaffected", || async { gauges().await == [Some(1.0), Some(0.0), Some(0.0)] })
        .await;
    // Stays so over further checks: not a transient reading.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(gauges().await, [Some(1.0), Some(0.0), Some(0.0)]);
    stream.stop();
    eventually(10, "stream down raises GES_HEALTH", || async { gauges().await == [Some(1.0), Some(1.0), Some(1.0)] })
        .await;
}

/// The monitor's own series, read from a process of their own (the in-process tests share one
/// recorder, so there a series could come from any test): a hand-off records its delay, each
/// pass its duration, and the recovery pass sets `ges_monitor_size` for every type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_reports_its_passes_sizes_and_hand_off_delay() {
    let s =
        Subject::start(&[("RINGBACK__MONITOR__RECOVERY_SECONDS", "1"), ("RINGBACK__MONITOR__TICK_MS", "100")]).await;
    let key = provision(&s.process, &s.client).await;
    let body = json!({ "serviceName": "sales", "phoneNumber": phone(1) });
    let url = s.process.url("/engagement/v3/callbacks/create");
    assert_eq!(send(&s.client, Method::POST, url, &[("x-api-key", &key)], body).await.0, 200);
    let value = |m: &str, series: &str| metric_value(m, series).unwrap_or(0.0);
    eventually(10, "a hand-off delay and both passes recorded", || async {
        let m = s.metrics().await;
        value(&m, "ges_monitor_dispatch_delay_seconds_count") >= 1.0
            && value(&m, r#"ges_monitor_cycle_duration_seconds_count{pass="dispatch"}"#) >= 1.0
            && value(&m, r#"ges_monitor_cycle_duration_seconds_count{pass="recovery"}"#) >= 1.0
    })
    .await;
    let m = s.metrics().await;
    for kind in ["scheduled", "queued", "routing", "processing", "due"] {
        let series = format!(r#"ges_monitor_size{{type="{kind}"}}"#);
        assert!(metric_value(&m, &series).is_some(), "{series} is set by the recovery pass");
    }
}

/// An id a client sends is written into the request's log lines cut to 64 characters (issue 23):
/// every line of the request repeats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_id_is_cut_to_64_characters_in_the_log() {
    let s = Subject::start(&[("RINGBACK_LOG", "debug")]).await;
    let key = crate::process::provision(&s.process, &s.client).await;
    let long_id = "x".repeat(1_000);
    let (status, _) = send(
        &s.client,
        Method::POST,
        s.process.url("/engagement/v3/callbacks/cancel"),
        &[("x-api-key", &key)],
        json!({ "id": long_id }),
    )
    .await;
    assert_eq!(status, 404);
    let cut = "x".repeat(64);
    eventually(5, "the request's log line", || async {
        s.process.log_lines().iter().any(|l| l.contains(&format!("\"callbackId\":\"{cut}\"")))
    })
    .await;
    assert!(!s.process.log_lines().iter().any(|l| l.contains(&"x".repeat(65))), "no longer id in the log");
}
