//! The sink every collector writes through: it counts each record it
//! passes on (by kind, and what alerts and loss records say) and beats the
//! liveness heartbeat, so metrics and health follow the output itself.
use prometheus_client::metrics::counter::Counter;

use super::Sink;
use crate::{
    event::{Kind, Record},
    metrics::Metrics,
};

/// Records between heartbeats while a drain keeps writing (a flood can
/// keep the ring from emptying, and so the loop from flushing, for long).
const BEAT_EVERY: u32 = 4096;

/// A sink that counts what passes through it.
pub struct MeteredSink<S> {
    inner: S,
    metrics: Metrics,
    since_beat: u32,
    /// Each kind's series, looked up once: the family's lookup hashes and
    /// takes a lock, which cost more per record than the count itself.
    records: Vec<Option<Counter>>,
}

impl<S> MeteredSink<S> {
    /// Counts the records written to `inner`.
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self {
            inner,
            metrics,
            since_beat: 0,
            records: vec![None; Kind::ALL.len()],
        }
    }

    fn count(&mut self, record: &Record) {
        let kind = record.kind();
        self.records[kind.index()]
            .get_or_insert_with(|| self.metrics.records_of(kind))
            .inc();
        self.metrics.count_details(record);
    }
}

impl<S: Sink + ?Sized> Sink for MeteredSink<Box<S>> {
    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        match self.inner.write(record) {
            Ok(()) => {
                self.count(record);
                self.since_beat += 1;
                if self.since_beat == BEAT_EVERY {
                    self.since_beat = 0;
                    self.metrics.health().beat();
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.output_error();
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.since_beat = 0;
        self.metrics.health().beat();
        self.inner.flush().inspect_err(|_| {
            self.metrics.output_error();
        })
    }

    fn take_dropped(&mut self) -> std::collections::BTreeMap<&'static str, u64> {
        self.inner.take_dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Encoder, Outputs};

    /// Through text, as records are read (integer map keys need it).
    fn record(json: serde_json::Value) -> Record {
        serde_json::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn loss_records_become_loss_counters() {
        let metrics = Metrics::new();
        let mut sink = MeteredSink::new(
            Box::new(Outputs::writer(Box::new(std::io::sink()), Encoder::plain())) as Box<dyn Sink>,
            metrics.clone(),
        );
        let loss = record(serde_json::json!({
            "schema": 1, "time": "2026-12-03T00:00:00Z", "boot_ns": 1, "kind": "loss",
            "loss": {"ring_full": {"open": 5, "exec": 1}, "kernel_error": {"open": 2},
                     "ring_full_by_cpu": {"1": 6}, "rate_limited": {"connect": 7},
                     "rate_limited_by_pid": {"42": 7}, "malformed": 3, "total_since_start": 18,
                     "poll_missed_parents": 4, "output_dropped": {"disk_full": 4}}
        }));
        sink.write(&loss).unwrap();
        sink.write(&loss).unwrap();
        let text = metrics.encode();
        for line in [
            "sensor_records_total{kind=\"loss\"} 2",
            "sensor_events_lost_total{reason=\"ring_full\",kind=\"open\"} 10",
            "sensor_events_lost_total{reason=\"ring_full\",kind=\"exec\"} 2",
            "sensor_events_lost_total{reason=\"kernel_error\",kind=\"open\"} 4",
            "sensor_events_lost_total{reason=\"rate_limited\",kind=\"connect\"} 14",
            "sensor_events_lost_total{reason=\"malformed\",kind=\"\"} 6",
            "sensor_events_lost_total{reason=\"poll_missed_parent\",kind=\"exec\"} 8",
            "sensor_ring_full_by_cpu_total{cpu=\"1\"} 12",
            "sensor_events_lost_total{reason=\"disk_full\",kind=\"\"} 8",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(
            !text.contains("{reason=\"file_notify_error\""),
            "zero counts add no series"
        );
    }
}
