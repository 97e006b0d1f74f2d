//! The dispatch stream (api.md § Dispatch contract): hand-offs written to a Redis stream on the
//! "ORS Redis", capped with `XADD MAXLEN ~`. Without Redis (the embedded default) hand-offs go to
//! an in-process channel (the built-in dialer simulator) or are only logged.
//!
//! Failures are told apart because the monitor treats them differently: a Redis that cannot be
//! reached marks the stream down (nothing is spent while it is down); a Redis that answers with
//! an error counts a failed hand-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;
use tokio::sync::mpsc;

use crate::coord::redis::COMMAND_TIMEOUT;

/// One stream entry: ordered field/value pairs.
pub type Message = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Redis could not be reached (connection, timeout): the stream is down.
    Unreachable(String),
    /// Redis answered with an error: a failed hand-off.
    Refused(String),
}

#[derive(Clone)]
pub enum Dispatcher {
    Redis(RedisStream),
    /// In-process channel to the built-in dialer simulator (`serve --demo` without Redis).
    Local(mpsc::UnboundedSender<Message>),
    /// Neither Redis nor simulator: hand-offs are logged and count as published.
    LogOnly,
}

#[derive(Clone)]
pub struct RedisStream {
    pool: Pool,
    stream: String,
    max_len: u64,
    down: Arc<AtomicBool>,
    /// When the stream last came (back) up.
    up_since: Arc<Mutex<Instant>>,
}

fn classify(e: &redis::RedisError) -> PublishError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() {
        PublishError::Unreachable(e.to_string())
    } else {
        PublishError::Refused(e.to_string())
    }
}

impl RedisStream {
    pub fn new(pool: Pool, stream: String, max_len: u64) -> Self {
        RedisStream { pool, stream, max_len, down: Arc::default(), up_since: Arc::new(Mutex::new(Instant::now())) }
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }
}

impl Dispatcher {
    pub fn is_down(&self) -> bool {
        match self {
            Dispatcher::Redis(r) => r.down.load(Ordering::SeqCst),
            _ => false,
        }
    }

    /// How long the stream has been reachable without interruption.
    pub fn up_for(&self) -> Duration {
        match self {
            Dispatcher::Redis(r) if r.down.load(Ordering::SeqCst) => Duration::ZERO,
            Dispatcher::Redis(r) => r.up_since.lock().map(|t| t.elapsed()).unwrap_or(Duration::ZERO),
            _ => Duration::MAX,
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, Dispatcher::Redis(_))
    }

    /// Write entries in order; stops at the first failure and returns how many were written.
    pub async fn publish(&self, messages: &[Message]) -> (usize, Option<PublishError>) {
        match self {
            Dispatcher::Redis(r) => r.publish(messages).await,
            Dispatcher::Local(tx) => {
                for (i, m) in messages.iter().enumerate() {
                    if tx.send(m.clone()).is_err() {
                        return (i, Some(PublishError::Unreachable("the in-process simulator stopped".into())));
                    }
                }
                (messages.len(), None)
            }
            Dispatcher::LogOnly => {
                for m in messages {
                    let id = m.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or("");
                    tracing::debug!(callbackId = %id, "hand-off logged (no dispatch stream configured)");
                }
                (messages.len(), None)
            }
        }
    }

    /// Health check: PING. Brings a down stream back up when Redis answers.
    pub async fn check(&self) -> bool {
        match self {
            Dispatcher::Redis(r) => {
                let ok = tokio::time::timeout(COMMAND_TIMEOUT, async {
                    let mut conn = r.pool.get().await.ok()?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
                })
                .await
                .ok()
                .flatten()
                .is_some();
                r.set_down(!ok);
                ok
            }
            _ => true,
        }
    }
}

impl RedisStream {
    fn set_down(&self, down: bool) {
        let was = self.down.swap(down, Ordering::SeqCst);
        if down && !was {
            tracing::warn!("dispatch stream unreachable: hand-offs wait until it returns");
            metrics::gauge!("ORS_REDIS_STATUS").set(1.0);
        } else if !down && was {
            if let Ok(mut t) = self.up_since.lock() {
                *t = Instant::now();
            }
            tracing::info!("dispatch stream reachable again: the backlog drains");
            metrics::gauge!("ORS_REDIS_STATUS").set(0.0);
        }
    }

    async fn publish(&self, messages: &[Message]) -> (usize, Option<PublishError>) {
        let mut conn = match tokio::time::timeout(COMMAND_TIMEOUT, self.pool.get()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.set_down(true);
                return (0, Some(PublishError::Unreachable(e.to_string())));
            }
            Err(_) => {
                self.set_down(true);
                return (0, Some(PublishError::Unreachable("no connection in time".into())));
            }
        };
        for (i, message) in messages.iter().enumerate() {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&self.stream).arg("MAXLEN").arg("~").arg(self.max_len).arg("*");
            for (k, v) in message {
                cmd.arg(k).arg(v);
            }
            let written = tokio::time::timeout(COMMAND_TIMEOUT, cmd.query_async::<String>(&mut conn)).await;
            let error = match written {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => classify(&e),
                Err(_) => PublishError::Unreachable("XADD timed out".into()),
            };
            if matches!(error, PublishError::Unreachable(_)) {
                self.set_down(true);
            } else {
                self.set_down(false);
            }
            return (i, Some(error));
        }
        self.set_down(false);
        (messages.len(), None)
    }
}
