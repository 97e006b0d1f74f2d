//! Coalescing for any operation that costs a round trip: callers queue requests, one task hands
//! whatever has queued (up to a maximum) to a batch function, and the next batch forms while
//! that one runs. No timer waits for company, so a lone request at low load goes at once; under
//! load, one round trip is shared by everyone who arrived during the previous one. Used by the
//! booking writer (one transaction per batch) and the throttles (one Redis script per batch).
//!
//! The queue is bounded: `call` waits for room, `try_call` is refused at once when it is full. A
//! panic in the batch function is caught: it is counted (`UNCAUGHT_EXCEPTION`) and logged with
//! its location, the batch's callers get no answer (`None`), and the loop goes on. Should the
//! loop stop all the same, `is_running` says so (readiness reports it).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::telemetry::catalogue::UNCAUGHT_EXCEPTION;

type Job<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// A handle to the batching task; cheap to clone. The task ends when every handle is dropped,
/// after running what was queued.
pub struct Coalescer<Req, Resp> {
    queue: mpsc::Sender<Job<Req, Resp>>,
    running: Arc<AtomicBool>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Coalescer { queue: self.queue.clone(), running: self.running.clone() }
    }
}

/// Why `try_call` got no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum NotRun {
    /// The queue holds its limit of requests.
    Full,
    /// The task has stopped, or did not answer this request (its batch panicked).
    Unanswered,
}

/// Clears `running` when the loop ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Start the task on the current runtime. `run` gets a batch of at most `max` requests and
    /// must answer each, in order. At most `limit` requests wait in the queue.
    pub fn spawn<F, Fut>(name: &'static str, max: usize, limit: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send,
    {
        let (queue, mut jobs) = mpsc::channel::<Job<Req, Resp>>(limit.max(1));
        let running = Arc::new(AtomicBool::new(true));
        let alive = Running(running.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let mut batch = Vec::with_capacity(max);
            while jobs.recv_many(&mut batch, max).await > 0 {
                let (requests, answers): (Vec<Req>, Vec<oneshot::Sender<Resp>>) = batch.drain(..).unzip();
                match AssertUnwindSafe(run(requests)).catch_unwind().await {
                    Ok(results) => {
                        debug_assert_eq!(results.len(), answers.len(), "a batch function answers every request");
                        for (answer, result) in answers.into_iter().zip(results) {
                            let _ = answer.send(result);
                        }
                    }
                    Err(_) => {
                        // The location was logged by the panic hook; the message may quote input.
                        metrics::counter!(UNCAUGHT_EXCEPTION).increment(1);
                        tracing::error!(
                            task = name,
                            size = answers.len(),
                            "a batch panicked; its callers get no answer"
                        );
                    }
                }
            }
        });
        Coalescer { queue, running }
    }

    /// Run one request with whoever else is waiting, waiting for room in the queue. `None` when
    /// the task has stopped or did not answer this request.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((request, answer)).await.ok()?;
        answered.await.ok()
    }

    /// As `call`, but refused at once when the queue is full.
    pub async fn try_call(&self, request: Req) -> Result<Resp, NotRun> {
        let (answer, answered) = oneshot::channel();
        self.queue.try_send((request, answer)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NotRun::Full,
            mpsc::error::TrySendError::Closed(_) => NotRun::Unanswered,
        })?;
        answered.await.map_err(|_| NotRun::Unanswered)
    }

    /// Whether the batching loop is still running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_answer() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = Coalescer::spawn("doubler", 4, 100, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            async move {
                tokio::task::yield_now().await;
                batch.into_iter().map(|n| n * 2).collect::<Vec<_>>()
            }
        });
        let answers = futures_util::future::join_all((0..10).map(|n| doubler.call(n))).await;
        assert_eq!(answers, (0..10).map(|n| Some(n * 2)).collect::<Vec<_>>());
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(sizes.iter().all(|s| *s <= 4), "{sizes:?}");
        assert!(sizes.len() < 10, "queued calls shared a batch: {sizes:?}");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_panicking_batch_does_not_stop_the_loop() {
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let opened = std::sync::Arc::new(tokio::sync::Mutex::new(Some(opened)));
        let echo = Coalescer::spawn("echo", 1, 1, move |batch: Vec<u32>| {
            let opened = opened.clone();
            async move {
                if let Some(wait) = opened.lock().await.take() {
                    let _ = wait.await;
                }
                assert!(batch[0] != 13, "unlucky");
                batch
            }
        });
        let first = tokio::spawn({
            let echo = echo.clone();
            async move { echo.try_call(1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // the first batch is running
        let second = tokio::spawn({
            let echo = echo.clone();
            async move { echo.try_call(2).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // the second fills the queue
        assert_eq!(echo.try_call(3).await, Err(NotRun::Full));
        gate.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(second.await.unwrap(), Ok(2));
        assert_eq!(echo.try_call(13).await, Err(NotRun::Unanswered), "a panicking batch answers nobody");
        assert_eq!(echo.try_call(4).await, Ok(4), "and the loop goes on");
        assert!(echo.is_running());
    }
}
