//! A circuit breaker per dependency (the database, the cache Redis). Once a dependency is seen
//! down, work that needs it fails at once instead of each caller waiting out its own timeouts
//! (with PostgreSQL stopped, every request used to wait the 2 s pool acquire timeout). While
//! open, one background probe asks the dependency every `PROBE_EVERY`, each try bounded by
//! `PROBE_TIMEOUT`; its first answer closes the breaker, so traffic returns within a fraction of
//! a second of the dependency, without a restart and without a request paying for the probe.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

pub const PROBE_EVERY: Duration = Duration::from_millis(250);
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

struct Inner {
    /// What is guarded, for the log lines ("database", "cache Redis").
    name: &'static str,
    /// The dependency's health gauge (1 down, 0 up), set at once on each transition so the
    /// alert does not wait for the next health check; unset where no gauge applies. Set by the
    /// owner of the dependency's alarm (`report_to`), so the guarded layer names no alarm.
    gauge: OnceLock<&'static str>,
    open: watch::Sender<bool>,
}

impl Breaker {
    pub fn new(name: &'static str) -> Self {
        Breaker { inner: Arc::new(Inner { name, gauge: OnceLock::new(), open: watch::Sender::new(false) }) }
    }

    /// Set `gauge` (1 down, 0 up) on each transition from now on (the first call wins).
    pub fn report_to(&self, gauge: &'static str) -> &Self {
        let _ = self.inner.gauge.set(gauge);
        self
    }

    pub fn is_open(&self) -> bool {
        *self.inner.open.borrow()
    }

    /// Resolves once the breaker is open (at once if it already is): work in flight when the
    /// dependency is seen down stops waiting for it.
    pub fn opened(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut open = self.inner.open.subscribe();
        async move {
            // An error means the breaker is gone with its owner: nothing will ever open it.
            if open.wait_for(|open| *open).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The dependency was seen down (`cause`). The first trip starts the probe; later ones while
    /// it is open change nothing.
    pub fn trip<P, F>(&self, cause: &str, probe: P)
    where
        P: Fn() -> F + Send + 'static,
        F: Future<Output = bool> + Send,
    {
        let opened = self.inner.open.send_if_modified(|open| !std::mem::replace(open, true));
        if !opened {
            return;
        }
        tracing::warn!(dependency = self.inner.name, error = %cause, "dependency seen down: failing fast until a probe reaches it");
        self.set_gauge(1.0);
        let breaker = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if !breaker.is_open() {
                    return;
                }
                if matches!(tokio::time::timeout(PROBE_TIMEOUT, probe()).await, Ok(true)) {
                    breaker.close();
                    return;
                }
            }
        });
    }

    /// The dependency answered: let traffic through again.
    pub fn close(&self) {
        if self.inner.open.send_if_modified(|open| std::mem::replace(open, false)) {
            tracing::info!(dependency = self.inner.name, "dependency reachable again: traffic resumes");
            self.set_gauge(0.0);
        }
    }

    fn set_gauge(&self, value: f64) {
        if let Some(name) = self.inner.gauge.get().copied() {
            metrics::gauge!(name).set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[tokio::test]
    async fn trips_once_probes_until_the_dependency_answers_then_closes() {
        let breaker = Breaker::new("test dependency");
        let up = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(AtomicU32::new(0));
        let probe = |up: Arc<AtomicBool>, probes: Arc<AtomicU32>| {
            move || {
                let (up, probes) = (up.clone(), probes.clone());
                async move {
                    probes.fetch_add(1, Ordering::SeqCst);
                    up.load(Ordering::SeqCst)
                }
            }
        };
        let waiter = tokio::spawn(breaker.opened());
        breaker.trip("refused", probe(up.clone(), probes.clone()));
        breaker.trip("refused again", probe(up.clone(), probes.clone()));
        assert!(breaker.is_open());
        tokio::time::timeout(Duration::from_secs(1), waiter).await.expect("work in flight is told").unwrap();
        tokio::time::sleep(PROBE_EVERY * 3).await;
        assert!(breaker.is_open(), "a probe that fails keeps it open");
        let tried = probes.load(Ordering::SeqCst);
        assert!((1..=3).contains(&tried), "one probe loop, not one per trip: {tried}");
        up.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(2), async {
            while breaker.is_open() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("closes once the probe answers");
    }
}
