//! Prometheus metrics and health, counted from the record stream itself:
//! both collectors write their events, alerts and loss records through
//! [`MeteredSink`], so the counters agree with the output by construction,
//! and the sink's flush (once per collector loop) is the liveness
//! heartbeat. Served by [`crate::endpoint`].
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    event::{Body, Record},
    output::Sink,
    rules::fields::kind_name,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LossLabels {
    reason: &'static str,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CpuLabels {
    cpu: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorLabels {
    collector: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Handles on every metric; cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    records: Family<KindLabels, Counter>,
    alerts: Family<RuleLabels, Counter>,
    lost: Family<LossLabels, Counter>,
    ring_full_by_cpu: Family<CpuLabels, Counter>,
    output_errors: Counter,
    hooks: Family<HookLabels, Gauge>,
    collector: Family<CollectorLabels, Gauge>,
    rules_loaded: Gauge,
    rule_reloads: Family<OutcomeLabels, Counter>,
    health: Arc<Health>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sensor");
        let records = Family::default();
        registry.register(
            "records",
            "Records written, by kind (alerts and loss records included)",
            records.clone(),
        );
        let alerts = Family::default();
        registry.register("rule_hits", "Alerts raised, by rule", alerts.clone());
        let lost = Family::default();
        registry.register(
            "events_lost",
            "Events lost, by reason (ring_full, kernel_error, malformed, process_table_evicted, poll_missed_parent, file_notify_error) and event kind",
            lost.clone(),
        );
        let ring_full_by_cpu = Family::default();
        registry.register(
            "ring_full_by_cpu",
            "Events dropped because the ring buffer was full, by CPU",
            ring_full_by_cpu.clone(),
        );
        let output_errors = Counter::default();
        registry.register(
            "output_errors",
            "Records the output refused",
            output_errors.clone(),
        );
        let hooks = Family::default();
        registry.register(
            "hook",
            "Kernel hooks attached (1), by hook and program tier",
            hooks.clone(),
        );
        let collector = Family::default();
        registry.register(
            "collector",
            "The active collector (1): ebpf or poll",
            collector.clone(),
        );
        let rules_loaded = Gauge::default();
        registry.register(
            "rules_loaded",
            "Rules and sequences in the active rule set",
            rules_loaded.clone(),
        );
        let rule_reloads = Family::default();
        registry.register(
            "rule_reloads",
            "Rule reloads, by outcome (applied, refused)",
            rule_reloads.clone(),
        );
        Self {
            registry: Arc::new(registry),
            records,
            alerts,
            lost,
            ring_full_by_cpu,
            output_errors,
            hooks,
            collector,
            rules_loaded,
            rule_reloads,
            health: Arc::new(Health::new()),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Liveness and readiness.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// A hook attached with `tier`.
    pub fn hook_attached(&self, hook: &str, tier: &str) {
        self.hooks
            .get_or_create(&HookLabels {
                hook: hook.to_owned(),
                tier: tier.to_owned(),
            })
            .set(1);
    }

    /// The collector that runs.
    pub fn collector(&self, collector: &'static str) {
        self.collector
            .get_or_create(&CollectorLabels { collector })
            .set(1);
    }

    /// A rule set became active (at start or on reload).
    pub fn rules_active(&self, count: usize) {
        self.rules_loaded.set(count as i64);
    }

    /// A reload was applied or refused.
    pub fn rule_reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.rule_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn count(&self, record: &Record) {
        let kind = kind_name(record);
        self.records.get_or_create(&KindLabels { kind }).inc();
        match &record.body {
            Body::Alert(a) => {
                self.alerts
                    .get_or_create(&RuleLabels {
                        rule: a.rule.id.clone(),
                        severity: a.rule.severity.as_str(),
                    })
                    .inc();
            }
            Body::Loss(l) => {
                let l = &l.loss;
                let lost = |reason, kind: &str, n: u64| {
                    if n > 0 {
                        self.lost
                            .get_or_create(&LossLabels {
                                reason,
                                kind: kind.to_owned(),
                            })
                            .inc_by(n);
                    }
                };
                for (kind, n) in &l.ring_full {
                    lost("ring_full", kind, *n);
                }
                for (kind, n) in &l.kernel_error {
                    lost("kernel_error", kind, *n);
                }
                lost("malformed", "", l.malformed);
                lost("process_table_evicted", "", l.process_table_evicted);
                lost("poll_missed_parent", "exec", l.poll_missed_parents);
                lost("file_notify_error", "open", l.file_notify_errors);
                for (cpu, n) in &l.ring_full_by_cpu {
                    self.ring_full_by_cpu
                        .get_or_create(&CpuLabels { cpu: *cpu })
                        .inc_by(*n);
                }
            }
            _ => {}
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/healthz` and `/readyz` answer from.
pub struct Health {
    started: Instant,
    ready: AtomicBool,
    /// Milliseconds since `started` of the last collector loop.
    beat_ms: AtomicU64,
}

impl Health {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            beat_ms: AtomicU64::new(0),
        }
    }

    /// Every source is in place and records flow.
    pub fn set_ready(&self) {
        self.beat();
        self.ready.store(true, Ordering::Release);
    }

    /// Ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The collector loop went round.
    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.beat_ms.store(ms, Ordering::Release);
    }

    /// How long ago the collector loop last went round, once ready
    /// (before, the sensor is starting: loading programs can take seconds).
    pub fn stalled_for(&self) -> Option<Duration> {
        if !self.is_ready() {
            return None;
        }
        let last = Duration::from_millis(self.beat_ms.load(Ordering::Acquire));
        Some(self.started.elapsed().saturating_sub(last))
    }
}

/// Records between heartbeats while a drain keeps writing (a flood can
/// keep the ring from emptying, and so the loop from flushing, for long).
const BEAT_EVERY: u32 = 4096;

/// A sink that counts what passes through it.
pub struct MeteredSink<S> {
    inner: S,
    metrics: Metrics,
    since_beat: u32,
}

impl<S> MeteredSink<S> {
    /// Counts the records written to `inner`.
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self {
            inner,
            metrics,
            since_beat: 0,
        }
    }
}

impl<S: Sink + ?Sized> Sink for MeteredSink<Box<S>> {
    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        match self.inner.write(record) {
            Ok(()) => {
                self.metrics.count(record);
                self.since_beat += 1;
                if self.since_beat == BEAT_EVERY {
                    self.since_beat = 0;
                    self.metrics.health.beat();
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.output_errors.inc();
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.since_beat = 0;
        self.metrics.health.beat();
        self.inner.flush().inspect_err(|_| {
            self.metrics.output_errors.inc();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::JsonLines;

    /// Through text, as records are read (integer map keys need it).
    fn record(json: serde_json::Value) -> Record {
        serde_json::from_str(&json.to_string()).unwrap()
    }

    #[test]
    fn loss_records_become_loss_counters() {
        let metrics = Metrics::new();
        let mut sink = MeteredSink::new(
            Box::new(JsonLines::new(Vec::new())) as Box<dyn Sink>,
            metrics.clone(),
        );
        let loss = record(serde_json::json!({
            "schema": 1, "time": "2026-12-03T00:00:00Z", "boot_ns": 1, "kind": "loss",
            "loss": {"ring_full": {"open": 5, "exec": 1}, "kernel_error": {"open": 2},
                     "ring_full_by_cpu": {"1": 6}, "malformed": 3, "total_since_start": 11,
                     "poll_missed_parents": 4}
        }));
        sink.write(&loss).unwrap();
        sink.write(&loss).unwrap();
        let text = metrics.encode();
        for line in [
            "sensor_records_total{kind=\"loss\"} 2",
            "sensor_events_lost_total{reason=\"ring_full\",kind=\"open\"} 10",
            "sensor_events_lost_total{reason=\"ring_full\",kind=\"exec\"} 2",
            "sensor_events_lost_total{reason=\"kernel_error\",kind=\"open\"} 4",
            "sensor_events_lost_total{reason=\"malformed\",kind=\"\"} 6",
            "sensor_events_lost_total{reason=\"poll_missed_parent\",kind=\"exec\"} 8",
            "sensor_ring_full_by_cpu_total{cpu=\"1\"} 12",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(
            !text.contains("{reason=\"file_notify_error\""),
            "zero counts add no series"
        );
    }
}
