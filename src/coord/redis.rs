//! Redis connection pools (deadpool-redis) with every timeout set, so a dead Redis costs a
//! bounded wait, never a hung request.

use std::time::Duration;

use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};

/// How long one Redis command (including getting a connection) may take. 500 ms proved too short
/// on a loaded 2-core machine: a reachable Redis was taken for down and throttles went per-replica.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1000);

pub fn pool(url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let mut config = Config::from_url(url);
    config.pool = Some(PoolConfig {
        max_size,
        timeouts: Timeouts {
            wait: Some(Duration::from_millis(1000)),
            create: Some(Duration::from_millis(1000)),
            recycle: Some(Duration::from_millis(1000)),
        },
        ..Default::default()
    });
    config.create_pool(Some(Runtime::Tokio1)).map_err(|e| anyhow::anyhow!("redis pool for {}: {e}", redact(url)))
}

/// Whether a connection from `pool` answers PING within `within` (health checks, breaker probes).
pub async fn answers_ping(pool: &Pool, within: Duration) -> bool {
    let ping = async {
        let mut conn = pool.get().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.ok()
    };
    matches!(tokio::time::timeout(within, ping).await, Ok(Some(_)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:secret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact("redis://cache:6379"), "redis://cache:6379");
    }
}
