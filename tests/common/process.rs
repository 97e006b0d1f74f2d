//! The real binary as a child process (`Process`), and small clients of its HTTP API, for the
//! tests that need a process of their own (its own metrics, logs, exit codes, `kill -9`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::ADMIN_TOKEN;

pub struct Process {
    child: Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
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
        let lines = collect_lines(child.stdout.take().unwrap());
        let errors = collect_lines(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = lines.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["message"] == "ringback listening").then(|| v["internal"].as_u64()).flatten()
            });
            if let Some(port) = port {
                return Process { child, port: port as u16, lines, errors };
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("ringback exited with {status}: {}", errors.lock().unwrap().join("\n"));
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

    /// What the process wrote on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// Read a child's output line by line on a thread of its own (so a full pipe never blocks it).
fn collect_lines(output: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
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

/// Wait until every process has finished `n` more dispatch passes of its monitor than now (read
/// from its own `/metrics`): a test that proves nothing happens waits for the passes that would
/// have done it, not for a guess of time.
pub async fn dispatch_passes(client: &reqwest::Client, processes: &[Process], n: f64) {
    const SERIES: &str = r#"ges_monitor_cycle_duration_seconds_count{pass="dispatch"}"#;
    let passes = |p: &Process| {
        let url = p.url("/metrics");
        async move {
            let text = client.get(url).send().await.unwrap().text().await.unwrap();
            crate::helpers::metric_value(&text, SERIES).unwrap_or(0.0)
        }
    };
    for p in processes {
        let target = passes(p).await + n;
        crate::helpers::eventually(60, &format!("{n} more dispatch passes"), || async { passes(p).await >= target })
            .await;
    }
}
