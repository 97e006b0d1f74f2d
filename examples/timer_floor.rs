//! The floor for event-loop probes (benches/instrumentation.sh): N single-threaded tokio runtimes,
//! as actix's workers are, each doing nothing but sleeping PERIOD_MS in a loop. A probe must run on
//! the runtime it watches, so one timer wake-up of such a runtime is the least a probe can cost.
//!   cargo run --release --example timer_floor -- RUNTIMES PERIOD_MS

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("RUNTIMES PERIOD_MS"));
    let (runtimes, period) = (args.next().unwrap_or(5), Duration::from_millis(args.next().unwrap_or(100)));
    let threads: Vec<_> = (0..runtimes)
        .map(|_| {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    loop {
                        tokio::time::sleep(period).await;
                    }
                });
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
