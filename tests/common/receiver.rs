//! A webhook receiver on loopback for the webhook tests: records every request (headers and raw
//! body) and answers as the test says — acknowledge, plain 200, a status, a redirect, or a sleep
//! before answering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub traceparent: Option<String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// A case for `scripts/verify_webhooks.py`.
    pub fn case(&self, secret: &str, body: &str, expect: &str) -> Value {
        json!({ "secret": secret, "body": body, "expect": expect,
                "headers": { "webhook-id": self.id, "webhook-timestamp": self.timestamp, "webhook-signature": self.signature } })
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 200 `{"acknowledged": true}`.
    Acknowledge,
    /// 200 `{}`.
    Ok,
    Status(u16),
    /// 302 to another path of this receiver (which would record a request if it were followed).
    Redirect,
    /// Sleep, then acknowledge.
    SleepThenAcknowledge(u64),
}

/// What the server's handler shares with the test.
type Shared = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<Answer>>);

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
    handle: actix_web::dev::ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    state.0.lock().unwrap().push(Received {
        id: header(&req, "webhook-id"),
        timestamp: header(&req, "webhook-timestamp"),
        signature: header(&req, "webhook-signature"),
        traceparent: req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(String::from),
        body: String::from_utf8_lossy(&body).to_string(),
    });
    let answer = *state.1.lock().unwrap();
    match answer {
        Answer::Acknowledge => HttpResponse::Ok().json(json!({ "acknowledged": true })),
        Answer::Ok => HttpResponse::Ok().json(json!({})),
        Answer::Status(code) => HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish(),
        Answer::Redirect => HttpResponse::Found().insert_header(("location", "/elsewhere")).finish(),
        Answer::SleepThenAcknowledge(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            HttpResponse::Ok().json(json!({ "acknowledged": true }))
        }
    }
}

impl Receiver {
    pub fn start(answer: Answer) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(Mutex::new(answer));
        let data = web::Data::new((received.clone(), answer.clone()));
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(2)
            .bind(("127.0.0.1", 0))
            .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url: format!("http://127.0.0.1:{port}/hooks"), received, answer, handle }
    }

    pub fn answer_with(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// Verify `cases` with the Standard Webhooks reference library; panics naming what failed.
pub fn verify_with_reference_library(cases: &[Value]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(cases).unwrap()).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(format!("{root}/scripts/webhook-verifier.sh"))
        .arg(file.path())
        .output()
        .expect("scripts/webhook-verifier.sh runs (the test command installs its venv)");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
