//! A slow or absent database is a fast 503, never a hang; service returns when it does. A small
//! TCP proxy between the app and PostgreSQL plays the outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{fresh_database, phone, Backend, TestApp};

pub struct ChaosProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl ChaosProxy {
    pub async fn start(upstream: String) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (cut2, links2) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    // Black hole: accept and never answer, like a database that stopped responding.
                    held.push(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        ChaosProxy { port, cut, links }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_a_fast_503_and_service_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let direct = fresh_database(Backend::Postgres, &dir).await;
    let upstream =
        crate::helpers::postgres_admin_url().split('@').nth(1).and_then(|h| h.split('/').next()).unwrap().to_string();
    let proxy = ChaosProxy::start(upstream.clone()).await;
    let via_proxy = direct.replace(&upstream, &format!("127.0.0.1:{}", proxy.port));
    let app = TestApp::spawn_with(
        Backend::Postgres,
        &[
            ("RINGBACK__DATABASE__URL", via_proxy.as_str()),
            ("RINGBACK__DATABASE__STATEMENT_TIMEOUT_MS", "1500"),
            ("RINGBACK__DATABASE__ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let key = app.tenant_with_service("acme", "sales", json!({})).await;
    app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(1) })).await.expect(200, None);

    proxy.cut();
    for i in 0..3 {
        let started = Instant::now();
        let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(2 + i) })).await;
        let took = started.elapsed();
        // The key is cached, so the booking itself meets the dead database.
        r.expect(503, Some("UNAVAILABLE"));
        assert!(r.headers.get("retry-after").is_some());
        assert!(took < Duration::from_secs(4), "503 took {took:?}");
    }
    let ready = app.client.get(format!("{}/health/ready", app.internal)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["dependencies"]["database"], "down");
    let live = app.client.get(format!("{}/health/live", app.internal)).send().await.unwrap();
    assert_eq!(live.status(), 200, "liveness does not follow the database");

    proxy.restore();
    let mut recovered = false;
    for _ in 0..40 {
        let r = app.create(&key, json!({ "serviceName": "sales", "phoneNumber": phone(9) })).await;
        if r.status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "bookings resume without a restart");
    let listed = app.call(Method::GET, "/engagement/v3/callbacks", &[("x-api-key", &key)], None).await;
    assert_eq!(listed.body["data"]["items"].as_array().unwrap().len(), 2, "nothing half-written during the outage");
}
