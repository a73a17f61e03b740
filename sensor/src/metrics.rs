//! Prometheus metrics and health, counted from the record stream itself:
//! both collectors write their events, alerts and loss records through
//! [`MeteredSink`](crate::output::MeteredSink), so the counters agree with
//! the output by construction, and the sink's flush (once per collector
//! loop) is the liveness heartbeat. Served by [`crate::endpoint`].
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

use crate::event::{Body, Kind, Record};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabels {
    output: &'static str,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputDropLabels {
    output: &'static str,
    destination: String,
    reason: &'static str,
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
    outputs: OutputFamilies,
    attribution: Family<CacheLabels, Counter>,
    kernel_filtered: Family<KindLabels, Counter>,
    health: Arc<Health>,
}

#[derive(Clone, Default)]
struct OutputFamilies {
    depth: Family<OutputLabels, Gauge>,
    capacity: Family<OutputLabels, Gauge>,
    delivered: Family<OutputLabels, Counter>,
    failures: Family<OutputLabels, Counter>,
    dropped: Family<OutputDropLabels, Counter>,
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
            "Events lost, by reason (ring_full, kernel_error, rate_limited, malformed, process_table_evicted, poll_missed_parent, file_notify_error) and event kind",
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
        let outputs = OutputFamilies::default();
        registry.register(
            "output_queue_depth",
            "Records accepted by a network output and not yet delivered or dropped",
            outputs.depth.clone(),
        );
        registry.register(
            "output_queue_capacity",
            "Records a network output's queue holds beyond the batch in flight",
            outputs.capacity.clone(),
        );
        registry.register(
            "output_delivered",
            "Records a network output delivered",
            outputs.delivered.clone(),
        );
        registry.register(
            "output_failures",
            "Failed delivery attempts (each is retried unless refused)",
            outputs.failures.clone(),
        );
        registry.register(
            "output_dropped",
            "Records an output dropped, by reason (network: queue_full, rejected, too_large, shutdown, worker_stopped; file and stdout: disk_full, output_closed, write_error, torn_tail)",
            outputs.dropped.clone(),
        );
        let attribution = Family::default();
        registry.register(
            "attribution_cache",
            "Attribution lookups by cache (cgroup: cgroup id to container; process: the process table) and result (hit, miss: read from cgroupfs, runtime state or /proc)",
            attribution.clone(),
        );
        let kernel_filtered = Family::default();
        registry.register(
            "kernel_filtered",
            "Events the kernel dropped because no loaded rule could match them (--capture-opens rules, --capture-connects rules), by kind",
            kernel_filtered.clone(),
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
            outputs,
            attribution,
            kernel_filtered,
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

    /// Attribution cache totals from the one enricher: counters move by
    /// what they lack.
    pub fn attribution_cache(&self, totals: CacheStats) {
        for (cache, result, total) in [
            ("cgroup", "hit", totals.cgroup_hits),
            ("cgroup", "miss", totals.cgroup_misses),
            ("process", "hit", totals.process_hits),
            ("process", "miss", totals.process_misses),
        ] {
            let counter = self
                .attribution
                .get_or_create(&CacheLabels { cache, result });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Sets the running total of `kind` events the kernel filtered out.
    pub fn kernel_filtered(&self, kind: &'static str, total: u64) {
        let counter = self.kernel_filtered.get_or_create(&KindLabels { kind });
        counter.inc_by(total.saturating_sub(counter.get()));
    }

    /// The counters of one network output.
    pub fn output(&self, output: &'static str, destination: &str) -> OutputMetrics {
        let labels = OutputLabels {
            output,
            destination: destination.to_owned(),
        };
        let f = &self.outputs;
        OutputMetrics {
            depth: f.depth.get_or_create(&labels).clone(),
            capacity: f.capacity.get_or_create(&labels).clone(),
            delivered: f.delivered.get_or_create(&labels).clone(),
            failures: f.failures.get_or_create(&labels).clone(),
            dropped: f.dropped.clone(),
            dropped_all: Counter::default(),
            labels,
        }
    }

    /// The `sensor_records_total` series of `kind`.
    pub fn records_of(&self, kind: Kind) -> Counter {
        self.records
            .get_or_create(&KindLabels { kind: kind.name() })
            .clone()
    }

    /// `n` records a local output (file, stdout) could not write.
    pub fn output_dropped(
        &self,
        output: &'static str,
        destination: &str,
        reason: &'static str,
        n: u64,
    ) {
        self.outputs
            .dropped
            .get_or_create(&OutputDropLabels {
                output,
                destination: destination.to_owned(),
                reason,
            })
            .inc_by(n);
    }

    /// A record an output refused.
    pub fn output_error(&self) {
        self.output_errors.inc();
    }

    /// What alerts and loss records add beyond their count.
    pub fn count_details(&self, record: &Record) {
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
                for (kind, n) in &l.rate_limited {
                    lost("rate_limited", kind, *n);
                }
                lost("malformed", "", l.malformed);
                lost("process_table_evicted", "", l.process_table_evicted);
                lost("poll_missed_parent", "exec", l.poll_missed_parents);
                lost("file_notify_error", "open", l.file_notify_errors);
                for (reason, n) in &l.output_dropped {
                    let reason = crate::output::lines::reason::ALL
                        .into_iter()
                        .find(|r| r == reason)
                        .unwrap_or("output_other");
                    lost(reason, "", *n);
                }
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

/// How often attribution was answered from memory, by cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// cgroup id to container, answered from the cache.
    pub cgroup_hits: u64,
    /// cgroup id to container, parsed from the cgroup path or runtime state.
    pub cgroup_misses: u64,
    /// Acting process found in the process table.
    pub process_hits: u64,
    /// Acting process not in the table: looked up in /proc.
    pub process_misses: u64,
}

/// One network output's queue and delivery counters.
#[derive(Clone)]
pub struct OutputMetrics {
    depth: Gauge,
    capacity: Gauge,
    delivered: Counter,
    failures: Counter,
    dropped: Family<OutputDropLabels, Counter>,
    /// Every reason together, for the closing log line.
    dropped_all: Counter,
    labels: OutputLabels,
}

impl OutputMetrics {
    /// The queue holds at most `n` records.
    pub fn capacity(&self, n: usize) {
        self.capacity.set(n as i64);
    }

    /// A record was accepted.
    pub fn queued(&self) {
        self.depth.inc();
    }

    /// `n` accepted records were delivered.
    pub fn delivered(&self, n: u64) {
        self.depth.dec_by(n as i64);
        self.delivered.inc_by(n);
    }

    /// A delivery attempt failed.
    pub fn failed(&self) {
        self.failures.inc();
    }

    /// `n` accepted records were dropped.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.depth.dec_by(n as i64);
        self.refused_n(reason, n);
    }

    /// A record was never accepted.
    pub fn refused(&self, reason: &'static str) {
        self.refused_n(reason, 1);
    }

    /// Records delivered and dropped so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.delivered.get(), self.dropped_all.get())
    }

    fn refused_n(&self, reason: &'static str, n: u64) {
        self.dropped_all.inc_by(n);
        self.dropped
            .get_or_create(&OutputDropLabels {
                output: self.labels.output,
                destination: self.labels.destination.clone(),
                reason,
            })
            .inc_by(n);
    }

    /// Records accepted and not yet delivered or dropped.
    pub fn depth(&self) -> i64 {
        self.depth.get()
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
