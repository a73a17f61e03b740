//! Pollers' findings -> records in the eBPF path's schema. Kept apart from
//! the pollers so recorded observations of any platform can be normalised
//! and checked against the rules (tests below).
use std::net::IpAddr;

use super::{
    containers::Containers,
    files::FileChange,
    processes::{ProcessPoller, Seen, text},
    sockets::Outbound,
};
use crate::{
    clock::BootClock,
    event::{
        AddressSource, Body, CgroupRef, Connect, ConnectData, Event, Exec, ExecData, Exit,
        ExitData, Name, Open, OpenData, PathSource, Process, Record, SCHEMA_VERSION, Source,
    },
    process::{Ancestor, Ancestry},
    text::Text,
};

/// Ancestors listed per event, as the eBPF path does.
const ANCESTORS_MAX: usize = 8;

/// The process table the records are described from.
pub trait ProcessLookup {
    /// A live process.
    fn get(&self, pid: u32) -> Option<&Seen>;

    /// Its ancestors, nearest first, as far as the table knows them.
    fn ancestry(&self, pid: u32) -> Ancestry {
        let mut list: Vec<Ancestor> = Vec::new();
        let mut next = self.get(pid).and_then(|s| s.ppid);
        while let Some(ppid) = next {
            let Some(p) = self.get(ppid) else { break };
            if list.len() == ANCESTORS_MAX || list.iter().any(|a| a.pid == ppid) {
                break;
            }
            list.push(Ancestor {
                pid: p.pid,
                start_ticks: p.start_ticks,
                image: p.image.clone(),
            });
            next = p.ppid;
        }
        Ancestry::from(list)
    }
}

impl ProcessLookup for ProcessPoller {
    fn get(&self, pid: u32) -> Option<&Seen> {
        ProcessPoller::get(self, pid)
    }
}

/// Builds records from what the pollers found.
pub struct Normaliser<'a, P> {
    /// Process table.
    pub procs: &'a P,
    /// Wall-clock conversion.
    pub clock: &'a BootClock,
    /// Containers of the processes.
    pub containers: &'a Containers,
}

impl<P: ProcessLookup> Normaliser<'_, P> {
    /// A record of `body`, stamped now.
    pub fn record(&self, body: Body) -> Record {
        let now = BootClock::now_boot_ns();
        Record {
            schema: SCHEMA_VERSION,
            source: Source::Poll,
            time: self.clock.rfc3339(now),
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
            container: Some(self.containers.of(pid)),
            data,
        }
    }

    /// A process that appeared.
    pub fn exec(&self, s: &Seen) -> Record {
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

    /// A process that went away.
    pub fn exit(&self, s: &Seen) -> Record {
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

    /// A new outbound connection.
    pub fn connect(&self, o: &Outbound) -> Record {
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

    /// A file created or written.
    pub fn file(&self, c: &FileChange) -> Record {
        let mut flags = vec![Name::from("O_WRONLY")];
        if c.created {
            flags.push("O_CREAT".into());
        }
        let open = OpenData {
            syscall: "notify".into(),
            path: text(c.path.as_os_str()),
            path_source: PathSource::File,
            path_truncated: false,
            path_pseudo: false,
            compat: false,
            io_uring: false,
            access: "write".into(),
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

#[cfg(test)]
mod tests {
    //! Recorded observations from Windows and macOS hosts (the replay
    //! fixtures' exec lines, which hold what a process table shows: pid,
    //! parent, ids, name, executable, argv and the parent chain) are turned
    //! into what the poller would have seen, normalised, and must raise
    //! exactly the alerts the recorded lines raise.
    use std::{
        collections::{BTreeSet, HashMap},
        sync::Arc,
    };

    use super::*;
    use crate::{
        container::ContainerRef,
        event::Body,
        rules::{RuleSource, engine::Engine},
    };

    struct Table(HashMap<u32, Seen>);

    impl ProcessLookup for Table {
        fn get(&self, pid: u32) -> Option<&Seen> {
            self.0.get(&pid)
        }
    }

    fn recorded_execs(fixture: &str) -> Vec<Record> {
        let path = format!(
            "{}/../tests/fixtures/replay/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .filter_map(|l| serde_json::from_str::<Record>(l).ok())
            .filter(|r| matches!(r.body, Body::Exec(_)))
            .collect()
    }

    /// The table entries a process-table snapshot would hold for `r`'s
    /// process and its ancestors.
    fn observed(r: &Record, table: &mut HashMap<u32, Seen>) -> Seen {
        let Body::Exec(e) = &r.body else {
            unreachable!("execs only")
        };
        let p = &e.process;
        let seen = Seen {
            pid: p.pid,
            ppid: p.ppid,
            uid: p.uid,
            gid: p.gid,
            comm: p.comm.clone(),
            start_ticks: p.start_ticks.unwrap_or(0),
            image: p.image.clone().expect("recorded execs carry their image"),
        };
        let chain: Vec<&Ancestor> = p.ancestors.iter().collect();
        for (i, a) in chain.iter().enumerate() {
            table.entry(a.pid).or_insert_with(|| Seen {
                pid: a.pid,
                ppid: chain.get(i + 1).map(|n| n.pid),
                uid: p.uid,
                gid: p.gid,
                comm: Text(
                    a.image
                        .exe
                        .as_bytes()
                        .rsplit(|&c| c == b'\\' || c == b'/')
                        .next()
                        .unwrap_or_default()
                        .to_vec(),
                ),
                start_ticks: a.start_ticks,
                image: a.image.clone(),
            });
        }
        table.insert(p.pid, seen.clone());
        seen
    }

    fn alerts(records: &[Record]) -> BTreeSet<(u32, String)> {
        let set = RuleSource::Builtin.load().expect("built-in rules");
        let mut engine = Engine::new(Arc::new(set));
        let mut out = BTreeSet::new();
        for r in records {
            engine.check(r, &mut |a| {
                if let Body::Alert(a) = &a.body {
                    out.insert((a.process.as_ref().map_or(0, |p| p.pid), a.rule.id.clone()));
                }
            });
        }
        out
    }

    #[test]
    fn polled_windows_and_macos_processes_raise_the_recorded_alerts() {
        for fixture in ["windows.jsonl", "macos.jsonl"] {
            let recorded = recorded_execs(fixture);
            let mut table = HashMap::new();
            let seen: Vec<Seen> = recorded.iter().map(|r| observed(r, &mut table)).collect();
            let table = Table(table);
            let clock = BootClock::new();
            let containers = Containers::fixed(ContainerRef::host());
            let norm = Normaliser {
                procs: &table,
                clock: &clock,
                containers: &containers,
            };
            let polled: Vec<Record> = seen.iter().map(|s| norm.exec(s)).collect();
            for (r, p) in recorded.iter().zip(&polled) {
                let (Body::Exec(r), Body::Exec(p)) = (&r.body, &p.body) else {
                    unreachable!()
                };
                assert_eq!(r.data.exec.args, p.data.exec.args, "{fixture}");
                assert_eq!(r.data.exec.path, p.data.exec.path, "{fixture}");
            }
            let want = alerts(&recorded);
            assert!(!want.is_empty(), "{fixture} raises alerts");
            assert_eq!(alerts(&polled), want, "{fixture}");
        }
    }
}
