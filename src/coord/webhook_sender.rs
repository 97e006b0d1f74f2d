//! Outbound webhook requests (issue 24), safe to point at the internet: `https` only (but for
//! `webhooks.allow_http` hosts), every address checked before connecting — an IP literal here, a
//! name by our own resolver, whose checked answer is the address connected to (no second lookup
//! that DNS could change in between) — no environment proxy, no redirects followed, at most 4 KB
//! of an answer read, connect and total timeouts. Signed per Standard Webhooks
//! (`domain::webhook`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::{at_rest, signature_header, timestamp_header, OutboundRules, SecretBox};

/// The most of an answer that is read (enough for `{"acknowledged": true}` and an error text).
const MAX_ANSWER_BYTES: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A 2xx; `acknowledged` when its JSON body is `{"acknowledged": true}`.
    Delivered { status: u16, acknowledged: bool },
    /// Nothing was sent: refused connection, DNS failure, a refused address.
    NotSent(String),
    /// Sent, answer lost (a timeout, a broken connection): the receiver may have it.
    InDoubt(String),
    /// The receiver answered, not with a 2xx (a redirect is not followed).
    Refused { status: u16 },
}

impl Sent {
    /// The `result` label of `ges_webhook_deliveries_total`.
    pub fn as_label(&self) -> &'static str {
        match self {
            Sent::Delivered { .. } => "delivered",
            Sent::NotSent(_) => "not_sent",
            Sent::InDoubt(_) => "in_doubt",
            Sent::Refused { .. } => "refused",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Sent::Delivered { status, .. } | Sent::Refused { status } => Some(*status),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Sent::NotSent(e) | Sent::InDoubt(e) => Some(e.clone()),
            Sent::Refused { status } => Some(format!("HTTP {status}")),
            Sent::Delivered { .. } => None,
        }
    }
}

/// One signed request.
pub struct Outgoing<'a> {
    pub url: &'a str,
    /// `webhook-id`: the same for every re-send of the same message, so receivers can drop repeats.
    pub webhook_id: &'a str,
    pub body: Vec<u8>,
    /// The endpoint's secrets as stored (sealed or not).
    pub secrets: Vec<&'a str>,
    pub timeout: Duration,
    /// W3C `traceparent` of a hand-off (issue 25), sent as that header.
    pub traceparent: Option<&'a str>,
}

#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    rules: Arc<OutboundRules>,
    /// Endpoint secrets at rest are sealed in it, when configured.
    secrets: Option<SecretBox>,
}

/// Resolves names and keeps only the addresses the rules allow; none left is a failure to connect.
struct CheckedResolver {
    rules: Arc<OutboundRules>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| rules.may_reach(a.ip())).collect();
            if allowed.is_empty() {
                let refused = format!("{host} resolves only to private, loopback, link-local or reserved addresses");
                return Err(refused.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl WebhookSender {
    pub fn new(rules: OutboundRules, secrets: Option<SecretBox>) -> anyhow::Result<WebhookSender> {
        let rules = Arc::new(rules);
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .dns_resolver(Arc::new(CheckedResolver { rules: rules.clone() }))
            .user_agent(concat!("Ringback/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookSender { client, rules, secrets })
    }

    /// Where requests may go (`webhooks.allow_http`, `webhooks.allowed_networks`).
    pub fn rules(&self) -> &OutboundRules {
        &self.rules
    }

    /// A secret as it is to be stored (sealed when a key is configured).
    pub fn seal(&self, secret: &str) -> String {
        at_rest(self.secrets.as_ref(), secret)
    }

    /// Send one request; what became of it, and how long it took.
    pub async fn send(&self, out: &Outgoing<'_>) -> (Sent, Duration) {
        let started = Instant::now();
        let sent = self.try_send(out).await;
        (sent, started.elapsed())
    }

    async fn try_send(&self, out: &Outgoing<'_>) -> Sent {
        // Checked again at every delivery (an IP literal here, a name by the resolver): the rules
        // or the URL may have changed since the PUT.
        let url = match self.rules.check_url(out.url) {
            Ok(url) => url,
            Err(problem) => return Sent::NotSent(format!("url {problem}")),
        };
        let opened: Result<Vec<String>, String> = match &self.secrets {
            Some(b) => out.secrets.iter().map(|s| b.open(s)).collect(),
            None => Ok(out.secrets.iter().map(|s| s.to_string()).collect()),
        };
        let secrets = match opened {
            Ok(secrets) => secrets,
            Err(problem) => return Sent::NotSent(problem),
        };
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let now = crate::time::now();
        let request = self
            .client
            .post(url)
            .timeout(out.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", out.webhook_id)
            .header("webhook-timestamp", timestamp_header(now))
            .header("webhook-signature", signature_header(&secrets, out.webhook_id, now, &out.body))
            .body(out.body.clone());
        let request = match out.traceparent {
            Some(traceparent) => request.header(crate::telemetry::trace_context::HEADER, traceparent),
            None => request,
        };
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Sent::NotSent(error_text(&e)),
            Err(e) => return Sent::InDoubt(error_text(&e)),
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Sent::Refused { status };
        }
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - answer.len())]),
                _ => break,
            }
        }
        let acknowledged = serde_json::from_slice::<serde_json::Value>(&answer)
            .is_ok_and(|v| v.get("acknowledged") == Some(&serde_json::Value::Bool(true)));
        Sent::Delivered { status, acknowledged }
    }
}

/// The error with its causes (reqwest's own text is only the outermost).
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
