//! The polling collector: for hosts where the eBPF programs cannot load
//! (macOS, Windows, Linux without BTF or privileges). It snapshots the
//! process and socket tables every interval and drains OS file
//! notifications, and writes what changed in the eBPF path's schema, marked
//! `"source": "poll"`, through the same rules. What polling cannot see is
//! in docs/POLLING.md; the gaps it can detect are counted in `loss` records.
pub mod files;
pub mod processes;
pub mod sockets;

use std::{future::Future, net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use tracing::{debug, warn};

use self::{
    files::{FileChange, FileWatcher},
    processes::{ProcessPoller, Seen, text},
    sockets::{Outbound, SocketPoller},
};
use super::{Detection, ebpf::RunStats};
use crate::{
    clock::BootClock,
    container::ContainerRef,
    decode::rfc3339,
    event::{
        AddressSource, Body, CgroupRef, Connect, ConnectData, Event, Exec, ExecData, Exit,
        ExitData, Loss, LossData, Open, OpenData, PathSource, Process, Record, SCHEMA_VERSION,
        Source,
    },
    output::Sink,
    text::Text,
};

/// Default polling period: a process must live this long to be seen for
/// sure. Shorter costs more CPU (docs/BENCHMARKS.md).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

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
    unattributed: Arc<ContainerRef>,
    stats: RunStats,
}

impl PollCollector {
    /// Takes the baseline snapshots and starts watching.
    pub fn new(opts: PollOptions) -> anyhow::Result<Self> {
        let procs = ProcessPoller::new().context("reading the process table")?;
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
            unattributed: Arc::new(ContainerRef {
                id: "unknown".into(),
                runtime: "unknown".into(),
                pod_uid: None,
                reason: Some("the polling collector does not attribute containers".into()),
                meta: None,
                metadata_error: None,
            }),
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
            let record = self.exec_record(s);
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
                    let record = self.connect_record(o);
                    self.emit(sink, &record)?;
                }
            }
            Err(e) => {
                warn!(error = %e, "reading the socket table failed; connects of this interval are lost")
            }
        }
        for change in self.files.drain() {
            let record = self.file_record(&change);
            self.emit(sink, &record)?;
        }
        for s in &changes.ended {
            let record = self.exit_record(s);
            self.emit(sink, &record)?;
        }
        self.report_gaps(sink)
    }

    /// A `loss` record when a gap it can detect grew.
    fn report_gaps(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let now = (self.missed_parents, self.files.errors);
        if now == self.reported {
            return Ok(());
        }
        let data = LossData {
            poll_missed_parents: now.0 - self.reported.0,
            file_notify_errors: now.1 - self.reported.1,
            total_since_start: now.0 + now.1,
            ..LossData::default()
        };
        self.reported = now;
        warn!(
            missed_parents = data.poll_missed_parents,
            file_notify_errors = data.file_notify_errors,
            "polling gaps detected"
        );
        let record = self.record(Body::Loss(Loss { loss: data }));
        sink.write(&record).context("writing a loss record")
    }

    fn emit(&mut self, sink: &mut dyn Sink, record: &Record) -> anyhow::Result<()> {
        sink.write(record).context("writing an event")?;
        self.stats.events += 1;
        if let Some(d) = &mut self.detection {
            self.stats.alerts += d.check(sink, record)?;
        }
        Ok(())
    }

    fn record(&self, body: Body) -> Record {
        let now = BootClock::now_boot_ns();
        Record {
            schema: SCHEMA_VERSION,
            source: Source::Poll,
            time: rfc3339(&self.clock, now),
            boot_ns: now,
            body,
        }
    }

    fn process(&self, pid: u32) -> Process {
        match self.procs.get(pid) {
            Some(s) => Process {
                pid,
                tid: pid,
                uid: s.uid,
                gid: s.gid,
                comm: s.comm.clone(),
                ppid: s.ppid,
                start_ticks: Some(s.start_ticks),
                image: Some(s.image.clone()),
                ancestors: self.procs.ancestry(pid),
            },
            // Gone before the process table saw it.
            None => Process {
                pid,
                tid: pid,
                uid: u32::MAX,
                gid: u32::MAX,
                comm: Text::from("?"),
                ppid: None,
                start_ticks: None,
                image: None,
                ancestors: Default::default(),
            },
        }
    }

    fn event<T>(&self, pid: u32, data: T) -> Event<T> {
        Event {
            process: self.process(pid),
            cgroup: CgroupRef { id: 0, v1_id: None },
            container: Some(self.unattributed.clone()),
            data,
        }
    }

    fn exec_record(&self, s: &Seen) -> Record {
        let exec = ExecData {
            ppid: s.ppid.unwrap_or(0),
            euid: s.uid,
            egid: s.gid,
            ns_pid: s.pid,
            pid_ns: 0,
            mnt_ns: 0,
            start_boottime_ns: 0,
            path: s.image.exe.clone(),
            path_truncated: false,
            path_pseudo: false,
            args: s.image.args.clone(),
            args_truncated: false,
        };
        self.record(Body::Exec(self.event(s.pid, Exec { exec })))
    }

    fn exit_record(&self, s: &Seen) -> Record {
        let mut e = self.event(
            s.pid,
            Exit {
                exit: ExitData {
                    code: None,
                    signal: None,
                    start_boottime_ns: 0,
                },
            },
        );
        // The table no longer has it: describe it from the last snapshot.
        e.process.comm = s.comm.clone();
        e.process.ppid = s.ppid;
        e.process.image = Some(s.image.clone());
        self.record(Body::Exit(e))
    }

    fn connect_record(&self, o: &Outbound) -> Record {
        let (family, mapped) = match o.remote.ip() {
            IpAddr::V4(_) => ("inet", None),
            IpAddr::V6(v6) => ("inet6", v6.to_ipv4_mapped().map(IpAddr::V4)),
        };
        let connect = ConnectData {
            family: family.to_owned(),
            sock_type: Some("stream".to_owned()),
            protocol: Some("tcp".to_owned()),
            address: Some(o.remote.ip()),
            ipv4_mapped: mapped,
            port: Some(o.remote.port()),
            unix_path: None,
            fd: -1,
            ret: 0,
            error: None,
            compat: false,
            io_uring: false,
            address_source: AddressSource::SocketTable,
        };
        self.record(Body::Connect(self.event(o.pid, Connect { connect })))
    }

    fn file_record(&self, c: &FileChange) -> Record {
        let mut flags = vec!["O_WRONLY".to_owned()];
        if c.created {
            flags.push("O_CREAT".to_owned());
        }
        let open = OpenData {
            syscall: "notify".to_owned(),
            path: text(c.path.as_os_str()),
            path_source: PathSource::File,
            path_truncated: false,
            path_pseudo: false,
            compat: false,
            io_uring: false,
            access: "write".to_owned(),
            flags,
            flags_raw: 0,
            mode: None,
            fd: None,
            error: None,
            ino: None,
        };
        // No process: notifications do not say who wrote.
        self.record(Body::Open(self.event(0, Open { open })))
    }
}
