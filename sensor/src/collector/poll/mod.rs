//! The polling collector: for hosts where the eBPF programs cannot load
//! (macOS, Windows, Linux without BTF or privileges). It snapshots the
//! process and socket tables every interval and drains OS file
//! notifications, and writes what changed in the eBPF path's schema, marked
//! `"source": "poll"`, through the same rules. What polling cannot see is
//! in docs/POLLING.md; the gaps it can detect are counted in `loss` records.
pub mod containers;
pub mod files;
pub mod normalise;
pub mod processes;
pub mod sockets;

use std::{future::Future, path::PathBuf, time::Duration};

use anyhow::Context as _;
use tracing::{debug, warn};

use self::{
    containers::Containers, files::FileWatcher, normalise::Normaliser, processes::ProcessPoller,
    sockets::SocketPoller,
};
use super::RunStats;
use crate::{
    clock::BootClock,
    event::{Body, Loss, LossData, Record},
    output::Sink,
    pipeline::{Detection, write_and_detect},
};

/// Default polling period: a process must live this long to be seen for
/// sure. Shorter costs more CPU (docs/BENCHMARKS.md).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// New processes are read again for at least this long (three intervals
/// at the default), to catch an exec right after start.
const YOUNG_MIN: Duration = Duration::from_secs(2);

/// What to poll.
#[derive(Clone, Debug)]
pub struct PollOptions {
    /// Period between snapshots.
    pub interval: Duration,
    /// Directories whose file creations and writes are reported.
    pub watch: Vec<PathBuf>,
}

impl PollOptions {
    /// Temporary directories, mail spools and (on Linux) /dev/shm: where
    /// the seeds' staging, archiving and mail collection leave files.
    pub fn default_watch() -> Vec<PathBuf> {
        let mut dirs = vec![std::env::temp_dir()];
        for d in [
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            "/var/mail",
            "/var/spool/mail",
        ] {
            let d = PathBuf::from(d);
            if d.is_dir() && !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    }
}

/// Polls and writes.
pub struct PollCollector {
    opts: PollOptions,
    procs: ProcessPoller,
    sockets: SocketPoller,
    files: FileWatcher,
    clock: BootClock,
    detection: Option<Detection>,
    missed_parents: u64,
    reported: (u64, u64),
    /// Everything lost since start: gaps and what outputs dropped.
    lost_total: u64,
    containers: Containers,
    stats: RunStats,
}

impl PollCollector {
    /// Takes the baseline snapshots and starts watching.
    pub fn new(opts: PollOptions) -> anyhow::Result<Self> {
        let young_for = (opts.interval * 3).max(YOUNG_MIN);
        let procs = ProcessPoller::new(young_for).context("reading the process table")?;
        let sockets = SocketPoller::new().context("reading the socket table")?;
        let files = FileWatcher::new(&opts.watch)?;
        Ok(Self {
            opts,
            procs,
            sockets,
            files,
            clock: BootClock::new(),
            detection: None,
            missed_parents: 0,
            reported: (0, 0),
            lost_total: 0,
            containers: Containers::new(),
            stats: RunStats::default(),
        })
    }

    /// Runs every record through `detection`'s rules.
    pub fn with_rules(mut self, detection: Detection) -> Self {
        self.detection = Some(detection);
        self
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        mut self,
        sink: &mut dyn Sink,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<RunStats> {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.opts.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                set = Detection::next_update(&mut self.detection) => {
                    if let Some(d) = &mut self.detection {
                        d.replace(set);
                    }
                }
                _ = tick.tick() => {
                    self.poll_once(sink)?;
                    sink.flush().context("flushing output")?;
                }
            }
        }
        self.poll_once(sink)?;
        sink.flush().context("flushing output")?;
        if let Some(d) = &self.detection {
            d.log_stats();
        }
        self.stats.lost = self.missed_parents + self.files.errors;
        Ok(self.stats)
    }

    fn poll_once(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let changes = self.procs.poll();
        let procs_us = started.elapsed().as_micros() as u64;
        for s in &changes.started {
            if let Some(ppid) = s.ppid
                && self.procs.get(ppid).is_none()
                && ppid > 1
            {
                self.missed_parents += 1;
            }
            self.containers.learn(s.pid, true);
            let record = self.norm().exec(s);
            self.emit(sink, &record)?;
        }
        for s in &changes.execed {
            // The container may have been entered since (runc init).
            self.containers.learn(s.pid, true);
            let record = self.norm().exec(s);
            self.emit(sink, &record)?;
        }
        let started = std::time::Instant::now();
        let sockets = self.sockets.poll();
        debug!(
            procs_us,
            sockets_us = started.elapsed().as_micros() as u64,
            "snapshots taken"
        );
        match sockets {
            Ok(new) => {
                for o in &new {
                    // The owner may predate the poller's first snapshot.
                    self.containers.learn(o.pid, false);
                    let record = self.norm().connect(o);
                    self.emit(sink, &record)?;
                }
            }
            Err(e) => {
                warn!(error = %e, "reading the socket table failed; connects of this interval are lost")
            }
        }
        for change in self.files.drain() {
            let record = self.norm().file(&change);
            self.emit(sink, &record)?;
        }
        for s in &changes.ended {
            let record = self.norm().exit(s);
            self.emit(sink, &record)?;
        }
        // Gone processes, and connect owners the table never listed.
        let procs = &self.procs;
        self.containers.retain(|pid| procs.get(pid).is_some());
        self.report_gaps(sink)
    }

    /// A `loss` record when a gap it can detect grew.
    fn report_gaps(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let now = (self.missed_parents, self.files.errors);
        let gaps = (now != self.reported).then(|| LossData {
            poll_missed_parents: now.0 - self.reported.0,
            file_notify_errors: now.1 - self.reported.1,
            ..LossData::default()
        });
        self.lost_total += (now.0 - self.reported.0) + (now.1 - self.reported.1);
        self.reported = now;
        let total = &mut self.lost_total;
        let Some(mut data) = LossData::with_output_dropped(gaps, sink.take_dropped(), total) else {
            return Ok(());
        };
        data.total_since_start = self.lost_total;
        warn!(
            missed_parents = data.poll_missed_parents,
            file_notify_errors = data.file_notify_errors,
            output_dropped = ?data.output_dropped,
            "polling gaps detected"
        );
        let record = self.norm().record(Body::Loss(Loss { loss: data }));
        sink.write(&record).context("writing a loss record")
    }

    fn emit(&mut self, sink: &mut dyn Sink, record: &Record) -> anyhow::Result<()> {
        self.stats.alerts += write_and_detect(sink, self.detection.as_mut(), record)?;
        self.stats.events += 1;
        Ok(())
    }

    /// Builds records from what the pollers found.
    fn norm(&self) -> Normaliser<'_, ProcessPoller> {
        Normaliser {
            procs: &self.procs,
            clock: &self.clock,
            containers: &self.containers,
        }
    }
}
