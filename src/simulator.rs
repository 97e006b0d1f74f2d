//! The dialer simulator: a stand-in voice platform. It consumes the dispatch stream (a Redis
//! consumer group, or the in-process channel in `serve --demo`), drives each callback through
//! `QUEUED` (the acknowledgement) → `ROUTING` → `PROCESSING` → `COMPLETED` over the internal
//! API with configurable delays and outcome mix, and pushes queue statistics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::coord::stream::{message_field, Message};
use crate::telemetry::trace_context::HEADER;

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Base URL of Ringback's internal listener, e.g. `http://127.0.0.1:3050`.
    pub internal_url: String,
    pub token: String,
    pub ack_delay: Duration,
    pub routing_delay: Duration,
    pub processing_delay: Duration,
    pub completion_delay: Duration,
    /// Weights of: agent connected, customer unreachable, no answer.
    pub outcomes: [u32; 3],
    pub stats_every: Duration,
    /// Callbacks driven at once.
    pub concurrency: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            internal_url: "http://127.0.0.1:3050".into(),
            token: String::new(),
            ack_delay: Duration::from_millis(200),
            routing_delay: Duration::from_secs(2),
            processing_delay: Duration::from_secs(3),
            completion_delay: Duration::from_secs(5),
            outcomes: [80, 10, 10],
            stats_every: Duration::from_secs(10),
            concurrency: 64,
        }
    }
}

pub enum Source {
    Redis { url: String, stream: String, group: String, consumer: String },
    Local(mpsc::UnboundedReceiver<Message>),
}

#[derive(Clone)]
struct Driver {
    config: Arc<SimulatorConfig>,
    client: reqwest::Client,
    limit: Arc<Semaphore>,
    /// Acknowledgements have their own budget: a platform confirms receipt at once, whatever
    /// else it is busy with.
    acks: Arc<Semaphore>,
    /// (tenant, virtual queue) → callbacks in progress.
    queues: Arc<Mutex<HashMap<(String, String), i64>>>,
}

/// Run until the source ends (or forever, for Redis).
pub async fn run(source: Source, config: SimulatorConfig) -> anyhow::Result<()> {
    let driver = Driver {
        limit: Arc::new(Semaphore::new(config.concurrency.max(1))),
        acks: Arc::new(Semaphore::new(config.concurrency.max(1))),
        client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        config: Arc::new(config),
        queues: Arc::default(),
    };
    tokio::spawn(driver.clone().push_stats());
    match source {
        Source::Local(mut rx) => {
            while let Some(message) = rx.recv().await {
                driver.dispatch(message).await;
            }
            Ok(())
        }
        Source::Redis { url, stream, group, consumer } => {
            consume_redis(&driver, &url, &stream, &group, &consumer).await
        }
    }
}

async fn consume_redis(driver: &Driver, url: &str, stream: &str, group: &str, consumer: &str) -> anyhow::Result<()> {
    use redis::streams::{StreamReadOptions, StreamReadReply};
    use redis::AsyncCommands;
    let client = redis::Client::open(url)?;
    loop {
        let mut conn = match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "simulator cannot reach Redis; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(stream, group, "0").await;
        if let Err(e) = created {
            if !e.to_string().contains("BUSYGROUP") {
                tracing::warn!(error = %e, "cannot create the consumer group; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let options = StreamReadOptions::default().group(group, consumer).count(200).block(1000);
        loop {
            let reply: redis::RedisResult<StreamReadReply> = conn.xread_options(&[stream], &[">"], &options).await;
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator lost Redis; reconnecting");
                    break;
                }
            };
            for key in reply.keys {
                for entry in key.ids {
                    let message: Message = entry
                        .map
                        .iter()
                        .map(|(k, v)| (k.clone(), redis::from_redis_value::<String>(v).unwrap_or_default()))
                        .collect();
                    driver.dispatch(message).await;
                    let _: redis::RedisResult<i64> = conn.xack(stream, group, &[&entry.id]).await;
                }
            }
        }
    }
}

fn field<'a>(m: &'a Message, name: &str) -> &'a str {
    message_field(m, name).unwrap_or("")
}

impl Driver {
    async fn dispatch(&self, message: Message) {
        if field(&message, "type") != "callback.submit" {
            return; // cancels: the simulator simply stops caring about that callback
        }
        let Ok(ack_permit) = self.acks.clone().acquire_owned().await else { return };
        let driver = self.clone();
        tokio::spawn(async move {
            let acknowledged = driver.acknowledge(&message).await;
            drop(ack_permit);
            if acknowledged {
                if let Ok(_permit) = driver.limit.clone().acquire_owned().await {
                    driver.drive(&message).await;
                }
            }
        });
    }

    /// `QUEUED` for this attempt: "the platform holds this callback".
    async fn acknowledge(&self, m: &Message) -> bool {
        if !self.config.ack_delay.is_zero() {
            tokio::time::sleep(self.config.ack_delay).await;
        }
        let attempt = field(m, "attempt").parse::<i64>().unwrap_or(0);
        let ewt = self.config.routing_delay.as_secs() as i64;
        let body = json!({ "state": "QUEUED", "attempt": attempt, "positionInQueue": 1, "estimatedWaitTime": ewt });
        self.report(m, &body).await == Some(200)
    }

    async fn drive(&self, m: &Message) {
        let attempt = field(m, "attempt").parse::<i64>().unwrap_or(0);
        let queue = (field(m, "tenant").to_string(), field(m, "virtualQueue").to_string());
        *self.queues.lock().unwrap_or_else(|p| p.into_inner()).entry(queue.clone()).or_default() += 1;
        let c = &self.config;
        let outcome = {
            let total: u32 = c.outcomes.iter().sum::<u32>().max(1);
            let roll = rand::thread_rng().gen_range(0..total);
            if roll < c.outcomes[0] {
                0
            } else if roll < c.outcomes[0] + c.outcomes[1] {
                1
            } else {
                2
            }
        };
        let ewt = c.routing_delay.as_secs() as i64;
        let mut steps: Vec<(Duration, Value)> = vec![
            (
                c.ack_delay,
                json!({ "state": "QUEUED", "attempt": attempt, "positionInQueue": 1, "estimatedWaitTime": ewt }),
            ),
            (c.routing_delay, json!({ "state": "ROUTING", "attempt": attempt })),
        ];
        match outcome {
            0 => {
                steps.push((c.processing_delay, json!({ "state": "PROCESSING", "attempt": attempt })));
                steps.push((
                    c.completion_delay,
                    json!({ "state": "COMPLETED", "reason": "AGENT_CONNECTED", "attempt": attempt }),
                ));
            }
            1 => steps.push((
                c.completion_delay,
                json!({ "state": "COMPLETED", "reason": "FAIL_CALL_TO_CUSTOMER", "attempt": attempt }),
            )),
            _ => steps.push((
                c.completion_delay,
                json!({ "state": "COMPLETED", "reason": "NOT_AVAILABLE", "attempt": attempt }),
            )),
        }
        for (delay, body) in steps {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match self.report(m, &body).await {
                Some(200) => {}
                // 409: the callback moved on (cancelled, re-claimed); stop driving it.
                Some(_) | None => break,
            }
        }
        if let Some(n) = self.queues.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&queue) {
            *n -= 1;
        }
    }

    /// Report a state of the hand-off `m`, in the hand-off's trace (its `traceparent`), as a
    /// platform that speaks W3C Trace Context does.
    async fn report(&self, m: &Message, body: &Value) -> Option<u16> {
        let url = format!("{}/internal/v1/callbacks/{}/state", self.config.internal_url, field(m, "id"));
        for _ in 0..3 {
            let mut request = self.client.post(&url).bearer_auth(&self.config.token).json(body);
            if let Some(traceparent) = message_field(m, HEADER) {
                request = request.header(HEADER, traceparent);
            }
            match request.send().await {
                Ok(r) => return Some(r.status().as_u16()),
                Err(e) => {
                    tracing::debug!(error = %e, "simulator report failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        None
    }

    async fn push_stats(self) {
        let mut ticker = tokio::time::interval(self.config.stats_every);
        loop {
            ticker.tick().await;
            let queues: Vec<((String, String), i64)> =
                self.queues.lock().map(|q| q.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default();
            for ((tenant, vq), waiting) in queues {
                let url = format!("{}/internal/v1/queues/{tenant}/{vq}/stats", self.config.internal_url);
                let body =
                    json!({ "ewt": self.config.routing_delay.as_secs(), "agentsLoggedIn": 5, "callsWaiting": waiting });
                let _ = self.client.put(url).bearer_auth(&self.config.token).json(&body).send().await;
            }
        }
    }
}

/// What the platform heard for each inbound call it placed for one call-in request.
#[derive(Debug, Clone)]
pub struct InboundCalls {
    /// Status of the call with a wrong access code (only when the request has a code); 404 is right.
    pub wrong_code: Option<u16>,
    /// Status and body of the call with the request's own code (and caller).
    pub right_code: (u16, Value),
}

/// Place inbound calls for a call-in request as Ringback issued it (`data` of create): first one
/// with a wrong code when the request has a code, then one with the right code from
/// `fromPhoneNumber`. The wrong code differs in its first digit only, so it keeps the digit count
/// (another pending request on a shared number could hold it; the simulator does not care).
pub async fn place_inbound_calls(
    client: &reqwest::Client,
    internal_url: &str,
    token: &str,
    request: &Value,
) -> anyhow::Result<InboundCalls> {
    let to = request["toPhoneNumber"].as_str().ok_or_else(|| anyhow::anyhow!("the request has no toPhoneNumber"))?;
    let from = request.get("fromPhoneNumber").cloned().unwrap_or(Value::Null);
    let code = request["accessCode"].as_i64();
    let url = format!("{}/internal/v1/call-in/match", internal_url.trim_end_matches('/'));
    let call = |code: Option<i64>| {
        let body = json!({ "toPhoneNumber": to, "accessCode": code, "fromPhoneNumber": from });
        client.post(&url).bearer_auth(token).json(&body).send()
    };
    let wrong_code = match code {
        Some(c) => Some(call(Some(wrong_code(c))).await?.status().as_u16()),
        None => None,
    };
    let answer = call(code).await?;
    let status = answer.status().as_u16();
    let body = answer.json::<Value>().await.unwrap_or(Value::Null);
    Ok(InboundCalls { wrong_code, right_code: (status, body) })
}

/// The code with its first digit moved on by one (1–9 stays 1–9).
fn wrong_code(code: i64) -> i64 {
    let text = code.to_string();
    let first = text.as_bytes().first().map(|b| i64::from(b - b'0')).unwrap_or(1);
    let scale = 10_i64.pow(text.len().saturating_sub(1) as u32);
    code - first * scale + (first % 9 + 1) * scale
}

#[cfg(test)]
mod tests {
    use super::wrong_code;

    #[test]
    fn a_wrong_code_keeps_the_digit_count_and_differs() {
        assert_eq!(wrong_code(1234), 2234);
        assert_eq!(wrong_code(9876), 1876);
        assert_eq!(wrong_code(7), 8);
    }
}
