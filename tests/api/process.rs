//! The real binary as an operator runs it: durability across `kill -9`, the JSON log story of a
//! booking, graceful SIGTERM, `--help` and fail-fast configuration.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{fresh_database, Backend, ADMIN_TOKEN};

pub struct Process {
    child: Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn start(database_url: &str, extra: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringback"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RINGBACK__DATABASE__URL", database_url)
            .env("RINGBACK__LISTEN__INTERNAL", "127.0.0.1:0")
            .env("RINGBACK__LISTEN__EXTERNAL", "")
            .env("RINGBACK__ADMIN__TOKENS", ADMIN_TOKEN)
            .env("RINGBACK__HTTP__WORKERS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(none) = crate::helpers::dispatch_default(database_url, extra) {
            cmd.env(none.0, none.1);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("ringback starts");
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = lines.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "ringback listening").then(|| v["internal"].as_u64()).flatten()
            });
            if let Some(port) = port {
                return Process { child, port: port as u16, lines };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).ok();
                panic!("ringback exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "ringback did not start in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().ok();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "ringback did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn send(
    client: &reqwest::Client,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let mut req = client.request(method, url).header("content-type", "application/json").body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Tenant, service and key through the admin API of a running process; returns the key.
pub async fn provision(p: &Process, client: &reqwest::Client) -> String {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let h = [("authorization", auth.as_str())];
    assert_eq!(send(client, Method::PUT, p.url("/admin/v1/tenants/acme"), &h, json!({})).await.0, 200);
    assert_eq!(send(client, Method::PUT, p.url("/admin/v1/tenants/acme/services/sales"), &h, json!({})).await.0, 200);
    let (status, body) = send(client, Method::POST, p.url("/admin/v1/tenants/acme/api-keys"), &h, json!({})).await;
    assert_eq!(status, 200);
    body["data"]["key"].as_str().unwrap().to_string()
}

async fn acknowledged_booking_survives_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let client = reqwest::Client::new();
    let mut first = Process::start(&url, &[]);
    let key = provision(&first, &client).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415555{:04}", 2671 + i) });
        let (status, resp) =
            send(&client, Method::POST, first.url("/engagement/v3/callbacks/create"), &[("x-api-key", &key)], body)
                .await;
        assert_eq!(status, 200, "{resp}");
        ids.push(resp["data"]["id"].as_str().unwrap().to_string());
    }
    // Killed right after the last 200: no graceful shutdown, no flush.
    first.kill_9();
    let second = Process::start(&url, &[]);
    for id in &ids {
        let (status, resp) = send(
            &client,
            Method::POST,
            second.url("/engagement/v3/callbacks/retrieve"),
            &[("x-api-key", &key)],
            json!({ "id": id }),
        )
        .await;
        assert_eq!(status, 200, "acknowledged callback {id} lost after kill -9: {resp}");
        assert_eq!(resp["data"]["callbackState"], "QUEUED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_booking_survives_kill_9_on_sqlite() {
    acknowledged_booking_survives_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_booking_survives_kill_9_on_postgres() {
    acknowledged_booking_survives_kill_9(Backend::Postgres).await;
}

/// Group commit keeps "200 means committed": bookings stream in 64 at a time, so batches are being
/// written when the process is killed; every booking answered 200 is there after the restart.
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(backend: Backend) {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut first = Process::start(&url, &[("RINGBACK__HTTP__WORKERS", "2")]);
    let key = provision(&first, &client).await;
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let roomy = json!({ "maxQueued": 1000000, "perNumberLimit": { "limit": 1000, "windowSeconds": 60 },
        "serviceRateLimits": [{ "limit": 1000000, "windowSeconds": 60 }] });
    let h = [("authorization", auth.as_str())];
    assert_eq!(send(&client, Method::PUT, first.url("/admin/v1/tenants/acme/services/sales"), &h, roomy).await.0, 200);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let burst = {
        let (client, create, key, acknowledged) =
            (client.clone(), first.url("/engagement/v3/callbacks/create"), key.clone(), acknowledged.clone());
        tokio::spawn(async move {
            futures_util::stream::iter(0..5000_u32)
                .map(|i| {
                    let body = json!({ "serviceName": "sales", "phoneNumber": format!("+1415{:07}", 3_000_000 + i) });
                    let req = client.post(&create).header("x-api-key", &key).json(&body);
                    let acknowledged = acknowledged.clone();
                    async move {
                        let Ok(r) = req.send().await else { return false };
                        if r.status() != 200 {
                            return false;
                        }
                        let Ok(v) = r.json::<Value>().await else { return false };
                        acknowledged.lock().unwrap().push(v["data"]["id"].as_str().unwrap().to_string());
                        true
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<bool>>()
                .await
        })
    };
    crate::helpers::eventually(60, "bookings acknowledged", || async { acknowledged.lock().unwrap().len() >= 300 })
        .await;
    first.kill_9();
    let answered = burst.await.unwrap();
    let ids = acknowledged.lock().unwrap().clone();
    assert!(answered.iter().any(|ok| !ok), "the kill interrupted bookings in flight");
    let second = Process::start(&url, &[]);
    let lost: Vec<String> = futures_util::stream::iter(ids.iter().cloned())
        .map(|id| {
            let req = client.post(second.url("/engagement/v3/callbacks/retrieve")).header("x-api-key", &key);
            async move {
                let status = req.json(&json!({ "id": id })).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                (status != 200).then_some(id)
            }
        })
        .buffer_unordered(16)
        .filter_map(|lost| async move { lost })
        .collect()
        .await;
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged bookings lost after kill -9, e.g. {:?}",
        lost.len(),
        ids.len(),
        &lost[..lost.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9_on_sqlite() {
    bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_acknowledged_while_batches_are_in_flight_survive_kill_9_on_postgres() {
    bookings_acknowledged_while_batches_are_in_flight_survive_kill_9(Backend::Postgres).await;
}

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
    let off = Process::start(&url, &[("RINGBACK__MONITOR__DISPATCH", "none"), ("RINGBACK__MONITOR__TICK_MS", "100")]);
    let ready: Value = client.get(off.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["dependencies"]["orsRedis"], "off", "{ready}");
    // It claims nothing: a callback due in a second is still SCHEDULED long after.
    let key = provision(&off, &client).await;
    let due = crate::helpers::in_seconds(1);
    let body = json!({ "serviceName": "sales", "phoneNumber": "+14155552671", "desiredTime": due });
    let h = [("x-api-key", key.as_str())];
    let (status, booked) = send(&client, Method::POST, off.url("/engagement/v3/callbacks/create"), &h, body).await;
    assert_eq!(status, 200, "{booked}");
    tokio::time::sleep(Duration::from_secs(3)).await;
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
    child.kill().ok();
    child.wait().ok();
}

pub fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
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
            ["REDIS_CONNECTION", "ORS_REDIS_STATUS", "GES_HEALTH"].iter().all(|g| gauge(&m, g) == Some(value))
        }
    };
    crate::helpers::eventually(10, "gauges up", all_are(0.0)).await;
    let m = scrape().await;
    assert_eq!(gauge(&m, "POSTGRES_STATUS"), None, "not configured: no gauge");
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

/// 20,000 random (well-formed) API keys at full speed from 127.0.0.1, while a valid key is used
/// from the same address: the valid key keeps succeeding without another database lookup; the
/// flood's lookups stop at the per-address allowance; every flood request is a counted 401. Own
/// process, so the lookup counters are this test's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_keys_costs_bounded_lookups_and_never_locks_out_a_valid_key() {
    use futures_util::StreamExt;
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Sqlite, &dir).await;
    let app = Process::start(&url, &[("RINGBACK__HTTP__WORKERS", "2")]);
    let client = reqwest::Client::new();
    let key = provision(&app, &client).await;
    let list = app.url("/engagement/v3/callbacks?limit=1");
    let valid = |client: reqwest::Client, list: String, key: String| async move {
        client.get(list).header("x-api-key", key).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(valid(client.clone(), list.clone(), key.clone()).await, 200);

    let started = Instant::now();
    let flood = futures_util::stream::iter(0..20_000)
        .map(|_| {
            let random: String =
                rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(32).map(char::from).collect();
            valid(client.clone(), list.clone(), format!("rb_{random}"))
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>();
    let steady = async {
        let mut answers = Vec::new();
        while started.elapsed() < Duration::from_secs(3) || answers.len() < 20 {
            answers.push(valid(client.clone(), list.clone(), key.clone()).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answers
    };
    let (flooded, steady) = tokio::join!(flood, steady);
    let elapsed = started.elapsed();
    assert!(flooded.iter().all(|s| *s == 401), "every random key is a 401");
    assert!(steady.iter().all(|s| *s == 200), "the valid key keeps working: {steady:?}");

    let metrics = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| crate::helpers::metric_value(&metrics, series);
    assert_eq!(value(r#"ges_api_key_lookups_total{result="valid"}"#), 1.0, "the valid key was looked up once");
    let unknown = value(r#"ges_api_key_lookups_total{result="unknown"}"#);
    // 60 per minute per address, all of it available as a burst.
    let allowed = 60.0 + elapsed.as_secs_f64() + 1.0;
    assert!((1.0..=allowed).contains(&unknown), "{unknown} lookups of unknown keys in {elapsed:?} (allowed {allowed})");
    assert_eq!(value("ges_api_key_lookups_refused_total") + unknown, 20_000.0, "the rest were refused without one");
    let counted_401: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ges_http_failed_requests_total{") && l.contains(r#"httpCode="401""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted_401, 20_000.0, "the flood shows in the 401 counters the alerts read");

    // An admin change makes this replica read every key again; the valid key is looked up anew
    // from an address far past its unknown-key allowance, and is not refused.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("authorization", auth.as_str())];
    assert_eq!(send(&client, Method::PUT, app.url("/admin/v1/tenants/acme"), &admin, json!({})).await.0, 200);
    assert_eq!(
        valid(client.clone(), list.clone(), key.clone()).await,
        200,
        "a known key is never refused by the limit"
    );
    let metrics = client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(crate::helpers::metric_value(&metrics, r#"ges_api_key_lookups_total{result="valid"}"#), 2.0);
}
