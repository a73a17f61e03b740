//! New and ended processes, from successive process-table snapshots
//! (sysinfo: /proc on Linux, libproc on macOS, the toolhelp/NT APIs on
//! Windows). A process that starts and ends between two snapshots is never
//! seen; the collector counts those it can infer (a parent never seen).
use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    sync::Arc,
    time::{Duration, Instant},
};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

use crate::{process::ExecImage, text::Text};

/// What the poller knows of a live process.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Process id.
    pub pid: u32,
    /// Parent pid, where the OS reports one.
    pub ppid: Option<u32>,
    /// Real uid (unknown on Windows, which has SIDs: u32::MAX).
    pub uid: u32,
    /// Real gid (as uid).
    pub gid: u32,
    /// Process name (at most 15 bytes, like `comm`).
    pub comm: Text,
    /// Start in 1/100 s since boot, the unit of `start_ticks` on Linux
    /// (USER_HZ), at the OS's one-second resolution; with `pid`, the
    /// process's identity.
    pub start_ticks: u64,
    /// Executable and argv.
    pub image: Arc<ExecImage>,
}

/// The changes one poll found.
#[derive(Debug, Default)]
pub struct Changes {
    /// Processes that appeared, parents before children.
    pub started: Vec<Seen>,
    /// Recently seen processes that have since exec'd another program.
    pub execed: Vec<Seen>,
    /// Processes that went away.
    pub ended: Vec<Seen>,
}

/// Diffs process-table snapshots.
pub struct ProcessPoller {
    sys: System,
    live: HashMap<u32, Seen>,
    /// Pids seen recently enough to be read again, with when first seen.
    young: HashMap<u32, Instant>,
    young_for: Duration,
    me: u32,
    boot_secs: u64,
}

impl ProcessPoller {
    /// Takes the first snapshot; what runs now is the baseline, not news.
    /// New processes are read again at every poll for `young_for`:
    /// processes often exec right after they start (`runc init` becoming
    /// the container's entrypoint, a wrapper's `exec`), and a snapshot taken
    /// in between would otherwise keep the first program for good. Older
    /// processes are not read again, so the cost of a poll stays with the
    /// new ones.
    pub fn new(young_for: Duration) -> Result<Self, sysinfo::Error> {
        let mut p = Self {
            sys: System::new()?,
            live: HashMap::new(),
            young: HashMap::new(),
            young_for,
            me: std::process::id(),
            boot_secs: System::boot_time().unwrap_or(0),
        };
        p.poll();
        p.young.clear();
        Ok(p)
    }

    /// The live process `pid`, if the last snapshot had it.
    pub fn get(&self, pid: u32) -> Option<&Seen> {
        self.live.get(&pid)
    }

    /// Takes a snapshot and returns what changed since the previous one.
    pub fn poll(&mut self) -> Changes {
        let mut changes = match listed_pids() {
            Some(pids) => self.poll_listed(&pids),
            None => self.poll_all(),
        };
        changes.execed = self.reread_young();
        let now = Instant::now();
        for s in &changes.started {
            self.young.insert(s.pid, now);
        }
        changes.started.sort_by_key(|s| (s.start_ticks, s.pid));
        changes
    }

    /// Reads young processes' executable and argv again; returns those
    /// that changed (an exec since they were seen).
    fn reread_young(&mut self) -> Vec<Seen> {
        let young_for = self.young_for;
        self.young
            .retain(|pid, seen| seen.elapsed() < young_for && self.live.contains_key(pid));
        if self.young.is_empty() {
            return Vec::new();
        }
        let asked: Vec<Pid> = self.young.keys().map(|&p| Pid::from_u32(p)).collect();
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&asked),
            false,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_exe(UpdateKind::Always)
                .with_cmd(UpdateKind::Always),
        );
        let mut execed = Vec::new();
        for pid in self.young.keys() {
            let (Some(p), Some(known)) = (
                self.sys.process(Pid::from_u32(*pid)),
                self.live.get_mut(pid),
            ) else {
                continue;
            };
            let mut now = seen(*pid, p, self.boot_secs);
            if now.start_ticks == known.start_ticks && now.image != known.image {
                // sysinfo keeps the name it read first.
                now.comm = name_after_exec(*pid, &now.image);
                *known = now.clone();
                execed.push(now);
            }
        }
        execed.sort_by_key(|s| s.pid);
        execed
    }

    /// exe, argv and user only for processes not seen before: the cost of
    /// a poll stays with the new ones.
    fn refresh_kind() -> ProcessRefreshKind {
        ProcessRefreshKind::nothing()
            .without_tasks()
            .with_exe(UpdateKind::OnlyIfNotSet)
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_user(UpdateKind::OnlyIfNotSet)
    }

    /// Where the OS lists pids cheaply (Linux: the /proc directory), only
    /// new pids are read, and gone ones are handed to sysinfo so it drops
    /// them. A pid reused within one interval (pid_max wrapping around in
    /// under a second) is taken for the process it replaced.
    fn poll_listed(&mut self, pids: &HashSet<u32>) -> Changes {
        let new: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| *p != self.me && !self.live.contains_key(p))
            .collect();
        let gone: Vec<u32> = self
            .live
            .keys()
            .copied()
            .filter(|p| !pids.contains(p))
            .collect();
        let asked: Vec<Pid> = new.iter().chain(&gone).map(|&p| Pid::from_u32(p)).collect();
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&asked),
            true,
            Self::refresh_kind(),
        );
        let mut started = Vec::new();
        for pid in new {
            if let Some(p) = self.sys.process(Pid::from_u32(pid))
                && p.thread_kind().is_none()
            {
                let s = seen(pid, p, self.boot_secs);
                self.live.insert(pid, s.clone());
                started.push(s);
            }
        }
        let ended = gone.iter().filter_map(|p| self.live.remove(p)).collect();
        Changes {
            started,
            ended,
            ..Changes::default()
        }
    }

    /// Elsewhere, the whole table each time (one system call on Windows).
    fn poll_all(&mut self) -> Changes {
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::All, true, Self::refresh_kind());
        let mut now: HashMap<u32, Seen> = HashMap::with_capacity(self.sys.processes().len());
        let mut started = Vec::new();
        for (pid, p) in self.sys.processes() {
            let pid = pid.as_u32();
            if pid == self.me || p.thread_kind().is_some() {
                continue;
            }
            let seen = match self.live.get(&pid) {
                // Same pid and start: the same process.
                Some(s) if s.start_ticks == ticks(p, self.boot_secs) => s.clone(),
                _ => {
                    let s = seen(pid, p, self.boot_secs);
                    started.push(s.clone());
                    s
                }
            };
            now.insert(pid, seen);
        }
        let ended = self
            .live
            .drain()
            .filter(|(pid, s)| now.get(pid).is_none_or(|n| n.start_ticks != s.start_ticks))
            .map(|(_, s)| s)
            .collect();
        self.live = now;
        Changes {
            started,
            ended,
            ..Changes::default()
        }
    }
}

/// Pids from the /proc directory (processes only: threads live below
/// /proc/<pid>/task).
#[cfg(target_os = "linux")]
fn listed_pids() -> Option<HashSet<u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

#[cfg(not(target_os = "linux"))]
fn listed_pids() -> Option<HashSet<u32>> {
    None
}

fn seen(pid: u32, p: &sysinfo::Process, boot_secs: u64) -> Seen {
    let args: Vec<Text> = p.cmd().iter().map(|a| text(a)).collect();
    let exe = p
        .exe()
        .map(|e| text(e.as_os_str()))
        .or_else(|| args.first().cloned())
        .unwrap_or_else(|| text(p.name()));
    let mut comm = text(p.name()).0;
    comm.truncate(15);
    let (uid, gid) = ids(p);
    Seen {
        pid,
        ppid: p.parent().map(Pid::as_u32),
        uid,
        gid,
        comm: Text(comm),
        start_ticks: ticks(p, boot_secs),
        image: Arc::new(ExecImage::new(exe, args)),
    }
}

/// A process's name after an exec: the kernel's `comm` on Linux; elsewhere,
/// as the kernel would name it, the file name of what was executed.
fn name_after_exec(pid: u32, image: &ExecImage) -> Text {
    #[cfg(target_os = "linux")]
    if let Ok(mut comm) = std::fs::read(format!("/proc/{pid}/comm")) {
        if comm.last() == Some(&b'\n') {
            comm.pop();
        }
        return Text(comm);
    }
    let _ = pid;
    let path = image.args.first().unwrap_or(&image.exe).as_bytes();
    let mut name = path
        .rsplit(|&b| b == b'/' || b == b'\\')
        .next()
        .unwrap_or(path)
        .to_vec();
    name.truncate(15);
    Text(name)
}

/// Start of `p` in 1/100 s since boot.
fn ticks(p: &sysinfo::Process, boot_secs: u64) -> u64 {
    p.start_time().saturating_sub(boot_secs) * 100
}

#[cfg(unix)]
fn ids(p: &sysinfo::Process) -> (u32, u32) {
    (
        p.user_id().map_or(u32::MAX, |u| **u),
        p.group_id().map_or(u32::MAX, |g| *g),
    )
}

#[cfg(not(unix))]
fn ids(_: &sysinfo::Process) -> (u32, u32) {
    (u32::MAX, u32::MAX)
}

/// OS strings as raw bytes where they are bytes (Unix); elsewhere UTF-8,
/// lossily for unpaired surrogates.
pub fn text(s: &OsStr) -> Text {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        Text(s.as_bytes().to_vec())
    }
    #[cfg(not(unix))]
    {
        Text(s.to_string_lossy().into_owned().into_bytes())
    }
}
