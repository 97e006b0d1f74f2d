//! The log lines' way to stdout: one bounded buffer of bytes and one writer thread (issue 25,
//! part 1).
//!
//! A line is appended whole to the shared buffer under a lock — no allocation, no thread to wake,
//! no syscall for the request that logs. Under load the writer thread never sleeps on the buffer:
//! every `BUSY_POLL` it takes what has gathered (swapping buffers, so lines keep being appended
//! while it writes) and writes it with one `write`. After `IDLE_POLLS` empty polls it waits for
//! the next line, so an idle service costs nothing.
//!
//! Guarantees kept from the writer it replaces (`tracing-appender`'s): lines are never interleaved
//! or cut (each is appended whole under the lock, in order), a full buffer drops the line and
//! counts `LOGGING_FAILURE`, and dropping the guard writes what is buffered.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::telemetry::catalogue::LOGGING_FAILURE;

/// How long the writer gathers lines while busy: the most a line waits. Each poll is a thread
/// wake-up (~60 µs of CPU on these VMs): at 5 ms, 200 a second cost a busy service more than
/// formatting its lines did (issue 25); at 20 ms, 50.
const BUSY_POLL: Duration = Duration::from_millis(20);
/// Empty polls in a row after which the writer waits until a line comes.
const IDLE_POLLS: u32 = 2;

/// The most either buffer keeps allocated once written out.
const KEPT_CAPACITY: usize = 1 << 20;

/// What the request threads and the writer share.
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled for the first line after the writer went idle, and at shutdown.
    wake: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    idle: bool,
    shutdown: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while appending leaves whole lines: the bytes stay fit to write.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where the JSON layer puts its lines; cheap to use from any thread.
#[derive(Clone)]
pub struct LineSender {
    shared: Arc<Shared>,
}

impl LineSender {
    /// Append one whole line; when the buffer is full the line is dropped and counted.
    pub fn send(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.shutdown || pending.bytes.len() + line.len() > self.shared.capacity {
            drop(pending);
            metrics::counter!(LOGGING_FAILURE).increment(1);
            return;
        }
        pending.bytes.extend_from_slice(line);
        if std::mem::take(&mut pending.idle) {
            self.shared.wake.notify_one();
        }
    }
}

/// Keeps the writer thread; dropping it writes what is buffered.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Start the writer thread over `sink` (flushed after each batch it takes), with room for
/// `capacity` bytes of lines waiting.
pub fn spawn(sink: impl Write + Send + 'static, capacity: usize) -> std::io::Result<(LineSender, WriterGuard)> {
    let shared = Arc::new(Shared { pending: Mutex::new(Pending::default()), wake: Condvar::new(), capacity });
    let writer = shared.clone();
    let thread = std::thread::Builder::new().name("ringback-log-writer".into()).spawn(move || run(sink, &writer))?;
    Ok((LineSender { shared: shared.clone() }, WriterGuard { shared, thread: Some(thread) }))
}

fn run(mut sink: impl Write, shared: &Shared) {
    let mut taken = Vec::new();
    let mut empty_polls = 0;
    loop {
        let shutdown = {
            let mut pending = shared.lock();
            if pending.bytes.is_empty() && !pending.shutdown && empty_polls >= IDLE_POLLS {
                pending.idle = true;
                pending = shared.wake.wait_while(pending, |p| p.idle && !p.shutdown).unwrap_or_else(|p| p.into_inner());
                empty_polls = 0;
            }
            std::mem::swap(&mut pending.bytes, &mut taken);
            pending.shutdown
        };
        if taken.is_empty() {
            empty_polls += 1;
        } else {
            let _ = sink.write_all(&taken);
            let _ = sink.flush();
            taken.clear();
            // What a stall made it grow to is not kept.
            taken.shrink_to(KEPT_CAPACITY);
            empty_polls = 0;
        }
        if shutdown {
            return;
        }
        std::thread::sleep(BUSY_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_the_guard_writes_what_is_queued() {
        let out = Collected::default();
        let (sender, guard) = spawn(out.clone(), 1 << 20).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        sender.send(format!("{{\"t\":{t},\"i\":{i}}}\n").as_bytes());
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 800, "no line lost or cut");
        for t in 0..4 {
            let order: Vec<i64> = lines.iter().filter(|l| l["t"] == t).map(|l| l["i"].as_i64().unwrap()).collect();
            assert_eq!(order, (0..200).collect::<Vec<_>>(), "a thread's lines keep their order");
        }
    }
}
