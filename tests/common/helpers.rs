//! Test harness: the real application on loopback (port 0), against a fresh SQLite file or a
//! fresh PostgreSQL database per test, driven over real HTTP.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use ringback::{Application, Settings};
use serde_json::{json, Value};
use sqlx::Connection;

pub const ADMIN_TOKEN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the test Postgres lives (the CI machine runs one on 127.0.0.1:5432 with trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("RINGBACK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database URL for one test. Postgres being unreachable fails the test: a
/// conformance suite that silently skips a backend proves nothing.
pub async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("ringback.db").display()),
        Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let admin = postgres_admin_url();
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("PostgreSQL is required for this test and is unreachable at {admin}: {e} (the test command starts it)")
            });
            let name = format!("ringback_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            format!("{base}/{name}")
        }
    }
}

/// PostgreSQL without a Redis to hand over to refuses to start (`Settings::dispatch_problem`):
/// such a test replica hands nothing over (`monitor.dispatch = "none"`) unless the test says
/// otherwise. The setting to add, if any.
pub fn dispatch_default(database_url: &str, extra: &[(&str, &str)]) -> Option<(&'static str, &'static str)> {
    let decided = extra.iter().any(|(k, _)| {
        matches!(*k, "RINGBACK__REDIS__URL" | "RINGBACK__ORS_REDIS__URL" | "RINGBACK__MONITOR__DISPATCH")
    });
    (database_url.starts_with("postgres") && !decided).then_some(("RINGBACK__MONITOR__DISPATCH", "none"))
}

pub fn test_settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("RINGBACK__DATABASE__URL".into(), database_url.into()),
        ("RINGBACK__LISTEN__INTERNAL".into(), "127.0.0.1:0".into()),
        ("RINGBACK__LISTEN__EXTERNAL".into(), "127.0.0.1:0".into()),
        ("RINGBACK__ADMIN__TOKENS".into(), ADMIN_TOKEN.into()),
        ("RINGBACK__HTTP__WORKERS".into(), "2".into()),
        ("RINGBACK__HTTP__SHUTDOWN_TIMEOUT_SECONDS".into(), "2".into()),
        ("RINGBACK__DATABASE__MAX_CONNECTIONS".into(), "4".into()),
    ];
    if let Some((k, v)) = dispatch_default(database_url, extra) {
        env.push((k.into(), v.into()));
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(None, env).expect("test settings")
}

pub struct TestApp {
    /// The app's database, for tests that must change rows behind its back.
    pub database_url: String,
    pub internal: String,
    pub external: String,
    pub client: Client,
    pub stopper: ringback::app::Stopper,
    /// The app's state, for what only the process can tell (how many monitor passes ran).
    pub state: ringback::ops::AppState,
    _dir: tempfile::TempDir,
}

/// Which of the monitor's passes to wait for.
#[derive(Debug, Clone, Copy)]
pub enum Pass {
    Dispatch,
    Recovery,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(backend, &dir).await;
        let settings = test_settings(&database_url, extra);
        let settings_url = settings.database.url.clone();
        let app = Application::build(settings).await.expect("application builds");
        let internal = format!("http://127.0.0.1:{}", app.internal_port().expect("internal listener"));
        let external = format!("http://127.0.0.1:{}", app.external_port().expect("external listener"));
        let stopper = app.stopper();
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            database_url: settings_url,
            internal,
            external,
            // Idle connections are dropped well before the server's 5 s keep-alive closes them, so a
            // request never races the server's close on a reused connection (IncompleteMessage).
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            stopper,
            state,
            _dir: dir,
        }
    }

    /// Wait until this app's monitor has finished `n` more passes of `pass` than now: a test that
    /// proves nothing happens waits for the passes that would have done it, not for a guess of time.
    pub async fn monitor_passes(&self, pass: Pass, n: u64) {
        let counter = |p: Pass| {
            let passes = &self.state.monitor_passes;
            match p {
                Pass::Dispatch => passes.dispatch.load(std::sync::atomic::Ordering::Relaxed),
                Pass::Recovery => passes.recovery.load(std::sync::atomic::Ordering::Relaxed),
            }
        };
        let target = counter(pass) + n;
        eventually(60, &format!("{n} more {pass:?} passes"), || async { counter(pass) >= target }).await;
    }

    /// Any request on the internal listener; returns status, headers and the parsed body.
    pub async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Response {
        self.call_on(&self.internal, method, path, headers, body).await
    }

    pub async fn call_on(
        &self,
        base: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        Response::from(req.send().await.expect("request sent")).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.call(method, &format!("/admin/v1{path}"), &[("authorization", &auth)], body).await
    }

    pub async fn public(&self, key: &str, path: &str, body: Value) -> Response {
        self.call(Method::POST, &format!("/engagement/v3{path}"), &[("x-api-key", key)], Some(body)).await
    }

    /// A tenant with one service and a fresh key; returns the key.
    pub async fn tenant_with_service(&self, tenant: &str, service: &str, config: Value) -> String {
        let r = self.admin(Method::PUT, &format!("/tenants/{tenant}"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = self.admin(Method::PUT, &format!("/tenants/{tenant}/services/{service}"), Some(config)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = self.admin(Method::POST, &format!("/tenants/{tenant}/api-keys"), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["data"]["key"].as_str().expect("key").to_string()
    }

    pub async fn create(&self, key: &str, body: Value) -> Response {
        self.public(key, "/callbacks/create", body).await
    }

    pub async fn retrieve(&self, key: &str, id: &str) -> Response {
        self.public(key, "/callbacks/retrieve", json!({ "id": id })).await
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.internal)).send().await.expect("scrape").text().await.expect("text")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stopper.request_stop();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    pub async fn from(r: reqwest::Response) -> Response {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, headers, body, text }
    }

    pub fn reason(&self) -> &str {
        self.body["status"]["reason"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16, reason: Option<&str>) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        if let Some(reason) = reason {
            assert_eq!(self.reason(), reason, "body: {}", self.text);
        }
        // Every answer is an envelope whose status.code is the HTTP status.
        assert_eq!(self.body["status"]["code"], status, "envelope: {}", self.text);
        self
    }

    pub fn id(&self) -> String {
        self.body["data"]["id"].as_str().expect("data.id").to_string()
    }
}

/// Generate one test per backend running the same body (the conformance suite). A body takes
/// the running `TestApp`; with `backend:` first, bodies take the `Backend` and start what they
/// need themselves (several apps, a binary, a database of their own).
#[macro_export]
macro_rules! on_both_backends {
    (backend: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await).await;
                }
            }
        )*
    };
}

/// An instant `s` seconds from now, as a `desiredTime`.
pub fn in_seconds(s: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(s)).to_string()
}

/// A phone number unique within a test run (valid US numbers in the 415 area).
pub fn phone(n: u32) -> String {
    format!("+1415{:07}", 2_000_000 + (n % 8_000_000))
}

/// A Redis server of the test's own on a free loopback port, so stopping it disturbs nothing else.
pub struct RedisServer {
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    /// On a free port. The port is free when chosen but may be taken (by another test's listener)
    /// before redis-server binds it; then redis-server exits and another port is tried, rather
    /// than the test talking to whatever took the port.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            if let Some(server) = Self::try_start_on(port) {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    pub fn start_on(port: u16) -> RedisServer {
        Self::try_start_on(port).unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
    }

    /// Started, and the server answering PING on `port` is this child (not another process).
    fn try_start_on(port: u16) -> Option<RedisServer> {
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is required for this test (the test command installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return None; // it could not bind the port
            }
            if answers_ping(port) && child.try_wait().ok().flatten().is_none() {
                return Some(RedisServer { port, child });
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis (not any listener) answers on `port`.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0_u8; 7];
    conn.write_all(b"PING\r\n").is_ok() && conn.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An instant `days` from today at a local wall-clock time in `tz`, as ISO 8601 with offset.
pub fn local_time(days: i64, hh_mm: &str, tz: &str) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap();
    let today = jiff::Timestamp::now().to_zoned(zone.clone()).date();
    let date = today.checked_add(jiff::Span::new().days(days)).unwrap();
    let (h, m) = hh_mm.split_once(':').unwrap();
    let dt = date.at(h.parse().unwrap(), m.parse().unwrap(), 0, 0);
    zone.to_ambiguous_zoned(dt).compatible().unwrap().strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub fn utc_ms(iso: &str) -> i64 {
    iso.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The value of one exact series, or `None` when it is not exposed (so "registered at 0" can
/// only pass when the series is there).
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    let line = metrics.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    Some(line.rsplit(' ').next()?.parse().unwrap_or_else(|_| panic!("not a number: {line}")))
}

pub const INTERNAL_TOKEN: &str = "test-internal-token";

/// An app on `backend` whose dispatch stream is a Redis of its own; fast monitor ticks.
pub async fn app_with_stream(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, RedisServer) {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut env = vec![
        ("RINGBACK__REDIS__URL", url.as_str()),
        ("RINGBACK__INTERNAL__TOKENS", INTERNAL_TOKEN),
        ("RINGBACK__MONITOR__TICK_MS", "200"),
    ];
    env.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &env).await, redis)
}

/// Stream entries as (id, attempt, type).
pub async fn stream_entries(redis_url: &str) -> Vec<(String, i64, String)> {
    let mut conn = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("the stream's Redis at {redis_url} does not answer: {e}"));
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("NewCallbackStream")
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("XRANGE on {redis_url}: {e}"));
    reply
        .ids
        .iter()
        .map(|e| {
            let get =
                |k: &str| e.map.get(k).and_then(|v| redis::from_redis_value::<String>(v).ok()).unwrap_or_default();
            (get("id"), get("attempt").parse().unwrap_or(0), get("type"))
        })
        .collect()
}

/// Run statements on the app's database behind its back (rows an older version or a person left).
pub async fn sql(app: &TestApp, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.expect("connect to the app's database");
    for statement in statements {
        sqlx::Executor::execute(&mut conn, *statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// Poll until `check` holds (or panic after `seconds`).
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tests that run several service processes take this lock, so two of them never share the
/// machine's two cores at once (in-process tests still run beside them).
pub static MULTI_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Fire `n` creates at once (distinct numbers) against one or more base URLs, round robin.
pub async fn concurrent_bookings_on(
    bases: &[String],
    key: &str,
    service: &str,
    when: &str,
    n: u32,
    first_number: u32,
) -> (u32, u32) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let requests = (0..n).map(|i| {
        let url = format!("{}/engagement/v3/callbacks/create", bases[i as usize % bases.len()]);
        let body = json!({ "serviceName": service, "phoneNumber": phone(first_number + i), "desiredTime": when });
        let req =
            client.post(url).header("x-api-key", key).header("content-type", "application/json").body(body.to_string());
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body["status"]["reason"].as_str().unwrap_or("").to_string())
        }
    });
    let results = futures_util::future::join_all(requests).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count() as u32;
    let full = results.iter().filter(|(s, r)| *s == 429 && r == "SLOT_FULL").count() as u32;
    let other: Vec<_> =
        results.iter().filter(|(s, r)| !(*s == 200 || (*s == 429 && r == "SLOT_FULL"))).take(5).collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    (ok, full)
}

pub async fn concurrent_bookings(base: &str, key: &str, service: &str, when: &str, n: u32, first: u32) -> (u32, u32) {
    concurrent_bookings_on(&[base.to_string()], key, service, when, n, first).await
}
