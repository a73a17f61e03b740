//! The process table: what each live process is (executable, argv, parent,
//! start), kept from fork/exec/exit events and seeded from /proc so
//! processes older than the sensor are known too.
#[cfg(target_os = "linux")]
pub mod proc_scan;

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize, Serializer, ser::SerializeStruct as _};

use crate::{container::ContainerRef, json_cache::JsonCache, text::Text};

/// What an exec loaded: shared (`Arc`) by the process, its forked children
/// until they exec, and every event that lists it as an ancestor, so
/// enriching an event copies pointers, not strings.
///
/// Every event repeats its ancestry, so the JSON of `exe` and `args` is
/// built once per image and then copied (`JsonCache`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ExecImage {
    /// Executable path.
    pub exe: Text,
    /// argv.
    pub args: Vec<Text>,
    #[serde(skip)]
    json: (JsonCache, JsonCache),
}

impl ExecImage {
    /// An image of `exe` run with `args`.
    pub fn new(exe: Text, args: Vec<Text>) -> Self {
        Self {
            exe,
            args,
            json: Default::default(),
        }
    }
}

impl Serialize for ExecImage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ExecImage", 2)?;
        st.serialize_field("exe", &self.json.0.of(&self.exe))?;
        st.serialize_field("args", &self.json.1.of(&self.args[..]))?;
        st.end()
    }
}

/// One live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Start time in clock ticks since boot (field 22 of /proc/<pid>/stat);
    /// `(pid, start_ticks)` identifies a process across pid reuse.
    pub start_ticks: u64,
    /// What it runs.
    pub image: Arc<ExecImage>,
    /// Container it runs in.
    pub container: Option<Arc<ContainerRef>>,
}

/// An ancestor as listed on events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    /// Process id.
    pub pid: u32,
    /// Start, clock ticks since boot.
    pub start_ticks: u64,
    /// Its executable and argv.
    #[serde(flatten)]
    pub image: Arc<ExecImage>,
}

/// A parent chain as events list it, nearest first. Shared by a process's
/// events while its ancestors stay the same, with its JSON built once: most
/// of an event's bytes are its ancestry, and a busy process emits many
/// events with the same one.
#[derive(Clone, Debug)]
pub struct Ancestry(Arc<AncestryInner>);

impl Default for Ancestry {
    /// The one empty chain, shared: the events of a process without known
    /// ancestors keep one identity, which the rules' per-process memo keys on.
    fn default() -> Self {
        static EMPTY: std::sync::LazyLock<Ancestry> =
            std::sync::LazyLock::new(|| Ancestry(Arc::default()));
        EMPTY.clone()
    }
}

#[derive(Debug, Default)]
struct AncestryInner {
    list: Vec<Ancestor>,
    json: JsonCache,
}

impl Ancestry {
    /// No known ancestor.
    pub fn is_empty(&self) -> bool {
        self.0.list.is_empty()
    }

    /// The same shared chain (not only an equal one).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Vec<Ancestor>> for Ancestry {
    fn from(list: Vec<Ancestor>) -> Self {
        Self(Arc::new(AncestryInner {
            list,
            json: JsonCache::default(),
        }))
    }
}

impl std::ops::Deref for Ancestry {
    type Target = [Ancestor];
    fn deref(&self) -> &[Ancestor] {
        &self.0.list
    }
}

impl PartialEq for Ancestry {
    fn eq(&self, other: &Self) -> bool {
        self.0.list == other.0.list
    }
}

impl Eq for Ancestry {}

impl Serialize for Ancestry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.json.of(&self.0.list[..]).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Ancestry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Ancestor>::deserialize(d).map(Self::from)
    }
}

/// Live processes by pid, bounded.
pub struct ProcessTable {
    /// Both maps are read for every event, hence foldhash over SipHash.
    procs: foldhash::HashMap<u32, Arc<ProcessInfo>>,
    cap: usize,
    /// Entries dropped because the table was full (counted, reported).
    pub evicted: u64,
    /// Last ancestry built per pid, with the table entries it came from:
    /// reused while every entry is still the same (`Arc::ptr_eq`; holding
    /// them keeps their addresses from being reused).
    ancestry: foldhash::HashMap<u32, (Vec<Arc<ProcessInfo>>, Ancestry)>,
}

/// Ancestors listed on an event, nearest first.
pub const MAX_ANCESTORS: usize = 8;

impl ProcessTable {
    /// An empty table holding at most `cap` processes.
    pub fn new(cap: usize) -> Self {
        Self {
            procs: HashMap::default(),
            cap,
            evicted: 0,
            ancestry: HashMap::default(),
        }
    }

    /// Looks a process up.
    pub fn get(&self, pid: u32) -> Option<&Arc<ProcessInfo>> {
        self.procs.get(&pid)
    }

    /// Inserts or replaces a process.
    pub fn insert(&mut self, info: ProcessInfo) -> Arc<ProcessInfo> {
        if self.procs.len() >= self.cap && !self.procs.contains_key(&info.pid) {
            // Full: drop an arbitrary entry. A missed exit is the usual cause;
            // the count shows up in the loss accounting.
            if let Some(&victim) = self.procs.keys().next() {
                self.remove(victim);
                self.evicted += 1;
            }
        }
        let info = Arc::new(info);
        self.procs.insert(info.pid, info.clone());
        info
    }

    /// A fork: the child runs the parent's image until it execs.
    pub fn fork(
        &mut self,
        pid: u32,
        ppid: u32,
        start_ticks: u64,
        container: Option<Arc<ContainerRef>>,
    ) -> Arc<ProcessInfo> {
        let (image, inherited) = match self.procs.get(&ppid) {
            Some(p) => (p.image.clone(), p.container.clone()),
            None => (Arc::default(), None),
        };
        self.insert(ProcessInfo {
            pid,
            ppid,
            start_ticks,
            image,
            container: container.or(inherited),
        })
    }

    /// Removes an exited process.
    pub fn remove(&mut self, pid: u32) -> Option<Arc<ProcessInfo>> {
        self.ancestry.remove(&pid);
        self.procs.remove(&pid)
    }

    /// Ancestors of `pid`, nearest first: up to [`MAX_ANCESTORS`], and for a
    /// containerised process only up to the container's entry point (the
    /// runtime's shim above it is not the workload's history).
    pub fn ancestors(&mut self, pid: u32) -> Ancestry {
        let Some(me) = self.procs.get(&pid) else {
            return Ancestry::default();
        };
        let my_container = me.container.as_ref().filter(|c| !c.is_host());
        let mut chain: [Option<&Arc<ProcessInfo>>; MAX_ANCESTORS] = [None; MAX_ANCESTORS];
        let mut n = 0;
        let mut next = me.ppid;
        while n < MAX_ANCESTORS && next != 0 {
            let Some(p) = self.procs.get(&next) else {
                break;
            };
            if let Some(c) = my_container
                && p.container.as_ref().map(|pc| &pc.id) != Some(&c.id)
            {
                break;
            }
            chain[n] = Some(p);
            n += 1;
            if p.ppid == p.pid {
                break;
            }
            next = p.ppid;
        }
        let chain = &chain[..n];
        if let Some((known, ancestry)) = self.ancestry.get(&pid)
            && known.len() == n
            && known
                .iter()
                .zip(chain)
                .all(|(k, c)| c.is_some_and(|c| Arc::ptr_eq(k, c)))
        {
            return ancestry.clone();
        }
        let entries: Vec<Arc<ProcessInfo>> =
            chain.iter().flatten().map(|p| Arc::clone(p)).collect();
        let ancestry = Ancestry::from(
            entries
                .iter()
                .map(|p| Ancestor {
                    pid: p.pid,
                    start_ticks: p.start_ticks,
                    image: p.image.clone(),
                })
                .collect::<Vec<_>>(),
        );
        self.ancestry.insert(pid, (entries, ancestry.clone()));
        ancestry
    }

    /// Number of processes known.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, ppid: u32, exe: &str, container: Option<&Arc<ContainerRef>>) -> ProcessInfo {
        let image = Arc::new(ExecImage::new(exe.into(), vec![exe.into()]));
        ProcessInfo {
            pid,
            ppid,
            start_ticks: pid as u64,
            image,
            container: container.cloned(),
        }
    }

    #[test]
    fn fork_inherits_then_exec_replaces() {
        let mut t = ProcessTable::new(100);
        t.insert(info(10, 1, "/bin/bash", None));
        let child = t.fork(11, 10, 500, None);
        assert_eq!(
            (child.image.exe.as_bytes(), child.start_ticks),
            (&b"/bin/bash"[..], 500)
        );
        t.insert(info(11, 10, "/usr/bin/curl", None));
        assert_eq!(t.get(11).unwrap().image.exe.as_bytes(), b"/usr/bin/curl");
        assert!(t.remove(11).is_some() && t.get(11).is_none());
    }

    #[test]
    fn ancestry_is_shared_until_an_ancestor_changes() {
        let mut t = ProcessTable::new(100);
        t.insert(info(1, 0, "/sbin/init", None));
        t.insert(info(10, 1, "/bin/bash", None));
        t.insert(info(11, 10, "/usr/bin/make", None));
        let a = t.ancestors(11);
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            Arc::ptr_eq(&a.0, &t.ancestors(11).0),
            "unchanged chain is reused"
        );
        // The parent execs: same pid, new image.
        t.insert(info(10, 1, "/usr/bin/python3", None));
        let b = t.ancestors(11);
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(b[0].image.exe.as_bytes(), b"/usr/bin/python3");
        assert_ne!(serde_json::to_string(&b).unwrap(), json);
        // The parent exits: the chain is shorter.
        t.remove(10);
        assert!(t.ancestors(11).is_empty());
        // Cached JSON is the same as building it from scratch.
        let round: Ancestry = serde_json::from_str(&json).unwrap();
        assert_eq!(round, a);
        assert_eq!(serde_json::to_string(&round).unwrap(), json);
    }

    #[test]
    fn ancestry_stops_at_the_container_entry_point() {
        let c = Arc::new(ContainerRef::from(
            crate::container::cgroup_path::CgroupContainer {
                id: "abc".into(),
                runtime: "docker".into(),
                pod_uid: None,
            },
        ));
        let host = Arc::new(ContainerRef::host());
        let mut t = ProcessTable::new(100);
        t.insert(info(1, 0, "/sbin/init", Some(&host)));
        t.insert(info(50, 1, "/usr/bin/containerd-shim", Some(&host)));
        t.insert(info(60, 50, "/bin/sh", Some(&c)));
        t.insert(info(61, 60, "/usr/bin/tar", Some(&c)));
        t.insert(info(62, 61, "/usr/bin/gzip", Some(&c)));
        let chain: Vec<u32> = t.ancestors(62).iter().map(|p| p.pid).collect();
        assert_eq!(chain, vec![61, 60]);
        let host_chain: Vec<u32> = t.ancestors(50).iter().map(|p| p.pid).collect();
        assert_eq!(host_chain, vec![1]);
    }

    #[test]
    fn ancestry_is_bounded_and_survives_loops() {
        let mut t = ProcessTable::new(100);
        for pid in 1..=20 {
            t.insert(info(pid, pid - 1, "/bin/sh", None));
        }
        assert_eq!(t.ancestors(20).len(), MAX_ANCESTORS);
        t.insert(info(30, 31, "a", None));
        t.insert(info(31, 30, "b", None));
        assert_eq!(t.ancestors(30).len(), MAX_ANCESTORS);
    }

    #[test]
    fn full_table_evicts_and_counts() {
        let mut t = ProcessTable::new(2);
        for pid in 1..=3 {
            t.insert(info(pid, 0, "x", None));
        }
        assert_eq!((t.len(), t.evicted), (2, 1));
    }
}
