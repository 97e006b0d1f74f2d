//! Background tasks that survive their own panics: a panic is caught, counted as
//! `UNCAUGHT_EXCEPTION`, logged with the task's name, and the task is started again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;

use crate::telemetry::catalogue::UNCAUGHT_EXCEPTION;

/// Pause before a restart, so a task that panics at once cannot spin a core.
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Run `make()` forever on the current runtime, restarting it after a panic (or if it returns).
pub fn spawn<F, Fut>(name: &'static str, make: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match AssertUnwindSafe(make()).catch_unwind().await {
                Ok(()) => tracing::warn!(task = name, "background task returned; starting it again"),
                Err(_) => {
                    // The panic hook logged its location; its message may quote input, so not here.
                    metrics::counter!(UNCAUGHT_EXCEPTION).increment(1);
                    tracing::error!(task = name, "background task panicked; restarting it");
                }
            }
            tokio::time::sleep(RESTART_DELAY).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_task_is_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = runs.clone();
        let handle = spawn("test-task", move || {
            let runs = seen.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                std::future::pending::<()>().await
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(std::time::Instant::now() < deadline, "task was not restarted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.abort();
    }
}
