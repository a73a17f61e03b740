//! The fields of the events processes cause, under the kind's name in
//! each record: what the kernel reports (and the polling collector
//! imitates from its snapshots).
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Name, is_false};
use crate::text::Text;

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

/// `bpf` fields: another process put a BPF program in the kernel's paths
/// or took one out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bpf {
    /// Details under `"bpf"`.
    pub bpf: BpfData,
}

/// One bpf(2) program or link command.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BpfData {
    /// prog_load, prog_attach, prog_detach, raw_tracepoint_open,
    /// link_create, link_update or link_detach.
    pub cmd: Name,
    /// prog_load: the program type (kprobe, tracepoint, lsm, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_type: Option<Name>,
    /// prog_attach, prog_detach, link_create: the kernel's `enum
    /// bpf_attach_type` number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_type: Option<u32>,
    /// prog_load: the program's name; raw_tracepoint_open: the tracepoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    /// The syscall's return: an fd, 0, or a negative errno.
    pub ret: i32,
    /// errno name of a failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Name>,
    /// Made through the 32-bit compat entry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat: bool,
}

/// `tamper` fields: another process aimed a syscall at the sensor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tamper {
    /// Details under `"tamper"`.
    pub tamper: TamperData,
}

/// One syscall naming the sensor's process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TamperData {
    /// ptrace, process_vm_readv, process_vm_writev, kill, tkill or tgkill.
    pub syscall: Name,
    /// The pid named: the sensor's.
    pub target_pid: u32,
    /// ptrace: the request (attach, seize, peekdata, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Name>,
    /// kill, tkill, tgkill: the signal (SIGSTOP, ...; SIG0 only probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Name>,
    /// The syscall's return: 0 or a negative errno.
    pub ret: i32,
    /// errno name of a failed call (EPERM: the kernel refused it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Name>,
    /// Made through the 32-bit compat entry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat: bool,
}
