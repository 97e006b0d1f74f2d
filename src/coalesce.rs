//! Coalescing for any operation that costs a round trip: callers queue requests, one task hands
//! whatever has queued (up to a maximum) to a batch function, and the next batch forms while
//! that one runs. No timer waits for company, so a lone request at low load goes at once; under
//! load, one round trip is shared by everyone who arrived during the previous one. Used by the
//! booking writer (one transaction per batch) and the throttles (one Redis script per batch).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

type Job<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// A handle to the batching task; cheap to clone. The task ends when every handle is dropped,
/// after running what was queued.
pub struct Coalescer<Req, Resp> {
    queue: mpsc::UnboundedSender<Job<Req, Resp>>,
}

impl<Req, Resp> Clone for Coalescer<Req, Resp> {
    fn clone(&self) -> Self {
        Coalescer { queue: self.queue.clone() }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Coalescer<Req, Resp> {
    /// Start the task on the current runtime. `run` gets a batch of at most `max` requests and
    /// must answer each, in order.
    pub fn spawn<F, Fut>(max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send,
    {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job<Req, Resp>>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while jobs.recv_many(&mut batch, max).await > 0 {
                let (requests, answers): (Vec<Req>, Vec<oneshot::Sender<Resp>>) = batch.drain(..).unzip();
                let results = run(requests).await;
                debug_assert_eq!(results.len(), answers.len(), "a batch function answers every request");
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
        });
        Coalescer { queue }
    }

    /// Run one request with whoever else is waiting. `None` when the task has stopped (the
    /// runtime is shutting down) or did not answer this request.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((request, answer)).ok()?;
        answered.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_each_gets_its_own_answer() {
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = Coalescer::spawn(4, move |batch: Vec<u32>| {
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
}
