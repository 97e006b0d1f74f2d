//! The log lines' way to stdout: a bounded queue and one writer thread (issue 25, part 1).
//!
//! Under load the writer thread never sleeps on the queue: it drains it every `BUSY_POLL`, so a
//! request that logs only copies its line into the queue — no thread to wake, no syscall — and
//! many lines leave in one `write`. After `IDLE_POLLS` empty polls the thread blocks on the queue,
//! so an idle service costs nothing; the first line after that wakes it.
//!
//! Guarantees kept from the writer it replaces (`tracing-appender`'s): lines are never interleaved
//! or cut (each is queued whole, the queue is FIFO), a full queue drops the line and counts
//! `LOGGING_FAILURE`, and dropping the guard writes what is queued.

use std::io::Write;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::telemetry::catalogue::LOGGING_FAILURE;

/// How long the writer gathers lines while busy: the most a line waits.
const BUSY_POLL: Duration = Duration::from_millis(5);
/// Empty polls in a row after which the writer blocks until a line comes.
const IDLE_POLLS: u32 = 2;

enum Msg {
    Line(Vec<u8>),
    /// Write what is queued and stop.
    Shutdown,
}

/// Where the JSON layer puts its lines; cheap to use from any thread.
#[derive(Clone)]
pub struct LineSender {
    queue: Sender<Msg>,
}

impl LineSender {
    /// Queue one whole line; when the queue is full the line is dropped and counted.
    pub fn send(&self, line: &[u8]) {
        match self.queue.try_send(Msg::Line(line.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                metrics::counter!(LOGGING_FAILURE).increment(1);
            }
        }
    }
}

/// Keeps the writer thread; dropping it writes what is queued.
pub struct WriterGuard {
    queue: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let _ = self.queue.send(Msg::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Start the writer thread over `sink` (flushed whenever the queue has been drained), with room
/// for `capacity` lines.
pub fn spawn(sink: impl Write + Send + 'static, capacity: usize) -> std::io::Result<(LineSender, WriterGuard)> {
    let (queue, lines) = crossbeam_channel::bounded(capacity);
    let thread = std::thread::Builder::new().name("ringback-log-writer".into()).spawn(move || run(sink, lines))?;
    Ok((LineSender { queue: queue.clone() }, WriterGuard { queue, thread: Some(thread) }))
}

fn run(mut sink: impl Write, lines: Receiver<Msg>) {
    let mut empty_polls = 0;
    // A line taken while blocked, not yet flushed.
    let mut woken = false;
    loop {
        let mut wrote = std::mem::take(&mut woken);
        loop {
            match lines.try_recv() {
                Ok(Msg::Line(line)) => {
                    let _ = sink.write_all(&line);
                    wrote = true;
                }
                Ok(Msg::Shutdown) => {
                    let _ = sink.flush();
                    return;
                }
                Err(_) => break,
            }
        }
        if wrote {
            let _ = sink.flush();
            empty_polls = 0;
        } else {
            empty_polls += 1;
        }
        if empty_polls < IDLE_POLLS {
            std::thread::sleep(BUSY_POLL);
            continue;
        }
        // Idle: sleep on the queue until a line comes.
        match lines.recv() {
            Ok(Msg::Line(line)) => {
                let _ = sink.write_all(&line);
                woken = true;
            }
            Ok(Msg::Shutdown) | Err(_) => {
                let _ = sink.flush();
                return;
            }
        }
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
        let (sender, guard) = spawn(out.clone(), 1024).unwrap();
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
