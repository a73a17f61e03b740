//! Attribution of every event to its process (executable, argv, parent
//! chain) and container. Owns the process table and the cgroup index and
//! keeps both current from the lifecycle events flowing through it.
use std::{collections::HashSet, sync::Arc};

use crate::{
    container::{
        Attributor,
        cgroups::{CgroupIndex, CgroupMounts},
        metadata,
    },
    event::{Attributed as _, Body, ContainerLifecycle, Record, Subject},
    metrics::CacheStats,
    process::{ExecImage, ProcessInfo, ProcessTable, proc_scan},
    text::Text,
};

/// Runtime processes name their state directories on the command line.
fn learn_state_dir(containers: &mut Attributor, args: &[&[u8]]) {
    for (kind, dir) in metadata::state_dir_flags(args) {
        containers.learn_state_dir(kind, dir);
    }
}

fn byte_args(args: &[Text]) -> Vec<&[u8]> {
    args.iter().map(Text::as_bytes).collect()
}

/// A table entry from a /proc read.
fn from_proc(
    containers: &mut Attributor,
    p: proc_scan::Scanned,
    v1_controller: Option<&str>,
) -> ProcessInfo {
    learn_state_dir(containers, &byte_args(&p.args));
    let (v2, v1) = proc_scan::cgroup_paths(&p.cgroup, v1_controller);
    let container = v2
        .and_then(|path| containers.resolve_path(path))
        .or_else(|| v1.and_then(|path| containers.resolve_path(path)))
        .unwrap_or_else(|| containers.host());
    ProcessInfo {
        pid: p.pid,
        ppid: p.ppid,
        start_ticks: p.start_ticks,
        image: Arc::new(ExecImage::new(p.exe, p.args)),
        container: Some(container),
    }
}

/// Processes the table holds before it evicts (a node with 10k live
/// processes uses a fraction of this).
const TABLE_CAP: usize = 256 * 1024;

/// Bound on remembered failed /proc lookups.
const PROC_MISSES_CAP: usize = 64 * 1024;

/// Adds process and container context to records.
pub struct Enricher {
    table: ProcessTable,
    /// Pids already looked up in /proc without success (they exited): not
    /// retried until they fork or exec again.
    proc_misses: HashSet<u32>,
    v1_controller: Option<&'static str>,
    containers: Attributor,
    /// Containers whose start was reported (or that ran before the sensor).
    running: HashSet<String>,
    ns_per_tick: u64,
    process_hits: u64,
    process_misses: u64,
}

impl Enricher {
    /// Scans cgroup hierarchies and /proc. Call after the hooks are
    /// attached, so anything that starts meanwhile arrives as an event.
    pub fn new(v1_controller: Option<&'static str>) -> Self {
        let mounts = CgroupMounts::discover(v1_controller);
        let index = CgroupIndex::scan(&mounts, v1_controller);
        let mut containers = Attributor::new(index);
        let mut table = ProcessTable::new(TABLE_CAP);
        let mut running = HashSet::new();
        for p in proc_scan::scan() {
            let info = from_proc(&mut containers, p, v1_controller);
            if let Some(c) = info.container.as_ref().filter(|c| !c.is_host()) {
                running.insert(c.id.clone());
            }
            table.insert(info);
        }
        tracing::info!(
            processes = table.len(),
            containers = running.len(),
            "process table seeded from /proc"
        );
        Self {
            table,
            proc_misses: HashSet::new(),
            v1_controller,
            containers,
            running,
            ns_per_tick: 1_000_000_000 / proc_scan::ticks_per_second().max(1),
            process_hits: 0,
            process_misses: 0,
        }
    }

    /// Over a given table and attributor (tests, benchmarks, replay).
    pub fn with_state(table: ProcessTable, containers: Attributor) -> Self {
        Self {
            table,
            proc_misses: HashSet::new(),
            v1_controller: None,
            containers,
            running: HashSet::new(),
            ns_per_tick: 1_000_000_000 / proc_scan::ticks_per_second().max(1),
            process_hits: 0,
            process_misses: 0,
        }
    }

    /// Processes known.
    pub fn processes(&self) -> usize {
        self.table.len()
    }

    /// Attribution cache hits and misses so far.
    pub fn cache_stats(&self) -> CacheStats {
        let (cgroup_hits, cgroup_misses) = self.containers.cache_stats();
        CacheStats {
            cgroup_hits,
            cgroup_misses,
            process_hits: self.process_hits,
            process_misses: self.process_misses,
        }
    }

    /// Table entries evicted because it was full.
    pub fn evicted(&self) -> u64 {
        self.table.evicted
    }

    fn ticks(&self, boot_ns: u64) -> u64 {
        boot_ns / self.ns_per_tick
    }

    /// Updates state from `record` and fills in its context.
    /// Returns a container lifecycle record to write before this one when
    /// the event starts or ends a container.
    pub fn enrich(&mut self, record: &mut Record) -> Option<Record> {
        let mut lifecycle = None;
        match &mut record.body {
            Body::Exec(e) => {
                self.proc_misses.remove(&e.process.pid);
                let args = byte_args(&e.data.exec.args);
                learn_state_dir(&mut self.containers, &args);
                let container =
                    self.containers
                        .resolve(e.cgroup.id, e.cgroup.v1_id.unwrap_or(0), true);
                // Announced with its metadata where it can be: `runc init`
                // may run before runc's state exists (a loaded node, a slow
                // VM), and the rules on container_start need the mounts.
                // The workload's exec retries the lookup.
                let too_early = container.meta.is_none()
                    && container.metadata_error.is_some()
                    && metadata::is_runtime_setup(&args);
                if !container.is_host()
                    && container.id != "unknown"
                    && !too_early
                    && self.running.insert(container.id.clone())
                {
                    lifecycle = Some(Body::ContainerStart(ContainerLifecycle {
                        container: container.clone(),
                        pid: Some(e.process.pid),
                    }));
                }
                self.table.insert(ProcessInfo {
                    pid: e.process.pid,
                    ppid: e.data.exec.ppid,
                    start_ticks: self.ticks(e.data.exec.start_boottime_ns),
                    image: Arc::new(ExecImage::new(
                        e.data.exec.path.clone(),
                        e.data.exec.args.clone(),
                    )),
                    container: Some(container),
                });
                self.fill(e.subject());
            }
            Body::Fork(e) => {
                self.proc_misses.remove(&e.process.pid);
                let container =
                    self.containers
                        .resolve(e.cgroup.id, e.cgroup.v1_id.unwrap_or(0), false);
                let ticks = self.ticks(e.data.fork.start_boottime_ns);
                self.table
                    .fork(e.process.pid, e.data.fork.ppid, ticks, Some(container));
                self.fill(e.subject());
            }
            Body::Exit(e) => {
                self.fill(e.subject());
                self.table.remove(e.process.pid);
            }
            Body::CgroupMkdir(e) => {
                let d = &e.data.cgroup_dir;
                self.containers
                    .on_mkdir(d.hierarchy_id, d.id, &d.path.lossy());
                self.fill(e.subject());
            }
            Body::CgroupRmdir(e) => {
                self.fill(e.subject());
                let d = &e.data.cgroup_dir;
                // Both hierarchies of a hybrid host remove the directory; the
                // first removal ends the container.
                if let Some(c) = self
                    .containers
                    .on_rmdir(d.hierarchy_id, d.id, &d.path.lossy())
                    && self.running.remove(&c.id)
                {
                    lifecycle = Some(Body::ContainerStop(ContainerLifecycle {
                        container: c,
                        pid: None,
                    }));
                }
            }
            Body::Egress(e) => {
                e.container = Some(self.containers.resolve(e.cgroup.id, 0, false));
            }
            // Every other event processes cause (opens, connects, ...)
            // needs only its context; the sensor's own records have it.
            body => {
                if let Some(subject) = body.subject_mut() {
                    self.fill(subject);
                }
            }
        }
        lifecycle.map(|body| Record {
            schema: record.schema,
            source: record.source,
            time: record.time.clone(),
            boot_ns: record.boot_ns,
            body,
        })
    }

    fn fill(&mut self, e: Subject<'_>) {
        let pid = e.process.pid;
        // The event's own cgroup is authoritative at the time of the event;
        // on hybrid hosts where a runtime manages only v1 controllers the
        // cgroup2 id says "host", and the table (set at exec/fork from the
        // v1 id) knows better.
        let mut container =
            self.containers
                .resolve(e.cgroup.id, e.cgroup.v1_id.unwrap_or(0), false);
        let known = self.table.get(pid).is_some();
        if known {
            self.process_hits += 1;
        } else {
            self.process_misses += 1;
        }
        if !known && !self.proc_misses.contains(&pid) {
            match proc_scan::scan_one(pid) {
                Some(p) => {
                    let info = from_proc(&mut self.containers, p, self.v1_controller);
                    self.table.insert(info);
                }
                None => {
                    if self.proc_misses.len() >= PROC_MISSES_CAP {
                        self.proc_misses.clear();
                    }
                    self.proc_misses.insert(pid);
                }
            }
        }
        if let Some(p) = self.table.get(pid) {
            e.process.ppid = Some(p.ppid);
            e.process.start_ticks = Some(p.start_ticks);
            e.process.image = Some(p.image.clone());
            if container.is_host()
                && let Some(known) = p.container.as_ref().filter(|c| !c.is_host())
            {
                container = known.clone();
            }
            e.process.ancestors = self.table.ancestors(pid);
        }
        *e.container = Some(container);
    }
}
