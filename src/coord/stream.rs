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

/// What became of a batch of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Redis answered for every entry: written, or refused with its error (a failed hand-off).
    Answered(Vec<Result<(), String>>),
    /// Redis could not be reached (connection, timeout): the stream is down. When the batch was
    /// already sent, any entry of it may or may not have been written.
    Unreachable { error: String, maybe_written: bool },
}

impl BatchResult {
    fn all_written(n: usize) -> Self {
        BatchResult::Answered(vec![Ok(()); n])
    }
}

/// One pipelined round trip for a whole batch may take this long.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// The dispatch-stream Redis pool, when the stream is in Redis (for the pool gauges).
    pub fn pool(&self) -> Option<&Pool> {
        match self {
            Dispatcher::Redis(r) => Some(&r.pool),
            _ => None,
        }
    }

    /// Write a batch of entries.
    pub async fn publish(&self, messages: &[Message]) -> BatchResult {
        match self {
            Dispatcher::Redis(r) => r.publish(messages).await,
            Dispatcher::Local(tx) => {
                for m in messages {
                    if tx.send(m.clone()).is_err() {
                        return BatchResult::Unreachable {
                            error: "the in-process simulator stopped".into(),
                            maybe_written: false,
                        };
                    }
                }
                BatchResult::all_written(messages.len())
            }
            Dispatcher::LogOnly => {
                for m in messages {
                    let id = m.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or("");
                    tracing::debug!(callbackId = %id, "hand-off logged (no dispatch stream configured)");
                }
                BatchResult::all_written(messages.len())
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

    /// One pipelined round trip; each entry's own answer tells written from refused.
    async fn publish(&self, messages: &[Message]) -> BatchResult {
        if messages.is_empty() {
            return BatchResult::Answered(Vec::new());
        }
        let mut pipe = redis::pipe();
        for message in messages {
            let cmd = pipe.cmd("XADD").arg(&self.stream).arg("MAXLEN").arg("~").arg(self.max_len).arg("*");
            for (k, v) in message {
                cmd.arg(k).arg(v);
            }
        }
        let mut conn = match tokio::time::timeout(COMMAND_TIMEOUT, self.pool.get()).await {
            Ok(Ok(conn)) => conn,
            // Nothing was sent.
            Ok(Err(e)) => return self.unreachable(e.to_string(), false),
            Err(_) => return self.unreachable("no connection to the dispatch stream in time".into(), false),
        };
        let answer = tokio::time::timeout(
            BATCH_TIMEOUT,
            redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, messages.len()),
        )
        .await;
        match answer {
            Ok(Ok(values)) => {
                self.set_down(false);
                BatchResult::Answered(
                    values
                        .into_iter()
                        .map(|v| match v {
                            redis::Value::ServerError(e) => Err(format!("{e:?}")),
                            _ => Ok(()),
                        })
                        .collect(),
                )
            }
            Ok(Err(e)) => self.unreachable(e.to_string(), true),
            Err(_) => self.unreachable("the dispatch stream did not answer in time".into(), true),
        }
    }

    fn unreachable(&self, error: String, maybe_written: bool) -> BatchResult {
        self.set_down(true);
        BatchResult::Unreachable { error, maybe_written }
    }
}
