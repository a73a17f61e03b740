//! The event schema: what the sensor writes, one JSON object per line.
//! Documented field by field in docs/EVENTS.md; bump [`SCHEMA_VERSION`] on any
//! incompatible change.
use std::{borrow::Cow, net::IpAddr};

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::{
    container::ContainerRef,
    process::{Ancestry, ExecImage},
    text::Text,
};

/// Version of the JSON schema, carried in every record as `schema`.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Wall-clock time, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// Which collector saw it; absent for eBPF.
    #[serde(default, skip_serializing_if = "Source::is_ebpf")]
    pub source: Source,
    /// Kernel `CLOCK_BOOTTIME` ns: exact ordering across records.
    pub boot_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// The collector a record comes from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The kernel programs (the default, not written out).
    #[default]
    Ebpf,
    /// The polling collector: snapshots of the process and socket tables
    /// and file notifications (docs/POLLING.md).
    Poll,
}

impl Source {
    fn is_ebpf(&self) -> bool {
        *self == Self::Ebpf
    }
}

/// The record's kind and its kind-specific fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A kernel event.
    Exec(Event<Exec>),
    /// A new process.
    Fork(Event<Fork>),
    /// A process ended.
    Exit(Event<Exit>),
    /// A file open.
    Open(Event<Open>),
    /// A connect.
    Connect(Event<Connect>),
    /// A cgroup was created.
    CgroupMkdir(Event<Cgroup>),
    /// A cgroup was removed.
    CgroupRmdir(Event<Cgroup>),
    /// A process went over its rate limit (`--rate-limit`): its records of
    /// one kind are counted, not sent, for the rest of a one-second window.
    RateLimited(Event<RateLimited>),
    /// Records lost since the previous loss record.
    Loss(Loss),
    /// The first process of a container exec'd (derived by the sensor).
    ContainerStart(ContainerLifecycle),
    /// A container's cgroup was removed (derived by the sensor).
    ContainerStop(ContainerLifecycle),
    /// A rule matched (see docs/RULES.md).
    Alert(Box<crate::rules::engine::Alert>),
    /// Bytes a cgroup sent to one destination during the last interval.
    Egress(EgressRecord),
}

/// `egress` fields: kernel byte accounting per (cgroup, destination), read
/// on a timer; only destinations that received data are reported.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EgressRecord {
    /// The sending sockets' cgroup (cgroup2 id).
    pub cgroup: CgroupRef,
    /// Its container (`id: "host"` for the host).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ContainerRef::cached"
    )]
    pub container: Option<Arc<ContainerRef>>,
    /// Details under `"egress"`.
    pub egress: EgressData,
}

/// One destination's traffic in one interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EgressData {
    /// `inet` or `inet6`.
    pub family: String,
    /// `tcp`, `udp`, ... or `proto_<n>`.
    pub protocol: String,
    /// Destination address.
    pub address: IpAddr,
    /// Destination port (TCP/UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IP bytes sent in the interval.
    pub bytes: u64,
    /// Packets sent in the interval.
    pub packets: u64,
    /// Length of the interval.
    pub interval_ms: u64,
}

/// `container_start` / `container_stop` fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerLifecycle {
    /// The container, with its metadata.
    pub container: Arc<ContainerRef>,
    /// For a start: the process whose exec revealed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// A kernel event: the acting process, its cgroups and container, the
/// kind's fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event<T> {
    /// The process that acted.
    pub process: Process,
    /// Its cgroups.
    pub cgroup: CgroupRef,
    /// Its container (`id: "host"` for host processes), set by enrichment.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ContainerRef::cached"
    )]
    pub container: Option<Arc<ContainerRef>>,
    /// Kind-specific fields, under the kind's name in JSON.
    #[serde(flatten)]
    pub data: T,
}

/// The acting process as the header describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Thread name (`comm`), at most 15 bytes.
    pub comm: Text,
    /// Parent pid (from the process table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// Start, clock ticks since boot: with `pid`, a stable identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// Executable and argv (from the process table).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub image: Option<Arc<ExecImage>>,
    /// Parent chain, nearest first, up to 8 or the container's entry point.
    #[serde(default, skip_serializing_if = "Ancestry::is_empty")]
    pub ancestors: Ancestry,
}

/// cgroup identity of the acting task.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupRef {
    /// cgroup2 id (inode of the cgroup2 directory).
    pub id: u64,
    /// kernfs id in the tracked v1 hierarchy on v1/hybrid hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1_id: Option<u64>,
}

/// `exec` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exec {
    /// Details under `"exec"`.
    pub exec: ExecData,
}

/// A successful execve.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecData {
    /// Parent process id.
    pub ppid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Pid inside the process's pid namespace.
    pub ns_pid: u32,
    /// Pid namespace inode.
    pub pid_ns: u32,
    /// Mount namespace inode.
    pub mnt_ns: u32,
    /// Process start, boot ns (with `pid`, a stable identity across pid reuse).
    pub start_boottime_ns: u64,
    /// Absolute path of the executable file, as seen in its mount namespace.
    pub path: Text,
    /// The path walk was cut short (very deep path).
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_truncated: bool,
    /// `path` names an object outside the file tree (e.g. `memfd:x`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_pseudo: bool,
    /// argv, exactly.
    pub args: Vec<Text>,
    /// argv was longer than the kernel copy limit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_truncated: bool,
}

/// `fork` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fork {
    /// Details under `"fork"`.
    pub fork: ForkData,
}

/// A new process; `process` is the child.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForkData {
    /// Parent process id.
    pub ppid: u32,
    /// Parent thread that forked.
    pub parent_tid: u32,
    /// Child start, boot ns.
    pub start_boottime_ns: u64,
}

/// `exit` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// Details under `"exit"`.
    pub exit: ExitData,
}

/// The last thread of a process exited.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitData {
    /// Exit status (0-255) when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    /// Terminating signal when killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<u8>,
    /// Process start, boot ns.
    pub start_boottime_ns: u64,
}

/// `open` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Open {
    /// Details under `"open"`.
    pub open: OpenData,
}

/// A name from a fixed vocabulary (syscalls, flags, errno names): static
/// when decoded, so the busiest records allocate none; owned when read back
/// from JSON or made for a value outside the vocabulary.
pub type Name = Cow<'static, str>;

/// Where an open's path came from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathSource {
    /// Resolved from the opened file (success).
    File,
    /// The caller's relative string joined to its cwd/dirfd (failure).
    Joined,
    /// The caller's absolute string (failure).
    Caller,
    /// The caller's relative string alone: the directory it was relative to
    /// could not be read (failure).
    Unresolved,
}

/// open/openat/openat2/creat returned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenData {
    /// Which syscall.
    pub syscall: Name,
    /// Absolute path.
    pub path: Text,
    /// How `path` was obtained.
    pub path_source: PathSource,
    /// The path walk was cut short.
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_truncated: bool,
    /// `path` names an object outside the file tree (e.g. `memfd:x`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub path_pseudo: bool,
    /// Made through the 32-bit compat syscall entry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat: bool,
    /// Made by io_uring (LSM tier): the kernel permitted it; the fd and
    /// result went to the completion queue and are not seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub io_uring: bool,
    /// `read`, `write` or `read_write`.
    pub access: Name,
    /// Symbolic open flags.
    pub flags: Vec<Name>,
    /// Numeric open flags as passed.
    pub flags_raw: u32,
    /// Mode argument (octal string, e.g. "0644"), when O_CREAT/O_TMPFILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// File descriptor on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// Error name on failure (e.g. "ENOENT").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Name>,
    /// Inode number of the opened file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
}

/// Read from the symbolic fields, not `flags_raw`: those mean the same on
/// every source, while raw values are Linux's and absent from polled records.
impl OpenData {
    /// Opened for writing, or creating or truncating the file.
    pub fn writes(&self) -> bool {
        self.access != "read" || self.has_flag(&["O_CREAT", "O_TRUNC", "O_TMPFILE"])
    }

    /// Creates the file.
    pub fn creates(&self) -> bool {
        self.has_flag(&["O_CREAT", "O_TMPFILE"])
    }

    /// The open succeeded (for io_uring: the kernel allowed it).
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    fn has_flag(&self, names: &[&str]) -> bool {
        self.flags.iter().any(|f| names.contains(&f.as_ref()))
    }
}

/// `connect` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Connect {
    /// Details under `"connect"`.
    pub connect: ConnectData,
}

/// connect returned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectData {
    /// `inet`, `inet6`, `unix`, or `af_<n>`.
    pub family: String,
    /// `stream`, `dgram`, `seqpacket`, `raw`, or `type_<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock_type: Option<String>,
    /// `tcp`, `udp`, ... or `proto_<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Destination address (inet/inet6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// The IPv4 address inside an IPv4-mapped IPv6 destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_mapped: Option<IpAddr>,
    /// Destination port (inet/inet6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Socket path (unix); abstract names start with "@".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_path: Option<Text>,
    /// Socket fd.
    pub fd: i32,
    /// 0 on success, else the negative errno.
    pub ret: i32,
    /// Error name on failure ("EINPROGRESS" is a non-blocking connect under way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Name>,
    /// Made through the 32-bit compat syscall entry (connect or socketcall).
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat: bool,
    /// Made by io_uring (LSM tier): the kernel permitted it; `fd` is -1 and
    /// `ret` 0, the result went to the completion queue.
    #[serde(default, skip_serializing_if = "is_false")]
    pub io_uring: bool,
    /// Where the address was read.
    #[serde(default)]
    pub address_source: AddressSource,
}

/// Where a connect's address was read.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The kernel's own copy, taken at the LSM hook (LSM tier).
    Kernel,
    /// The caller's buffer, read back at syscall exit (tracepoint tiers).
    #[default]
    Caller,
    /// The OS socket table (polling collector).
    SocketTable,
}

/// `cgroup_mkdir` / `cgroup_rmdir` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    /// Details under `"cgroup_dir"`.
    pub cgroup_dir: CgroupData,
}

/// A cgroup directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupData {
    /// Its id (kernfs inode); for cgroup2, what tasks inside report as `cgroup.id`.
    pub id: u64,
    /// Hierarchy id; 0 is cgroup2.
    pub hierarchy_id: u32,
    /// Depth below the root.
    pub level: u32,
    /// Path relative to the hierarchy root, e.g. `/system.slice/docker-<id>.scope`.
    pub path: Text,
}

/// `rate_limited` fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RateLimited {
    /// Details under `"rate_limited"`.
    pub rate_limited: RateLimitedData,
}

/// The start of a suppression window.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RateLimitedData {
    /// Kind of the records suppressed: `open` or `connect`.
    pub suppressed: String,
    /// Records of that kind the process may send per second.
    pub limit: u32,
    /// Boot time the window opened; the suppression lasts until one second
    /// after it. The loss records count what it suppressed, by pid.
    pub window_start_ns: u64,
}

/// Name of a record kind as the schema writes it (`kind`, loss keys).
pub fn kind_name(kind: sensor_common::EventKind) -> &'static str {
    use sensor_common::EventKind::*;
    match kind {
        Exec => "exec",
        Fork => "fork",
        Exit => "exit",
        Open => "open",
        Connect => "connect",
        CgroupMkdir => "cgroup_mkdir",
        CgroupRmdir => "cgroup_rmdir",
        RateLimited => "rate_limited",
    }
}

/// Losses since the previous loss record. Never silent: a record is written
/// whenever any counter moved.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Loss {
    /// Details under `"loss"`.
    pub loss: LossData,
}

/// Loss counts (deltas) and running totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LossData {
    /// Records dropped because the ring was full, by kind.
    pub ring_full: std::collections::BTreeMap<String, u64>,
    /// Records the kernel could not build, by kind.
    pub kernel_error: std::collections::BTreeMap<String, u64>,
    /// Ring-full drops by CPU index (only CPUs that dropped).
    #[serde(deserialize_with = "number_keyed")]
    pub ring_full_by_cpu: std::collections::BTreeMap<u32, u64>,
    /// Records over their process's rate limit (`--rate-limit`), by kind.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rate_limited: std::collections::BTreeMap<String, u64>,
    /// The same by process id (the processes that flooded; attributed on
    /// a best-effort basis, the per-kind counts are exact).
    #[serde(
        default,
        deserialize_with = "number_keyed",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub rate_limited_by_pid: std::collections::BTreeMap<u32, u64>,
    /// Records userspace could not decode (counted and skipped).
    pub malformed: u64,
    /// Everything lost since start.
    pub total_since_start: u64,
    /// Process table entries evicted because the table was full (their
    /// events lose ancestry, not existence).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub process_table_evicted: u64,
    /// Polling: new processes whose parent was never seen, so at least
    /// one short-lived process (the parent) started and ended between polls.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub poll_missed_parents: u64,
    /// Polling: file notification errors (e.g. queue overflow): file
    /// events lost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_notify_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// JSON object keys are strings; inside the internally tagged [`Body`]
/// serde hands them over as such, and a `u32` key would refuse them.
fn number_keyed<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<u32, u64>, D::Error> {
    let by_text = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
    by_text
        .into_iter()
        .map(|(key, n)| {
            key.parse()
                .map(|key| (key, n))
                .map_err(|_| serde::de::Error::custom(format!("key {key:?} is not a number")))
        })
        .collect()
}
