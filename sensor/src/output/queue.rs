//! Network outputs behind a bounded queue: the collector never waits on a
//! slow or absent receiver. A worker thread takes batches off the queue and
//! delivers each whole, retrying with backoff for as long as it takes;
//! meanwhile the queue fills, and once full new records are dropped and
//! counted (`sensor_output_dropped_total{reason="queue_full"}`). Nothing
//! is lost while the queue has room.
use std::{
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tracing::{debug, info, warn};

use crate::metrics::OutputMetrics;

/// Why a batch was not delivered.
#[derive(Debug)]
pub enum SendError {
    /// Worth trying again (down, timeout, 5xx, 429); the receiver may ask
    /// for a delay.
    Retry(String, Option<Duration>),
    /// Never going to be taken as it is (a 4xx): dropped and counted.
    Reject(String),
}

/// Delivers batches of encoded records (syslog frames, JSON objects).
pub trait Transport: Send + 'static {
    /// Sends every record of `batch`, or none.
    fn send(&mut self, batch: &[Vec<u8>]) -> Result<(), SendError>;
}

/// Batching and queueing limits.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    /// Records waiting beyond the batch in flight.
    pub capacity: usize,
    /// Most records in one batch.
    pub batch_records: usize,
    /// Most bytes in one batch (a record larger than this goes alone).
    pub batch_bytes: usize,
    /// How long the first record of a batch waits for company.
    pub batch_wait: Duration,
    /// At shutdown, how long undelivered records may still be retried.
    pub drain: Duration,
}

/// A queue in front of a transport, with its worker.
pub struct Queued {
    tx: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    metrics: OutputMetrics,
    /// When set, the worker gives up retrying at this instant.
    give_up: Arc<Mutex<Option<Instant>>>,
    drain: Duration,
    name: String,
}

impl Queued {
    /// Starts the worker for `transport`.
    pub fn start(
        name: &str,
        transport: impl Transport,
        options: QueueOptions,
        metrics: OutputMetrics,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(options.capacity);
        metrics.capacity(options.capacity);
        let give_up = Arc::new(Mutex::new(None));
        let worker = Worker {
            rx,
            transport,
            options,
            metrics: metrics.clone(),
            give_up: give_up.clone(),
            name: name.to_owned(),
            failing_since: None,
        };
        let worker = std::thread::Builder::new()
            .name(format!("output {name}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            tx: Some(tx),
            worker: Some(worker),
            metrics,
            give_up,
            drain: options.drain,
            name: name.to_owned(),
        })
    }

    /// Queues one record, or drops and counts it when the queue is full.
    pub fn push(&self, record: Vec<u8>) {
        let Some(tx) = &self.tx else { return };
        // Counted before it can be taken, so depth never goes negative.
        self.metrics.queued();
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.metrics.dropped("queue_full", 1),
            // The worker is gone (it panicked): nothing will send this.
            Err(TrySendError::Disconnected(_)) => self.metrics.dropped("worker_stopped", 1),
        }
    }

    /// Counts a record this output cannot carry at all.
    pub fn refuse(&self, reason: &'static str) {
        self.metrics.refused(reason);
    }
}

impl Drop for Queued {
    /// Delivers what is queued, retrying for at most the drain time.
    fn drop(&mut self) {
        *self.give_up.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + self.drain);
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        let (delivered, dropped) = self.metrics.totals();
        info!(output = %self.name, delivered, dropped, "output closed");
    }
}

struct Worker<T> {
    rx: Receiver<Vec<u8>>,
    transport: T,
    options: QueueOptions,
    metrics: OutputMetrics,
    give_up: Arc<Mutex<Option<Instant>>>,
    name: String,
    /// An outage is logged once when it starts and once when it ends.
    failing_since: Option<(Instant, u64)>,
}

impl<T: Transport> Worker<T> {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.options.batch_records);
        while self.fill(&mut batch) {
            self.deliver(&batch);
            batch.clear();
        }
    }

    /// Waits for a record, then gathers more until the batch is full or has
    /// waited long enough. False once the queue is closed and empty.
    fn fill(&self, batch: &mut Vec<Vec<u8>>) -> bool {
        let Ok(first) = self.rx.recv() else {
            return false;
        };
        let mut bytes = first.len();
        batch.push(first);
        let deadline = Instant::now() + self.options.batch_wait;
        while batch.len() < self.options.batch_records && bytes < self.options.batch_bytes {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(record) => {
                    bytes += record.len();
                    batch.push(record);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        true
    }

    fn deliver(&mut self, batch: &[Vec<u8>]) {
        let n = batch.len() as u64;
        let mut backoff = Backoff::new();
        loop {
            match self.transport.send(batch) {
                Ok(()) => {
                    self.metrics.delivered(n);
                    if let Some((since, attempts)) = self.failing_since.take() {
                        info!(output = %self.name, failed_attempts = attempts, after = ?since.elapsed(), "delivery recovered");
                    }
                    return;
                }
                Err(SendError::Reject(why)) => {
                    warn!(output = %self.name, records = n, reason = %why, "batch refused by the receiver; dropped");
                    self.metrics.failed();
                    self.metrics.dropped("rejected", n);
                    return;
                }
                Err(SendError::Retry(why, asked)) => {
                    self.metrics.failed();
                    match &mut self.failing_since {
                        Some((_, attempts)) => *attempts += 1,
                        None => {
                            warn!(output = %self.name, reason = %why, "delivery failing; records wait in the queue and are retried");
                            self.failing_since = Some((Instant::now(), 1));
                        }
                    }
                    let delay = asked.unwrap_or_else(|| backoff.next());
                    let give_up = *self.give_up.lock().unwrap_or_else(|e| e.into_inner());
                    if give_up.is_some_and(|t| Instant::now() + delay > t) {
                        let left = self.rx.try_iter().count() as u64;
                        warn!(output = %self.name, records = n + left, reason = %why, "shutting down with records undelivered");
                        self.metrics.dropped("shutdown", n + left);
                        return;
                    }
                    debug!(output = %self.name, records = n, reason = %why, retry_in = ?delay, "delivery failed");
                    std::thread::sleep(delay);
                }
            }
        }
    }
}

/// Exponential backoff from 250 ms to 30 s with ±20% jitter, so a fleet
/// whose receiver comes back does not retry in step.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Jitter from the standard library's per-process random hash keys.
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(base.as_nanos() as u64);
        let unit = (h.finish() % 1000) as f64 / 1000.0; // [0, 1)
        base.mul_f64(0.8 + 0.4 * unit)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::metrics::Metrics;

    /// Fails its first `failures` sends (asking for a 1 ms delay), refuses
    /// batches holding `b"bad"`, and keeps what it took.
    struct Flaky {
        failures: u32,
        taken: Arc<Mutex<Vec<Vec<u8>>>>,
        sends: Arc<AtomicU32>,
    }

    impl Transport for Flaky {
        fn send(&mut self, batch: &[Vec<u8>]) -> Result<(), SendError> {
            self.sends.fetch_add(1, Ordering::Relaxed);
            if self.failures > 0 {
                self.failures -= 1;
                return Err(SendError::Retry(
                    "down".into(),
                    Some(Duration::from_millis(1)),
                ));
            }
            if batch.iter().any(|r| r == b"bad") {
                return Err(SendError::Reject("400".into()));
            }
            self.taken.lock().unwrap().extend_from_slice(batch);
            Ok(())
        }
    }

    fn options(capacity: usize) -> QueueOptions {
        QueueOptions {
            capacity,
            batch_records: 4,
            batch_bytes: 1 << 20,
            batch_wait: Duration::from_millis(5),
            drain: Duration::from_secs(5),
        }
    }

    #[test]
    fn retried_until_delivered_in_order_and_refusals_counted() {
        let metrics = Metrics::new().output("webhook", "test");
        let taken = Arc::new(Mutex::new(Vec::new()));
        let sends = Arc::new(AtomicU32::new(0));
        let transport = Flaky {
            failures: 2,
            taken: taken.clone(),
            sends: sends.clone(),
        };
        let queue = Queued::start("test", transport, options(100), metrics.clone()).unwrap();
        for n in 0..10u8 {
            queue.push(vec![n]);
        }
        // A batch of its own, refused whole.
        std::thread::sleep(Duration::from_millis(100));
        queue.push(b"bad".to_vec());
        drop(queue);
        let expected: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n]).collect();
        assert_eq!(*taken.lock().unwrap(), expected);
        assert_eq!(metrics.totals(), (10, 1));
        assert_eq!(metrics.depth(), 0);
        // Two failures, at least three batches of at most four, one refusal.
        let sends = sends.load(Ordering::Relaxed);
        assert!(sends >= 6, "{sends}");
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert!(delays[0] >= Duration::from_millis(200) && delays[0] <= Duration::from_millis(300));
        assert!(
            delays[3] >= Duration::from_millis(1600) && delays[3] <= Duration::from_millis(2400)
        );
        for d in &delays[8..] {
            assert!(
                *d >= Duration::from_secs(24) && *d <= Duration::from_secs(36),
                "{d:?}"
            );
        }
    }
}
