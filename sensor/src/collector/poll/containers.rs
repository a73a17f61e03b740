//! Which container a polled process runs in. On Linux, its cgroup path
//! (/proc/<pid>/cgroup) is read when the poller first needs it and resolved
//! as the eBPF path resolves cgroups: runtime path conventions, then the
//! runtime's state. On macOS and Windows, Docker Desktop runs containers in
//! a VM whose processes the host cannot see, so every visible process is a
//! host process (docs/POLLING.md has the limits).
use std::{collections::HashMap, sync::Arc};

use crate::container::ContainerRef;
#[cfg(target_os = "linux")]
use crate::container::{Attributor, cgroups::CgroupIndex};

/// Containers of polled processes, by pid.
pub struct Containers {
    by_pid: HashMap<u32, Arc<ContainerRef>>,
    #[cfg(target_os = "linux")]
    attributor: Attributor,
    /// For a pid never resolved.
    unresolved: Arc<ContainerRef>,
    /// For records without a process (file notifications).
    no_process: Arc<ContainerRef>,
}

impl Containers {
    /// Resolving from this system.
    pub fn new() -> Self {
        #[cfg(target_os = "linux")]
        let unresolved = ContainerRef::unknown("the process exited before its cgroup was read");
        #[cfg(not(target_os = "linux"))]
        let unresolved = ContainerRef::host();
        Self {
            by_pid: HashMap::new(),
            // Paths only: the cgroup-id index serves kernel events.
            #[cfg(target_os = "linux")]
            attributor: Attributor::new(CgroupIndex::default()),
            unresolved: Arc::new(unresolved),
            no_process: Arc::new(ContainerRef::unknown(
                "file notifications do not name the writing process",
            )),
        }
    }

    /// Every process in `container` (recorded observations of other hosts).
    pub fn fixed(container: ContainerRef) -> Self {
        Self {
            unresolved: Arc::new(container),
            ..Self::new()
        }
    }

    /// Resolves `pid` unless known; `again` for a pid that was just
    /// (re)used by a new process. Elsewhere than Linux there is nothing to
    /// read: every process stays a host process.
    pub fn learn(&mut self, pid: u32, again: bool) {
        if again || !self.by_pid.contains_key(&pid) {
            #[cfg(target_os = "linux")]
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
                // The unified path, or on v1 hosts any controller's: the
                // first naming a container wins.
                let found = text
                    .lines()
                    .filter_map(|l| l.splitn(3, ':').nth(2))
                    .find_map(|path| self.attributor.resolve_path(path));
                let container = found.unwrap_or_else(|| self.attributor.host());
                self.by_pid.insert(pid, container);
            } else {
                // Gone already: nothing of a previous holder of the pid stays.
                self.by_pid.remove(&pid);
            }
        }
    }

    /// Keeps only the pids `live` says are still there.
    pub fn retain(&mut self, live: impl Fn(u32) -> bool) {
        self.by_pid.retain(|pid, _| live(*pid));
    }

    /// The container of `pid` (0: no process).
    pub fn of(&self, pid: u32) -> Arc<ContainerRef> {
        if pid == 0 {
            return self.no_process.clone();
        }
        self.by_pid.get(&pid).unwrap_or(&self.unresolved).clone()
    }
}

impl Default for Containers {
    fn default() -> Self {
        Self::new()
    }
}
