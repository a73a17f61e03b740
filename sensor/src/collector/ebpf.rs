//! Drains the kernel ring buffer: decode, write, account for loss.
//!
//! The kernel commits most records without a wakeup (see sensor-ebpf
//! `helpers::emit`); the reader wakes on epoll when enough is pending and on
//! a short timer otherwise, which bounds latency while sparing a wakeup per
//! event.
use std::{future::Future, time::Duration};

use anyhow::Context as _;
use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use sensor_common::{EventKind, INTEREST_NAMES, LossCounters, OpenInterest, maps, open_mode};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{error, info, warn};

use super::{
    RunStats,
    egress::EgressReader,
    losses::{LossTracker, sum},
};
use crate::{
    clock::BootClock,
    decode::decode,
    enrich::Enricher,
    event::{Body, HookLost, HookLostData, Loss, LossData, Record, SCHEMA_VERSION, Source},
    loader::{Loaded, watch::HookCheck},
    metrics::Metrics,
    output::Sink,
    pipeline::{Detection, write_and_detect},
    rules::{
        RuleSet,
        interest::{ConnectFilter, KernelFilter as _, OpenFilter},
    },
};

/// Longest a record waits in the ring when no wakeup comes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How often kernel loss counters are read.
const LOSS_INTERVAL: Duration = Duration::from_secs(1);
/// Default period of `egress` records (bytes per cgroup and destination).
pub const EGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Reads the ring of a loaded sensor.
pub struct EbpfCollector {
    loaded: Loaded,
    ring: AsyncFd<RingBuf<MapData>>,
    losses: PerCpuArray<MapData, LossCounters>,
    /// Per pid, records the rate limit suppressed (cumulative).
    rate_limited: aya::maps::HashMap<MapData, u32, u64>,
    tracker: LossTracker,
    clock: BootClock,
    enricher: Enricher,
    detection: Option<Detection>,
    egress: Option<EgressReader>,
    egress_interval: Duration,
    stats: RunStats,
    metrics: Option<Metrics>,
    opens: OpenCapture,
    connects: ConnectCapture,
    /// Records the kernel filters dropped, by kind id.
    filtered: PerCpuArray<MapData, u64>,
}

/// The kernel's open filter.
struct OpenCapture {
    interest: Array<MapData, OpenInterest>,
    names: aya::maps::HashMap<MapData, u64, u8>,
    /// Derived from the rules and rewritten when they reload; else every
    /// open is kept.
    follow_rules: bool,
}

impl OpenCapture {
    fn apply(&mut self, rules: Option<&RuleSet>) -> anyhow::Result<()> {
        let filter = OpenFilter::wanted(rules, self.follow_rules);
        let (interest, names) = filter.to_kernel();
        // The kernel reads the entry and the names while they change: each
        // step keeps at least what the old or the new rules want.
        let old: Vec<u64> = self.names.keys().collect::<Result<_, _>>()?;
        let gone: Vec<u64> = old.iter().copied().filter(|k| !names.contains(k)).collect();
        if names.len() + gone.len() <= INTEREST_NAMES {
            // Room for both name sets: the new names, then the new entry
            // screening for old and new names alike, then the old names go.
            self.insert_names(&names)?;
            let mut both = interest;
            old.iter().for_each(|k| both.add_name(*k));
            self.set_interest(&both)?;
            self.remove_names(&gone)?;
        } else {
            // No room for both: every read is kept while the names change.
            let mut every_read = interest;
            every_read.mode &= !open_mode::MATCH_READS;
            self.set_interest(&every_read)?;
            self.remove_names(&gone)?;
            self.insert_names(&names)?;
        }
        self.set_interest(&interest)?;
        info!(%filter, "opens captured");
        Ok(())
    }

    /// After a failed [`Self::apply`]: every open is kept, so nothing the
    /// rules want is dropped (the kernel then filters nothing).
    fn keep_every_open(&mut self) -> anyhow::Result<()> {
        self.set_interest(&OpenInterest::default())
    }

    fn insert_names(&mut self, keys: &[u64]) -> anyhow::Result<()> {
        for key in keys {
            self.names
                .insert(key, &1, 0)
                .context("writing OPEN_NAMES")?;
        }
        Ok(())
    }

    fn remove_names(&mut self, keys: &[u64]) -> anyhow::Result<()> {
        for key in keys {
            self.names.remove(key).context("pruning OPEN_NAMES")?;
        }
        Ok(())
    }

    fn set_interest(&mut self, interest: &OpenInterest) -> anyhow::Result<()> {
        self.interest
            .set(0, interest, 0)
            .context("writing OPEN_INTEREST")
    }
}

/// The kernel's connect filter.
struct ConnectCapture {
    interest: Array<MapData, u32>,
    /// As for opens.
    follow_rules: bool,
}

impl ConnectCapture {
    fn apply(&mut self, rules: Option<&RuleSet>) -> anyhow::Result<()> {
        let filter = ConnectFilter::wanted(rules, self.follow_rules);
        // One word: the kernel sees the old filter or the new one.
        self.interest
            .set(0, &filter.to_kernel(), 0)
            .context("writing CONNECT_INTEREST")?;
        info!(%filter, "connects captured");
        Ok(())
    }

    /// After a failed [`Self::apply`], as for opens.
    fn keep_every_connect(&mut self) -> anyhow::Result<()> {
        self.interest
            .set(0, &0, 0)
            .context("writing CONNECT_INTEREST")
    }
}

impl EbpfCollector {
    /// Takes the maps out of a loaded object.
    pub fn new(mut loaded: Loaded, enricher: Enricher) -> anyhow::Result<Self> {
        let ring = loaded
            .ebpf
            .take_map(maps::EVENTS)
            .context("EVENTS map missing")?;
        let ring = RingBuf::try_from(ring).context("EVENTS is not a ring buffer")?;
        let losses = loaded
            .ebpf
            .take_map(maps::LOSSES)
            .context("LOSSES map missing")?;
        let losses = PerCpuArray::try_from(losses).context("LOSSES is not a per-CPU array")?;
        let mut take = |name: &str| {
            loaded
                .ebpf
                .take_map(name)
                .with_context(|| format!("{name} map missing"))
        };
        let opens = OpenCapture {
            interest: Array::try_from(take(maps::OPEN_INTEREST)?)
                .context("OPEN_INTEREST is not an array")?,
            names: aya::maps::HashMap::try_from(take(maps::OPEN_NAMES)?)
                .context("OPEN_NAMES is not a hash map")?,
            follow_rules: false,
        };
        let connects = ConnectCapture {
            interest: Array::try_from(take(maps::CONNECT_INTEREST)?)
                .context("CONNECT_INTEREST is not an array")?,
            follow_rules: false,
        };
        let filtered = PerCpuArray::try_from(take(maps::FILTERED)?)
            .context("FILTERED is not a per-CPU array")?;
        let rate_limited = aya::maps::HashMap::try_from(take(maps::RATE_LIMITED)?)
            .context("RATE_LIMITED is not a hash map")?;
        let egress = if loaded.egress {
            let map = loaded
                .ebpf
                .take_map(maps::EGRESS)
                .context("EGRESS map missing")?;
            let map =
                aya::maps::PerCpuHashMap::try_from(map).context("EGRESS is not a per-CPU hash")?;
            Some(EgressReader::new(map))
        } else {
            None
        };
        Ok(Self {
            loaded,
            // SAFETY: the RingBuf owns its fd and lives inside the AsyncFd,
            // so the fd stays open for as long as it is registered.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("registering the ring buffer with tokio: {e}"))?,
            losses,
            rate_limited,
            tracker: LossTracker::default(),
            clock: BootClock::new(),
            enricher,
            detection: None,
            egress,
            egress_interval: EGRESS_INTERVAL,
            stats: RunStats::default(),
            metrics: None,
            opens,
            connects,
            filtered,
        })
    }

    /// Sets the period of `egress` records.
    pub fn with_egress_interval(mut self, interval: Duration) -> Self {
        self.egress_interval = interval;
        self
    }

    /// Reports attribution cache counters to `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs every record through `detection`'s rules.
    pub fn with_rules(mut self, detection: Detection) -> Self {
        self.detection = Some(detection);
        self
    }

    /// Which opens and which connects the kernel keeps: for each, those the
    /// rules could match (kept in step as they reload; none without
    /// rules), or every one.
    pub fn capture(
        mut self,
        opens_by_rules: bool,
        connects_by_rules: bool,
    ) -> anyhow::Result<Self> {
        self.opens.follow_rules = opens_by_rules;
        self.connects.follow_rules = connects_by_rules;
        let rules = self.detection.as_ref().map(|d| &**d.rules());
        self.opens.apply(rules)?;
        self.connects.apply(rules)?;
        Ok(self)
    }

    /// Records the kernel filters dropped since start, of one kind.
    fn filtered(&self, kind: EventKind) -> anyhow::Result<u64> {
        let per_cpu = self
            .filtered
            .get(&(kind as u32), 0)
            .context("reading FILTERED")?;
        Ok(per_cpu.iter().sum())
    }

    /// Runs until `shutdown` resolves; then detaches the programs, drains
    /// what is left, reports final losses and flushes.
    pub async fn run(
        mut self,
        sink: &mut dyn Sink,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<RunStats> {
        tokio::pin!(shutdown);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut loss_tick = tokio::time::interval(LOSS_INTERVAL);
        let mut egress_tick = tokio::time::interval(self.egress_interval);
        egress_tick.reset();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                guard = self.ring.readable_mut() => {
                    let mut guard = guard.context("waiting on the ring buffer")?;
                    guard.clear_ready();
                }
                _ = poll.tick() => {}
                _ = loss_tick.tick() => {
                    self.report_losses(sink)?;
                    self.check_hooks(sink)?;
                }
                _ = egress_tick.tick() => {
                    self.drain(sink)?;
                    self.report_egress(sink)?;
                }
                set = Detection::next_update(&mut self.detection) => {
                    // The rules are valid (the reloader checked them); a
                    // map write that fails must not stop the sensor.
                    if let Err(e) = self.opens.apply(Some(&set)) {
                        error!(error = format!("{e:#}"), "open filter not updated; every open is kept");
                        self.opens.keep_every_open()?;
                    }
                    if let Err(e) = self.connects.apply(Some(&set)) {
                        error!(error = format!("{e:#}"), "connect filter not updated; every connect is kept");
                        self.connects.keep_every_connect()?;
                    }
                    if let Some(d) = &mut self.detection {
                        d.replace(set);
                    }
                }
            }
            self.drain(sink)?;
            sink.flush().context("flushing output")?;
        }
        info!("stopping: detaching programs and draining the ring");
        self.loaded.detach();
        self.drain(sink)?;
        self.report_egress(sink)?;
        self.report_losses(sink)?;
        sink.flush().context("flushing output")?;
        self.stats.lost = self.tracker.total;
        self.stats.filtered =
            self.filtered(EventKind::Open)? + self.filtered(EventKind::Connect)?;
        if let Some(d) = &self.detection {
            d.log_stats();
        }
        Ok(self.stats)
    }

    fn drain(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        loop {
            // The ring item borrows the ring: decode it, then let it go.
            let decoded = match self.ring.get_mut().next() {
                Some(item) => decode(&item, &self.clock).map_err(|e| (e, item.len())),
                None => break,
            };
            match decoded {
                Ok(mut record) => {
                    if let Some(lifecycle) = self.enricher.enrich(&mut record) {
                        self.emit(sink, &lifecycle)?;
                    }
                    self.emit(sink, &record)?;
                    self.stats.events += 1;
                }
                Err((e, len)) => {
                    self.tracker.malformed += 1;
                    warn!(error = %e, len, "malformed record skipped");
                }
            }
        }
        Ok(())
    }

    /// Writes an enriched record and the alerts it raises.
    fn emit(&mut self, sink: &mut dyn Sink, record: &Record) -> anyhow::Result<()> {
        self.stats.alerts += write_and_detect(sink, self.detection.as_mut(), record)?;
        Ok(())
    }

    fn report_egress(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let Some(reader) = &mut self.egress else {
            return Ok(());
        };
        let now = BootClock::now_boot_ns();
        let time = self.clock.rfc3339(now);
        for e in reader.read() {
            let mut record = Record {
                schema: SCHEMA_VERSION,
                source: Source::Ebpf,
                time: time.clone(),
                boot_ns: now,
                body: Body::Egress(e),
            };
            self.enricher.enrich(&mut record);
            self.emit(sink, &record)?;
        }
        Ok(())
    }

    /// A record the sensor makes itself, stamped now.
    fn record_now(&self, body: Body) -> Record {
        let now = BootClock::now_boot_ns();
        Record {
            schema: SCHEMA_VERSION,
            source: Source::Ebpf,
            time: self.clock.rfc3339(now),
            boot_ns: now,
            body,
        }
    }

    /// A hook of ours found detached is attached again, and says so in a
    /// `hook_lost` record (rules alert on it: T1562.001).
    fn check_hooks(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let (reattached, error) = match self.loaded.check_egress() {
            None | Some(HookCheck::Attached) => return Ok(()),
            Some(HookCheck::Reattached) => (true, None),
            Some(HookCheck::Lost(e)) => (false, Some(e)),
        };
        let hook = format!("cgroup_skb/egress on {}", self.loaded.egress_root_display());
        if reattached {
            warn!(%hook, "the egress counter was detached by another process; attached again");
        } else {
            error!(%hook, error = error.as_deref().unwrap_or(""), "the egress counter was detached by another process and cannot be attached again");
        }
        let record = self.record_now(Body::HookLost(HookLost {
            hook_lost: HookLostData {
                hook,
                reattached,
                error,
            },
        }));
        self.emit(sink, &record)
    }

    fn report_losses(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.attribution_cache(self.enricher.cache_stats());
            m.kernel_filtered("open", self.filtered(EventKind::Open)?);
            m.kernel_filtered("connect", self.filtered(EventKind::Connect)?);
        }
        let per_cpu = self.losses.get(&0, 0).context("reading LOSSES")?;
        let snapshot: Vec<LossCounters> = per_cpu.iter().copied().collect();
        let by_pid: Option<Vec<(u32, u64)>> = if self.tracker.wants_pid_walk(&snapshot) {
            Some(
                self.rate_limited
                    .iter()
                    .collect::<Result<_, _>>()
                    .context("reading RATE_LIMITED")?,
            )
        } else {
            None
        };
        let loss = self
            .tracker
            .update(&snapshot, by_pid.as_deref(), self.enricher.evicted());
        if let Some(loss) =
            LossData::with_output_dropped(loss, sink.take_dropped(), &mut self.tracker.total)
        {
            warn!(
                ring_full = sum(&loss.ring_full),
                kernel_error = sum(&loss.kernel_error),
                rate_limited = sum(&loss.rate_limited),
                rate_limited_pids = ?loss.rate_limited_by_pid.keys().collect::<Vec<_>>(),
                malformed = loss.malformed,
                output_dropped = ?loss.output_dropped,
                total = loss.total_since_start,
                "events lost"
            );
            let record = self.record_now(Body::Loss(Loss { loss }));
            sink.write(&record).context("writing a loss record")?;
        }
        Ok(())
    }
}
