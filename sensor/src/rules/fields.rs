//! The fields conditions can test, and how each is read from a record
//! without allocating: values are borrowed from the record, or from
//! [`Prepared`], which joins command lines on first use per event.
use std::{cell::OnceCell, net::IpAddr};

use super::memo::ProcessMemo;
use crate::{
    event::{Body, Process, Record},
    process::{Ancestor, ExecImage},
    text::Text,
};

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Bytes (paths and argv may not be UTF-8).
    Str,
    /// A number.
    Int,
    /// true/false.
    Bool,
    /// An IP address.
    Ip,
}

impl Type {
    /// For error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Str => "a string",
            Self::Int => "a number",
            Self::Bool => "a boolean",
            Self::Ip => "an IP address",
        }
    }
}

/// One value of a field.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    /// Bytes.
    Str(&'a [u8]),
    /// Number.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// Address.
    Ip(IpAddr),
}

macro_rules! fields {
    ($($variant:ident = $name:literal : $ty:ident, $doc:literal;)*) => {
        /// A field of the condition language.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Field {
            $(#[doc = $doc] $variant,)*
        }

        /// Every field: name, type, meaning (docs/RULES.md lists them).
        pub const CATALOG: &[(&str, Field, Type, &str)] = &[
            $(($name, Field::$variant, Type::$ty, $doc),)*
        ];
    };
}

fields! {
    EvtType = "evt.type": Str, "record kind: exec, fork, exit, open, connect, cgroup_mkdir, cgroup_rmdir, container_start, container_stop, egress, rate_limited, bpf, tamper, hook_lost";
    ProcPid = "proc.pid": Int, "process id";
    ProcPpid = "proc.ppid": Int, "parent process id";
    ProcUid = "proc.uid": Int, "real uid";
    ProcComm = "proc.comm": Str, "thread name (15 bytes)";
    ProcExe = "proc.exe": Str, "executable path";
    ProcName = "proc.name": Str, "the name it was started as: comm (a busybox applet reads `tar`, not `busybox`), or argv[0]'s file name when it re-executed itself through /proc/self/exe";
    ProcExeName = "proc.exe_name": Str, "file name of the executable";
    ProcScript = "proc.script": Str, "for a #! script: the script's path (proc.exe is its interpreter)";
    ProcArgs = "proc.args": Str, "each argument after argv[0] (multi-valued)";
    ProcCmdline = "proc.cmdline": Str, "argv joined with spaces";
    ParentExe = "proc.pexe": Str, "parent's executable path";
    ParentName = "proc.pname": Str, "parent's name (file name of its argv[0], else of its executable)";
    ParentCmdline = "proc.pcmdline": Str, "parent's argv joined with spaces";
    AncestorExe = "proc.aexe": Str, "every ancestor's executable path (multi-valued)";
    AncestorName = "proc.aname": Str, "every ancestor's name, as proc.pname (multi-valued)";
    AncestorCmdline = "proc.acmdline": Str, "every ancestor's command line (multi-valued)";
    ContainerId = "container.id": Str, "container id, `host`, or `unknown`";
    ContainerRuntime = "container.runtime": Str, "docker, containerd, cri-o, podman, cri, host, unknown";
    ContainerName = "container.name": Str, "container name";
    ContainerImage = "container.image": Str, "image reference";
    ContainerPrivileged = "container.privileged": Bool, "CAP_SYS_ADMIN in the bounding set";
    ContainerHostPid = "container.host_pid": Bool, "shares the host pid namespace";
    ContainerHostNetwork = "container.host_network": Bool, "shares the host network namespace";
    ContainerRuntimeSocket = "container.runtime_socket": Bool, "a runtime socket (docker.sock, ...) is mounted in";
    MountSource = "container.mount.source": Str, "host path of each bind mount (multi-valued)";
    MountDestination = "container.mount.dest": Str, "container path of each bind mount (multi-valued)";
    MountRwSource = "container.mount.rw_source": Str, "host path of each read-write bind mount (multi-valued)";
    K8sPod = "k8s.pod.name": Str, "Kubernetes pod name";
    K8sNs = "k8s.ns.name": Str, "Kubernetes namespace";
    K8sPodUid = "k8s.pod.uid": Str, "Kubernetes pod uid";
    OpenPath = "open.path": Str, "opened path";
    OpenName = "open.name": Str, "opened file name (last component)";
    OpenDir = "open.dir": Str, "directory of the opened path";
    OpenOnHostMount = "open.on_host_mount": Bool, "the path lies in a read-write bind mount of a host path";
    OpenWrite = "open.write": Bool, "opened for writing, or with O_CREAT/O_TRUNC";
    OpenSensorFile = "open.sensor_file": Bool, "the path is one of the running sensor's own files: its binary, configuration, rule files, output files";
    OpenCreate = "open.create": Bool, "opened with O_CREAT or O_TMPFILE";
    OpenFlags = "open.flags": Str, "each symbolic open flag (multi-valued)";
    OpenSuccess = "open.success": Bool, "the open returned a descriptor (or io_uring was allowed to open)";
    OpenError = "open.error": Str, "errno name of a failed open";
    ConnectFamily = "connect.family": Str, "inet, inet6, unix";
    ConnectAddress = "connect.address": Ip, "destination address (IPv4-mapped IPv6 reads as IPv4)";
    ConnectPort = "connect.port": Int, "destination port";
    ConnectProtocol = "connect.protocol": Str, "tcp, udp, ...";
    ConnectUnixPath = "connect.unix_path": Str, "unix socket path";
    ConnectSuccess = "connect.success": Bool, "connected, or a non-blocking connect under way";
    ConnectError = "connect.error": Str, "errno name of a failed connect";
    EgressAddress = "egress.address": Ip, "destination of counted traffic";
    EgressPort = "egress.port": Int, "its port (TCP/UDP)";
    EgressProtocol = "egress.protocol": Str, "tcp, udp, ...";
    EgressBytes = "egress.bytes": Int, "bytes the cgroup sent there in the interval";
    EgressPackets = "egress.packets": Int, "packets sent there in the interval";
    RateLimitedSuppressed = "rate_limited.suppressed": Str, "kind of the records the rate limit now suppresses: open or connect";
    RateLimitedLimit = "rate_limited.limit": Int, "records of that kind the process may send per second";
    BpfCmd = "bpf.cmd": Str, "prog_load, prog_attach, prog_detach, raw_tracepoint_open, link_create, link_update, link_detach";
    BpfProgType = "bpf.prog_type": Str, "type of a loaded program: kprobe, tracepoint, raw_tracepoint, tracing, lsm, cgroup_device, ...";
    BpfName = "bpf.name": Str, "the loaded program's name, or the raw tracepoint opened";
    BpfSuccess = "bpf.success": Bool, "the bpf(2) call succeeded";
    TamperSyscall = "tamper.syscall": Str, "ptrace, process_vm_readv, process_vm_writev, kill, tkill, tgkill (aimed at the sensor)";
    TamperRequest = "tamper.request": Str, "ptrace request: attach, seize, peekdata, pokedata, ...";
    TamperSignal = "tamper.signal": Str, "signal sent: SIGSTOP, SIGTERM, ...; SIG0 only probes";
    TamperSuccess = "tamper.success": Bool, "the syscall succeeded (the kernel let it through)";
}

/// Looks a field up by name.
pub fn lookup(name: &str) -> Option<(Field, Type)> {
    CATALOG
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, f, t, _)| (*f, *t))
}

/// The catalog name closest to `name`, for "did you mean".
pub fn closest(name: &str) -> Option<&'static str> {
    CATALOG
        .iter()
        .map(|(n, ..)| (edit_distance(name, n), *n))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Per-event derived values that need joining, built on first use for the
/// event at hand: most events reach no test or output field that reads
/// them. Also what the event's process decided before ([`ProcessMemo`]).
#[derive(Default)]
pub struct Prepared {
    /// The event's kind bit ([`Kind::bit`](crate::event::Kind::bit)).
    kind: u32,
    cmdline: OnceCell<Vec<u8>>,
    pcmdline: OnceCell<Vec<u8>>,
    acmdlines: OnceCell<Vec<Vec<u8>>>,
    memo: ProcessMemo,
}

fn joined<'a>(args: impl Iterator<Item = &'a Text>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(a.as_bytes());
    }
    out
}

impl Prepared {
    /// For a rule set with `memo_slots` process-scoped slots.
    pub fn new(memo_slots: usize) -> Self {
        Self {
            memo: ProcessMemo::new(memo_slots),
            ..Self::default()
        }
    }

    /// Forgets the previous event's values (and the process's, if `rec`
    /// comes from another); `kind` is `rec`'s kind bit, which the engine
    /// has at hand.
    pub fn reset(&mut self, kind: u32, rec: &Record) {
        self.kind = kind;
        self.cmdline.take();
        self.pcmdline.take();
        self.acmdlines.take();
        self.memo.follow(rec);
    }

    /// A process-scoped slot's value, from `eval` on its first use for
    /// this process.
    pub fn memo(&self, slot: usize, eval: impl FnOnce() -> bool) -> bool {
        self.memo.get(slot, eval)
    }

    /// The event's kind bit.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    fn cmdline(&self, image: &ExecImage) -> &[u8] {
        self.cmdline.get_or_init(|| joined(image.args.iter()))
    }

    fn pcmdline(&self, parent: &Ancestor) -> &[u8] {
        self.pcmdline
            .get_or_init(|| joined(parent.image.args.iter()))
    }

    fn acmdlines(&self, p: &Process) -> &[Vec<u8>] {
        self.acmdlines.get_or_init(|| {
            p.ancestors
                .iter()
                .map(|a| joined(a.image.args.iter()))
                .collect()
        })
    }
}

impl Field {
    /// Read only from the acting process (ids, comm, image, ancestry) and
    /// its container, so [`ProcessMemo`] may reuse a result. A field not
    /// listed here is read from the event itself.
    pub fn of_process(self) -> bool {
        use Field::*;
        matches!(
            self,
            ProcPid
                | ProcPpid
                | ProcUid
                | ProcComm
                | ProcExe
                | ProcName
                | ProcExeName
                | ProcScript
                | ProcArgs
                | ProcCmdline
                | ParentExe
                | ParentName
                | ParentCmdline
                | AncestorExe
                | AncestorName
                | AncestorCmdline
                | ContainerId
                | ContainerRuntime
                | ContainerName
                | ContainerImage
                | ContainerPrivileged
                | ContainerHostPid
                | ContainerHostNetwork
                | ContainerRuntimeSocket
                | MountSource
                | MountDestination
                | MountRwSource
                | K8sPod
                | K8sNs
                | K8sPodUid
        )
    }
}

fn base_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&c| c == b'/').next().unwrap_or(path)
}

/// `comm`, except for programs that re-execute themselves through
/// /proc/self/exe (busybox running an applet, runc): their comm is `exe`
/// and argv[0] says what runs.
fn proc_name<'a>(p: &'a Process, image: Option<&'a crate::process::ExecImage>) -> &'a [u8] {
    match image.and_then(|i| i.args.first()) {
        Some(a) if p.comm.as_bytes() == b"exe" && !a.as_bytes().is_empty() => {
            base_name(a.as_bytes())
        }
        _ => p.comm.as_bytes(),
    }
}

/// The script of a `#!` exec: the kernel runs the interpreter with argv
/// `[interpreter, (its argument), script, ...]` and names the process
/// (comm, 15 bytes) after the script file, so the script is the argument
/// whose file name starts with the comm while argv[0]'s does not.
fn script_of<'a>(p: &Process, image: &'a crate::process::ExecImage) -> Option<&'a [u8]> {
    let comm = p.comm.as_bytes();
    let first = image.args.first()?.as_bytes();
    if comm.is_empty() || base_name(first).starts_with(comm) {
        return None;
    }
    image
        .args
        .iter()
        .skip(1)
        .take(2)
        .map(|a| a.as_bytes())
        .find(|a| base_name(a).starts_with(comm))
}

/// The name a process was started as: its argv[0]'s file name, else its
/// executable's.
fn image_name(i: &crate::process::ExecImage) -> &[u8] {
    match i.args.first() {
        Some(a) if !a.as_bytes().is_empty() => base_name(a.as_bytes()),
        _ => base_name(i.exe.as_bytes()),
    }
}

/// `path` is `dir` or inside it.
fn under(path: &[u8], dir: &[u8]) -> bool {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/' || dir.is_empty())
}

fn dir_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &path[..i],
        None => b"",
    }
}

impl Field {
    /// Calls `f` on each value of the field in `rec` until it returns true;
    /// true if it did. An absent field has no values.
    #[inline]
    pub fn any(self, rec: &Record, prep: &Prepared, f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        use Field::*;
        let proc_ = rec.process();
        let image = proc_.and_then(|p| p.image.as_deref());
        let parent = proc_.and_then(|p| p.ancestors.first());
        let meta = rec.container().and_then(|c| c.meta.as_ref());
        let s = |f: &mut dyn FnMut(Val<'_>) -> bool, v: Option<&[u8]>| {
            v.is_some_and(|v| f(Val::Str(v)))
        };
        match self {
            EvtType => f(Val::Str(rec.kind().name().as_bytes())),
            ProcPid => proc_.is_some_and(|p| f(Val::Int(p.pid.into()))),
            ProcPpid => proc_
                .and_then(|p| p.ppid)
                .is_some_and(|v| f(Val::Int(v.into()))),
            ProcUid => proc_.is_some_and(|p| f(Val::Int(p.uid.into()))),
            ProcComm => s(f, proc_.map(|p| p.comm.as_bytes())),
            ProcExe => s(f, image.map(|i| i.exe.as_bytes())),
            ProcName => s(f, proc_.map(|p| proc_name(p, image))),
            ProcExeName => s(f, image.map(|i| base_name(i.exe.as_bytes()))),
            ProcScript => s(f, proc_.zip(image).and_then(|(p, i)| script_of(p, i))),
            ProcArgs => {
                image.is_some_and(|i| i.args.iter().skip(1).any(|a| f(Val::Str(a.as_bytes()))))
            }
            ProcCmdline => image.is_some_and(|i| f(Val::Str(prep.cmdline(i)))),
            ParentExe => s(f, parent.map(|a| a.image.exe.as_bytes())),
            ParentName => s(f, parent.map(|a| image_name(&a.image))),
            ParentCmdline => parent.is_some_and(|a| f(Val::Str(prep.pcmdline(a)))),
            AncestorExe => proc_.is_some_and(|p| {
                p.ancestors
                    .iter()
                    .any(|a| f(Val::Str(a.image.exe.as_bytes())))
            }),
            AncestorName => proc_.is_some_and(|p| {
                p.ancestors
                    .iter()
                    .any(|a| f(Val::Str(image_name(&a.image))))
            }),
            AncestorCmdline => {
                proc_.is_some_and(|p| prep.acmdlines(p).iter().any(|c| f(Val::Str(c))))
            }
            ContainerId => s(f, rec.container().map(|c| c.id.as_bytes())),
            ContainerRuntime => s(f, rec.container().map(|c| c.runtime.as_bytes())),
            ContainerName => s(f, meta.and_then(|m| m.name.as_deref()).map(str::as_bytes)),
            ContainerImage => s(f, meta.and_then(|m| m.image.as_deref()).map(str::as_bytes)),
            ContainerPrivileged => meta.is_some_and(|m| f(Val::Bool(m.privileged))),
            ContainerHostPid => meta.is_some_and(|m| f(Val::Bool(m.host_pid))),
            ContainerHostNetwork => meta.is_some_and(|m| f(Val::Bool(m.host_network))),
            ContainerRuntimeSocket => meta.is_some_and(|m| f(Val::Bool(m.runtime_socket))),
            MountSource => meta.is_some_and(|m| {
                m.bind_mounts
                    .iter()
                    .any(|b| f(Val::Str(b.source.as_bytes())))
            }),
            MountDestination => meta.is_some_and(|m| {
                m.bind_mounts
                    .iter()
                    .any(|b| f(Val::Str(b.destination.as_bytes())))
            }),
            MountRwSource => meta.is_some_and(|m| {
                m.bind_mounts
                    .iter()
                    .filter(|b| !b.read_only)
                    .any(|b| f(Val::Str(b.source.as_bytes())))
            }),
            K8sPod => s(
                f,
                meta.and_then(|m| m.pod_name.as_deref()).map(str::as_bytes),
            ),
            K8sNs => s(
                f,
                meta.and_then(|m| m.pod_namespace.as_deref())
                    .map(str::as_bytes),
            ),
            K8sPodUid => s(
                f,
                rec.container()
                    .and_then(|c| c.pod_uid.as_deref())
                    .map(str::as_bytes),
            ),
            OpenPath | OpenName | OpenDir | OpenOnHostMount | OpenWrite | OpenSensorFile
            | OpenCreate | OpenFlags | OpenSuccess | OpenError => {
                let Body::Open(e) = &rec.body else {
                    return false;
                };
                let o = &e.data.open;
                match self {
                    OpenPath => f(Val::Str(o.path.as_bytes())),
                    OpenName => f(Val::Str(base_name(o.path.as_bytes()))),
                    OpenDir => f(Val::Str(dir_name(o.path.as_bytes()))),
                    OpenOnHostMount => f(Val::Bool(meta.is_some_and(|m| {
                        m.bind_mounts.iter().any(|b| {
                            !b.read_only && under(o.path.as_bytes(), b.destination.as_bytes())
                        })
                    }))),
                    OpenWrite => f(Val::Bool(o.writes())),
                    OpenSensorFile => f(Val::Bool(crate::own_files::contains(o.path.as_bytes()))),
                    OpenCreate => f(Val::Bool(o.creates())),
                    OpenFlags => o.flags.iter().any(|n| f(Val::Str(n.as_bytes()))),
                    OpenSuccess => f(Val::Bool(o.succeeded())),
                    _ => s(f, o.error.as_deref().map(str::as_bytes)),
                }
            }
            EgressAddress | EgressPort | EgressProtocol | EgressBytes | EgressPackets => {
                let Body::Egress(e) = &rec.body else {
                    return false;
                };
                let d = &e.egress;
                match self {
                    EgressAddress => f(Val::Ip(d.address)),
                    EgressPort => d.port.is_some_and(|p| f(Val::Int(p.into()))),
                    EgressProtocol => f(Val::Str(d.protocol.as_bytes())),
                    EgressBytes => f(Val::Int(d.bytes.min(i64::MAX as u64) as i64)),
                    _ => f(Val::Int(d.packets.min(i64::MAX as u64) as i64)),
                }
            }
            RateLimitedSuppressed | RateLimitedLimit => {
                let Body::RateLimited(e) = &rec.body else {
                    return false;
                };
                let d = &e.data.rate_limited;
                match self {
                    RateLimitedSuppressed => f(Val::Str(d.suppressed.as_bytes())),
                    _ => f(Val::Int(d.limit.into())),
                }
            }
            BpfCmd | BpfProgType | BpfName | BpfSuccess => {
                let Body::Bpf(e) = &rec.body else {
                    return false;
                };
                let b = &e.data.bpf;
                match self {
                    BpfCmd => f(Val::Str(b.cmd.as_bytes())),
                    BpfProgType => s(f, b.prog_type.as_deref().map(str::as_bytes)),
                    BpfName => s(f, b.name.as_ref().map(|n| n.as_bytes())),
                    _ => f(Val::Bool(b.ret >= 0)),
                }
            }
            TamperSyscall | TamperRequest | TamperSignal | TamperSuccess => {
                let Body::Tamper(e) = &rec.body else {
                    return false;
                };
                let t = &e.data.tamper;
                match self {
                    TamperSyscall => f(Val::Str(t.syscall.as_bytes())),
                    TamperRequest => s(f, t.request.as_deref().map(str::as_bytes)),
                    TamperSignal => s(f, t.signal.as_deref().map(str::as_bytes)),
                    _ => f(Val::Bool(t.ret == 0)),
                }
            }
            ConnectFamily | ConnectAddress | ConnectPort | ConnectProtocol | ConnectUnixPath
            | ConnectSuccess | ConnectError => {
                let Body::Connect(e) = &rec.body else {
                    return false;
                };
                let c = &e.data.connect;
                match self {
                    ConnectFamily => f(Val::Str(c.family.as_bytes())),
                    ConnectAddress => c.ipv4_mapped.or(c.address).is_some_and(|a| f(Val::Ip(a))),
                    ConnectPort => c.port.is_some_and(|p| f(Val::Int(p.into()))),
                    ConnectProtocol => s(f, c.protocol.as_deref().map(str::as_bytes)),
                    ConnectUnixPath => s(f, c.unix_path.as_ref().map(|p| p.as_bytes())),
                    ConnectSuccess => f(Val::Bool(
                        c.ret == 0 || c.error.as_deref() == Some("EINPROGRESS"),
                    )),
                    _ => s(f, c.error.as_deref().map(str::as_bytes)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dirs() {
        assert_eq!(base_name(b"/usr/bin/tar"), b"tar");
        assert_eq!(base_name(b"memfd:x"), b"memfd:x");
        assert_eq!(dir_name(b"/tmp/a.tgz"), b"/tmp");
        assert_eq!(dir_name(b"/a"), b"/");
        assert!(under(b"/data/x", b"/data") && under(b"/data", b"/data/"));
        assert!(!under(b"/database", b"/data"));
    }

    #[test]
    fn every_field_is_documented() {
        let doc = include_str!("../../../docs/RULES.md");
        for (name, ..) in CATALOG {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} missing from docs/RULES.md"
            );
        }
    }

    #[test]
    fn catalog_names_are_unique_and_suggestions_work() {
        let mut names: Vec<_> = CATALOG.iter().map(|(n, ..)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        assert_eq!(closest("proc.nmae"), Some("proc.name"));
        assert_eq!(closest("zzzzzzzzzzzz"), None);
    }
}
