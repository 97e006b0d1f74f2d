//! The dispatch stream (api.md § Dispatch contract): hand-offs written to a Redis stream on the
//! "ORS Redis", capped with `XADD MAXLEN ~`. Without Redis (the embedded default) hand-offs go to
//! an in-process channel (the built-in dialer simulator) or are only logged.
//!
//! Failures are told apart because the monitor treats them differently: a Redis that cannot be
//! reached marks the stream down (nothing is spent while it is down); a Redis that answers with
//! an error counts a failed hand-off.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;
use tokio::sync::mpsc;

use crate::coord::redis::COMMAND_TIMEOUT;

/// One stream entry: ordered field/value pairs.
pub type Message = Vec<(String, String)>;

/// A field of an entry, if it has it.
pub fn message_field<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
}

/// What became of a batch of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Redis answered for every entry: written, or refused with its error (a failed hand-off).
    Answered(Vec<Result<(), String>>),
    /// Redis could not be reached before the batch was sent: none of it is in the stream.
    Unreachable { error: String },
    /// The batch was sent but its answer was lost (a timeout or a connection that broke
    /// mid-pipeline): any entry may or may not be in the stream. `since` is the newest entry id
    /// this replica had seen before sending, from where `read_back` can find out.
    InDoubt { error: String, since: Option<String> },
}

/// What `read_back` found of the entries in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// These (id, attempt) hand-offs are in the stream; every other one asked about is not.
    Found(HashSet<(String, i64)>),
    /// The stream answered but cannot settle it (no baseline, trimmed past it, too far to scan).
    Undecidable(String),
    /// The stream did not answer: ask again when it is back.
    Unreachable(String),
}

/// At most this many entries are read back to settle one batch in doubt.
const READ_BACK_LIMIT: usize = 100_000;
const READ_BACK_PAGE: usize = 1_000;

impl BatchResult {
    fn all_written(n: usize) -> Self {
        BatchResult::Answered(vec![Ok(()); n])
    }
}

/// One pipelined round trip for a whole batch may take this long.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum HandOffStream {
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
    /// The newest entry id this replica has seen in the stream (its own writes' ids, or the
    /// stream's last id read before its first write): where a read-back starts.
    last_seen: Arc<Mutex<Option<String>>>,
}

impl RedisStream {
    pub fn new(pool: Pool, stream: String, max_len: u64) -> Self {
        RedisStream {
            pool,
            stream,
            max_len,
            down: Arc::default(),
            up_since: Arc::new(Mutex::new(Instant::now())),
            last_seen: Arc::default(),
        }
    }

    pub fn stream_name(&self) -> &str {
        &self.stream
    }
}

impl HandOffStream {
    pub fn is_down(&self) -> bool {
        match self {
            HandOffStream::Redis(r) => r.down.load(Ordering::SeqCst),
            _ => false,
        }
    }

    /// How long the stream has been reachable without interruption.
    pub fn up_for(&self) -> Duration {
        match self {
            HandOffStream::Redis(r) if r.down.load(Ordering::SeqCst) => Duration::ZERO,
            HandOffStream::Redis(r) => r.up_since.lock().map(|t| t.elapsed()).unwrap_or(Duration::ZERO),
            _ => Duration::MAX,
        }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self, HandOffStream::Redis(_))
    }

    /// The dispatch-stream Redis pool, when the stream is in Redis (for the pool gauges).
    pub fn pool(&self) -> Option<&Pool> {
        match self {
            HandOffStream::Redis(r) => Some(&r.pool),
            _ => None,
        }
    }

    /// Write a batch of entries.
    pub async fn publish(&self, messages: &[Message]) -> BatchResult {
        match self {
            HandOffStream::Redis(r) => r.publish(messages).await,
            HandOffStream::Local(tx) => {
                for m in messages {
                    if tx.send(m.clone()).is_err() {
                        return BatchResult::Unreachable { error: "the in-process simulator stopped".into() };
                    }
                }
                BatchResult::all_written(messages.len())
            }
            HandOffStream::LogOnly => {
                for m in messages {
                    let id = m.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or("");
                    tracing::debug!(callbackId = %id, "hand-off logged (no dispatch stream configured)");
                }
                BatchResult::all_written(messages.len())
            }
        }
    }

    /// Which of `wanted` (id, attempt) submit entries a batch in doubt really wrote, reading the
    /// stream from `since` on. Only the Redis stream can be in doubt.
    pub async fn read_back(&self, since: Option<&str>, wanted: &[(String, i64)]) -> ReadBack {
        match (self, since) {
            (HandOffStream::Redis(r), Some(since)) => r.read_back(since, wanted).await,
            (HandOffStream::Redis(_), None) => {
                ReadBack::Undecidable("no stream position was known before the write".into())
            }
            _ => ReadBack::Found(HashSet::new()),
        }
    }

    /// Delete the entries of callbacks `ids` from the dispatch stream (an erased number's, issue 27):
    /// the whole stream is read, a page at a time (it is capped at `max_len` entries). How many.
    pub async fn forget(&self, ids: &HashSet<String>) -> anyhow::Result<u64> {
        let HandOffStream::Redis(r) = self else { return Ok(0) };
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = r.pool.get().await?;
        let (mut cursor, mut deleted) = ("-".to_string(), 0);
        loop {
            let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&r.stream)
                .arg(&cursor)
                .arg("+")
                .arg("COUNT")
                .arg(READ_BACK_PAGE)
                .query_async(&mut conn)
                .await?;
            let full = page.ids.len() == READ_BACK_PAGE;
            let mut doomed = Vec::new();
            for entry in page.ids {
                // The cancel an erasure itself sends the platform carries no number: it stays.
                let erased_cancel = entry.get::<String>("phoneNumber").as_deref() == Some(crate::store::ERASED_NUMBER);
                if !erased_cancel && entry.get::<String>("id").is_some_and(|id| ids.contains(&id)) {
                    doomed.push(entry.id.clone());
                }
                cursor = format!("({}", entry.id);
            }
            if !doomed.is_empty() {
                deleted += redis::cmd("XDEL").arg(&r.stream).arg(&doomed).query_async::<u64>(&mut conn).await?;
            }
            if !full {
                return Ok(deleted);
            }
        }
    }

    /// Health check: PING. Brings a down stream back up when Redis answers.
    pub async fn check(&self) -> bool {
        match self {
            HandOffStream::Redis(r) => {
                let ok = crate::coord::redis::answers_ping(&r.pool, COMMAND_TIMEOUT).await;
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
            metrics::gauge!(crate::telemetry::catalogue::ORS_REDIS_STATUS).set(1.0);
        } else if !down && was {
            if let Ok(mut t) = self.up_since.lock() {
                *t = Instant::now();
            }
            tracing::info!("dispatch stream reachable again: the backlog drains");
            metrics::gauge!(crate::telemetry::catalogue::ORS_REDIS_STATUS).set(0.0);
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
            Ok(Err(e)) => return self.unreachable(e.to_string()),
            Err(_) => return self.unreachable("no connection to the dispatch stream in time".into()),
        };
        if self.last_seen().is_none() {
            // Before the first write: remember where the stream stands, so a write whose answer is
            // lost can be read back from here.
            match tokio::time::timeout(COMMAND_TIMEOUT, self.newest_id(&mut conn)).await {
                Ok(Ok(id)) => self.saw(id),
                Ok(Err(e)) if is_connection_error(&e) => return self.unreachable(e.to_string()),
                // Redis answered (a key of another type, say): write without a position; the
                // entries' own answers tell what happened, and a lost answer cannot be read back.
                Ok(Err(e)) => tracing::debug!(error = %e, "no stream position before the first write"),
                Err(_) => return self.unreachable("the dispatch stream did not answer in time".into()),
            }
        }
        let since = self.last_seen();
        let answer = tokio::time::timeout(
            BATCH_TIMEOUT,
            redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, messages.len()),
        )
        .await;
        let error = match answer {
            Ok(Ok(values)) => {
                self.set_down(false);
                let results = values
                    .into_iter()
                    .map(|v| match v {
                        redis::Value::ServerError(e) => Err(format!("{e:?}")),
                        written => {
                            if let Ok(id) = redis::from_redis_value::<String>(&written) {
                                self.saw(id);
                            }
                            Ok(())
                        }
                    })
                    .collect();
                return BatchResult::Answered(results);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the dispatch stream did not answer in time".into(),
        };
        self.set_down(true);
        BatchResult::InDoubt { error, since }
    }

    fn unreachable(&self, error: String) -> BatchResult {
        self.set_down(true);
        BatchResult::Unreachable { error }
    }

    fn last_seen(&self) -> Option<String> {
        self.last_seen.lock().ok().and_then(|l| l.clone())
    }

    /// Remember `id` when it is newer than what was seen (ids from one Redis only grow).
    fn saw(&self, id: String) {
        if let Ok(mut last) = self.last_seen.lock() {
            if last.as_deref().is_none_or(|l| entry_id_order(&id) > entry_id_order(l)) {
                *last = Some(id);
            }
        }
    }

    /// The stream's last entry id, or `0-0` for an empty or missing stream.
    async fn newest_id(&self, conn: &mut deadpool_redis::Connection) -> redis::RedisResult<String> {
        let newest: redis::streams::StreamRangeReply =
            redis::cmd("XREVRANGE").arg(&self.stream).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await?;
        Ok(newest.ids.into_iter().next().map(|e| e.id).unwrap_or_else(|| "0-0".to_string()))
    }

    async fn read_back(&self, since: &str, wanted: &[(String, i64)]) -> ReadBack {
        match tokio::time::timeout(BATCH_TIMEOUT, self.scan_from(since, wanted)).await {
            Ok(Ok(outcome)) => {
                self.set_down(false);
                outcome
            }
            Ok(Err(ReadBackError::Connection(e))) => ReadBack::Unreachable(e),
            // Redis answered with something a read-back cannot use: waiting would not help.
            Ok(Err(ReadBackError::Answer(e))) => ReadBack::Undecidable(e),
            Err(_) => ReadBack::Unreachable("the dispatch stream did not answer the read-back in time".into()),
        }
    }

    /// Page through the entries after `since` looking for the wanted submits.
    async fn scan_from(&self, since: &str, wanted: &[(String, i64)]) -> Result<ReadBack, ReadBackError> {
        let mut conn = self.pool.get().await.map_err(|e| ReadBackError::Connection(e.to_string()))?;
        // Trimming removes the oldest entries first: while `since` itself is still there, nothing
        // written after it has been trimmed away.
        let kept = if since == "0-0" {
            redis::cmd("XLEN").arg(&self.stream).query_async::<u64>(&mut conn).await? < self.max_len
        } else {
            let at: redis::streams::StreamRangeReply =
                redis::cmd("XRANGE").arg(&self.stream).arg(since).arg(since).query_async(&mut conn).await?;
            !at.ids.is_empty()
        };
        if !kept {
            return Ok(ReadBack::Undecidable("the stream was trimmed past the last known position".into()));
        }
        let wanted: HashSet<(&str, i64)> = wanted.iter().map(|(id, attempt)| (id.as_str(), *attempt)).collect();
        let mut found = HashSet::new();
        let (mut cursor, mut scanned) = (since.to_string(), 0_usize);
        loop {
            let page: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&self.stream)
                .arg(format!("({cursor}"))
                .arg("+")
                .arg("COUNT")
                .arg(READ_BACK_PAGE)
                .query_async(&mut conn)
                .await?;
            let full = page.ids.len() == READ_BACK_PAGE;
            scanned += page.ids.len();
            for entry in page.ids {
                let field = |name: &str| entry.get::<String>(name);
                if let (Some(kind), Some(id), Some(attempt)) = (field("type"), field("id"), field("attempt")) {
                    let attempt: i64 = attempt.parse().unwrap_or(-1);
                    if kind == "callback.submit" && wanted.contains(&(id.as_str(), attempt)) {
                        found.insert((id, attempt));
                    }
                }
                cursor = entry.id;
            }
            if !full || found.len() == wanted.len() {
                return Ok(ReadBack::Found(found));
            }
            if scanned >= READ_BACK_LIMIT {
                return Ok(ReadBack::Undecidable(format!("more than {READ_BACK_LIMIT} entries to read back")));
            }
        }
    }
}

/// Why a read-back stopped: the connection (try again later) or Redis's answer (give up).
enum ReadBackError {
    Connection(String),
    Answer(String),
}

impl From<redis::RedisError> for ReadBackError {
    fn from(e: redis::RedisError) -> Self {
        if is_connection_error(&e) {
            ReadBackError::Connection(e.to_string())
        } else {
            ReadBackError::Answer(e.to_string())
        }
    }
}

/// The connection failed (as opposed to Redis answering with an error).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// A stream entry id (`<ms>-<seq>`) as a comparable pair.
fn entry_id_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}
