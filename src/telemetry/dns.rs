//! `DNS_FAILURE`: the host names of configured dependencies (PostgreSQL, cache Redis, dispatch
//! Redis) are resolved on every health check, and each one that does not resolve within the check
//! timeout counts one occurrence. IP literals need no resolving and are skipped.

use std::time::Duration;

use crate::config::Settings;
use crate::telemetry::catalogue::DNS_FAILURE;

/// (dependency, host, port) of every configured dependency reached by host name.
pub fn configured_hosts(settings: &Settings) -> Vec<(&'static str, String, u16)> {
    // A SQLite URL names a file, not a host.
    let database = match settings.database.url.starts_with("postgres") {
        true => settings.database.url.as_str(),
        false => "",
    };
    let candidates = [
        ("database", database, 5432),
        ("redis", settings.redis.url.as_str(), 6379),
        ("orsRedis", settings.ors_redis.url.as_str(), 6379),
    ];
    let mut hosts: Vec<(&'static str, String, u16)> = Vec::new();
    for (dependency, raw, default_port) in candidates {
        let Ok(url) = url::Url::parse(raw) else { continue };
        // Non-special schemes (redis://) leave an IPv4 literal as an opaque "domain".
        if let Some(url::Host::Domain(host)) = url.host().filter(|h| h.to_string().parse::<std::net::IpAddr>().is_err())
        {
            let entry = (dependency, host.to_string(), url.port().unwrap_or(default_port));
            if !hosts.iter().any(|(_, h, p)| (h, p) == (&entry.1, &entry.2)) {
                hosts.push(entry);
            }
        }
    }
    hosts
}

/// Resolve each host once; count and log the ones that fail.
pub async fn check(hosts: &[(&'static str, String, u16)], timeout: Duration) {
    for (dependency, host, port) in hosts {
        let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), *port))).await;
        let problem = match resolved.map(|r| r.map(|addrs| addrs.count())) {
            Ok(Ok(n)) if n > 0 => continue,
            Ok(Ok(_)) => "no addresses".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", timeout.as_millis()),
        };
        metrics::counter!(DNS_FAILURE).increment(1);
        tracing::warn!(dependency, host = %host, error = %problem, "configured dependency host does not resolve");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_listed_once_and_ip_literals_skipped() {
        let mut s = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
        s.database.url = "postgres://u:p@db.internal:5433/ringback".into();
        s.redis.url = "redis://cache.internal".into();
        s.ors_redis.url = "redis://127.0.0.1:6380".into();
        assert_eq!(
            configured_hosts(&s),
            vec![("database", "db.internal".to_string(), 5433), ("redis", "cache.internal".to_string(), 6379)]
        );
        s.ors_redis.url = "redis://cache.internal:6379".into();
        assert_eq!(configured_hosts(&s).len(), 2, "one Redis in two roles is resolved once");
        s.database.url = "sqlite://ringback.db".into();
        assert_eq!(
            configured_hosts(&s),
            vec![("redis", "cache.internal".to_string(), 6379)],
            "a SQLite file is no host"
        );
    }
}
