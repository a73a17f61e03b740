//! Ring-buffer records. One fixed header, one fixed payload per kind, then a
//! variable tail. Integers are native-endian (the sensor runs on the kernel's
//! host); strings are raw bytes, never assumed UTF-8.

/// Largest path tail: PATH_MAX plus room for one more component read.
pub const PATH_MAX: usize = 4096;
/// Longest single path component the kernel allows.
pub const NAME_MAX: usize = 255;
/// Bytes of argv copied from the new process image; longer argv is truncated
/// and flagged.
pub const ARGV_MAX: usize = 4096;
/// `sun_path` size of `struct sockaddr_un`.
pub const UNIX_PATH_MAX: usize = 108;
/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Path component depth the kernel walk follows before flagging truncation.
pub const PATH_DEPTH_MAX: u32 = 48;

/// A `repr(u32)` enum of wire ids and its `TryFrom<u32>`, from one list.
macro_rules! wire_enum {
    ($(#[doc = $edoc:literal])* $name:ident { $($(#[doc = $doc:literal])* $variant:ident = $id:literal,)+ }) => {
        $(#[doc = $edoc])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[doc = $doc])* $variant = $id,)+
        }

        impl TryFrom<u32> for $name {
            type Error = u32;
            fn try_from(v: u32) -> Result<Self, u32> {
                match v {
                    $($id => Ok(Self::$variant),)+
                    other => Err(other),
                }
            }
        }
    };
}

/// Defines [`EventKind`] from one list of ids, checked against
/// [`EVENT_KIND_SLOTS`].
macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident = $id:literal,)+) => {
        wire_enum! {
            /// What a record is. Fixed ids: they are the wire format.
            EventKind { $($(#[doc = $doc])* $kind = $id,)+ }
        }

        /// Every id is below [`EVENT_KIND_SLOTS`], so arrays indexed by
        /// kind (the loss counters) have a slot for each.
        const _: () = {
            $(assert!(($id as usize) < EVENT_KIND_SLOTS, "a kind id outside the slots");)+
        };
    };
}

event_kinds! {
    /// A successful execve/execveat.
    Exec = 1,
    /// A new process (not a new thread).
    Fork = 2,
    /// The last thread of a process exited.
    Exit = 3,
    /// open, openat, openat2 or creat returned.
    Open = 4,
    /// connect returned.
    Connect = 5,
    /// A cgroup directory was created.
    CgroupMkdir = 6,
    /// A cgroup directory was removed.
    CgroupRmdir = 7,
    /// A process went over its rate limit: sent in place of the first
    /// record suppressed in a window, so the flood has a name and a place.
    RateLimited = 8,
    /// Another process loaded, attached or detached a BPF program or link.
    Bpf = 9,
    /// Another process traced, read, wrote or signalled the sensor.
    Tamper = 10,
}

/// Slots of arrays indexed by kind id: above the largest id, and a power
/// of two so that a mask bounds the index for the verifier.
pub const EVENT_KIND_SLOTS: usize = 16;

const _: () = assert!(EVENT_KIND_SLOTS.is_power_of_two());

/// Common to every record: who did it, where, when.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// [`EventKind`] as u32.
    pub kind: u32,
    /// Total record length in bytes, header and tail included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()` at the event.
    pub boot_ns: u64,
    /// Thread id (kernel `pid`).
    pub tid: u32,
    /// Process id (kernel `tgid`).
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// cgroup2 id of the task (inode of its cgroup2 directory).
    pub cgroup_id: u64,
    /// On v1/hybrid hosts, the kernfs id of the task's cgroup in the tracked
    /// v1 hierarchy (see [`crate::KernelOffsets::v1_subsys_index`]); 0 otherwise.
    pub cgroup_v1_id: u64,
    /// `task_struct::comm`, NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// Flag bits shared by payloads.
pub mod flags {
    /// The path walk hit [`crate::PATH_DEPTH_MAX`] or the buffer end.
    pub const PATH_TRUNCATED: u32 = 1 << 0;
    /// argv was longer than [`crate::ARGV_MAX`].
    pub const ARGV_TRUNCATED: u32 = 1 << 1;
    /// The path comes from the opened file itself (not the caller's string).
    pub const PATH_RESOLVED: u32 = 1 << 2;
    /// The path is the caller's string joined to its cwd or dirfd path
    /// (failed opens have no file to resolve).
    pub const PATH_JOINED: u32 = 1 << 3;
    /// Path components are stored leaf first, NUL separated (a kernel walk).
    pub const PATH_COMPONENTS: u32 = 1 << 4;
    /// The walk ended at a dentry that is its own parent but not a mount
    /// root: an object with no place in the tree (memfd, pipe, anon inode,
    /// a disconnected dentry). The components are relative to it and the
    /// top one is the object's own name (e.g. `memfd:payload`).
    pub const PATH_PSEUDO: u32 = 1 << 5;
    /// The syscall came through the 32-bit compat entry (int 0x80,
    /// sysenter); its number and argument registers were mapped.
    pub const COMPAT_SYSCALL: u32 = 1 << 6;
    /// Made by io_uring (LSM tier only): there is no syscall exit, the
    /// operation passed the kernel's checks and its result went to the
    /// completion queue, so `ret` is 0 and the fd is unknown.
    pub const IO_URING: u32 = 1 << 7;
    /// The connect address is the kernel's own copy, taken at the LSM hook,
    /// not the caller's memory read back at syscall exit.
    pub const ADDR_FROM_KERNEL: u32 = 1 << 8;
    /// The path is `bpf_d_path`'s string (LSM tier), not walk components.
    pub const PATH_D_PATH: u32 = 1 << 9;
}

/// Payload of [`EventKind::Exec`]. Tail: `path_len` bytes of path
/// (components, see [`flags::PATH_COMPONENTS`]), then `argv_len` bytes of
/// NUL-separated argv.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// Process id of the parent (real_parent's tgid).
    pub ppid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Pid as seen inside the task's own pid namespace.
    pub ns_pid: u32,
    /// Mount namespace inode number.
    pub mnt_ns: u32,
    /// Pid namespace inode number.
    pub pid_ns: u32,
    /// `task_struct::start_boottime` of the process (ns since boot).
    pub start_boottime: u64,
    /// [`flags`] bits.
    pub flags: u32,
    /// Length of the executable path tail.
    pub path_len: u32,
    /// Length of the argv tail.
    pub argv_len: u32,
    /// Keeps the struct 8-byte aligned.
    pub _pad: u32,
}

/// Payload of [`EventKind::Fork`]. The header describes the child.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    /// Parent process id.
    pub ppid: u32,
    /// Parent thread that forked.
    pub parent_tid: u32,
    /// Child `start_boottime` (ns since boot).
    pub start_boottime: u64,
}

/// Payload of [`EventKind::Exit`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    /// `task_struct::exit_code` (wait status encoding).
    pub exit_code: u32,
    /// Keeps alignment.
    pub _pad: u32,
    /// `start_boottime` of the exiting process, for identity.
    pub start_boottime: u64,
}

wire_enum! {
    /// Which syscall an open came through.
    OpenSyscall {
        /// open(2)
        Open = 1,
        /// openat(2)
        Openat = 2,
        /// openat2(2)
        Openat2 = 3,
        /// creat(2)
        Creat = 4,
        /// IORING_OP_OPENAT / IORING_OP_OPENAT2 (see [`flags::IO_URING`]).
        IoUring = 5,
    }
}

/// Payload of [`EventKind::Open`]. Tail: `rel_len` bytes of the caller's
/// path string (failed opens only: there is no file to resolve), then
/// `path_len` bytes of path. With [`flags::PATH_RESOLVED`] the path is the
/// opened file's; with [`flags::PATH_JOINED`] it is the directory the
/// caller's relative string is relative to; with neither, the caller's string
/// was absolute and is the whole path.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OpenEvent {
    /// [`OpenSyscall`] as u32.
    pub syscall: u32,
    /// The caller's open flags (O_CREAT, O_TRUNC... included).
    pub open_flags: u32,
    /// The caller's mode argument.
    pub mode: u32,
    /// The syscall's return: a file descriptor, or a negative errno.
    pub ret: i32,
    /// Inode number of the opened file (0 on failure).
    pub ino: u64,
    /// [`flags`] bits.
    pub flags: u32,
    /// Length of the path tail.
    pub path_len: u32,
    /// Length of the caller's string before the path.
    pub rel_len: u32,
    /// Keeps alignment.
    pub _pad: u32,
}

/// Address families the connect record parses (`ConnectEvent::family`).
pub const AF_UNIX: u16 = 1;
/// IPv4.
pub const AF_INET: u16 = 2;
/// IPv6.
pub const AF_INET6: u16 = 10;

/// Payload of [`EventKind::Connect`]. Tail: `unix_path_len` bytes of
/// `sun_path` for AF_UNIX.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    /// The syscall's return (0 or a negative errno, e.g. -EINPROGRESS).
    pub ret: i32,
    /// File descriptor of the socket.
    pub fd: i32,
    /// `sa_family` of the caller's address.
    pub family: u16,
    /// Destination port, host byte order (0 for AF_UNIX).
    pub port: u16,
    /// `socket::type` (SOCK_STREAM=1, SOCK_DGRAM=2, ...), 0 when unknown.
    pub sock_type: u16,
    /// `sock::sk_protocol` (IPPROTO_TCP=6, IPPROTO_UDP=17, ...), 0 when unknown.
    pub protocol: u16,
    /// IPv4 in the first 4 bytes, or IPv6, network order.
    pub addr: [u8; 16],
    /// Length of the unix path tail.
    pub unix_path_len: u32,
    /// [`flags`] bits ([`flags::COMPAT_SYSCALL`], [`flags::IO_URING`],
    /// [`flags::ADDR_FROM_KERNEL`]).
    pub flags: u32,
}

/// Threads with a connect in flight that the stash map holds; LRU beyond.
pub const CONNECT_STASH_ENTRIES: u32 = 8192;

/// A connect destination parsed from the kernel's copy of the address by the
/// LSM tier, kept for the syscall exit of the same thread (map
/// [`crate::maps::CONNECT_STASH`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectStash {
    /// The `struct socket` connected: the exit checks it is the fd's.
    pub sock: u64,
    /// The destination fields (`family`, `port`, `addr`, `unix_path_len`);
    /// the rest is the exit's to fill.
    pub dest: ConnectEvent,
    /// `sun_path` bytes for AF_UNIX.
    pub unix_path: [u8; UNIX_PATH_MAX],
    /// Keeps alignment.
    pub _pad: u32,
}

/// Payload of [`EventKind::CgroupMkdir`] and [`EventKind::CgroupRmdir`].
/// Tail: `path_len` bytes of the cgroup path relative to its hierarchy root.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CgroupEvent {
    /// kernfs id of the cgroup directory (= its inode number; for cgroup2
    /// this equals `bpf_get_current_cgroup_id()` of tasks inside).
    pub id: u64,
    /// `cgroup_root::hierarchy_id`; the cgroup2 hierarchy is 0.
    pub hierarchy_id: u32,
    /// Depth below the hierarchy root.
    pub level: u32,
    /// Length of the path tail.
    pub path_len: u32,
    /// Keeps alignment.
    pub _pad: u32,
}

/// Payload of [`EventKind::RateLimited`]: the process of the header went
/// over its allowance of one record kind for the window that opened at
/// `window_start_ns`; its records of that kind are counted, not sent, until
/// the window ends one second later.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RateLimitedEvent {
    /// [`EventKind`] id of the records suppressed (open or connect).
    pub suppressed: u32,
    /// Records of that kind allowed per second (`FilterConfig::rate_limit`).
    pub limit: u32,
    /// Boot time the window opened.
    pub window_start_ns: u64,
}

/// bpf(2) commands reported ([`EventKind::Bpf`]): the ones that put
/// programs in the kernel's paths or take them out. Map and query commands,
/// which BPF-based agents issue all the time, are not.
pub mod bpf_cmd {
    /// BPF_PROG_LOAD.
    pub const PROG_LOAD: u32 = 5;
    /// BPF_PROG_ATTACH.
    pub const PROG_ATTACH: u32 = 8;
    /// BPF_PROG_DETACH.
    pub const PROG_DETACH: u32 = 9;
    /// BPF_RAW_TRACEPOINT_OPEN.
    pub const RAW_TRACEPOINT_OPEN: u32 = 17;
    /// BPF_LINK_CREATE.
    pub const LINK_CREATE: u32 = 28;
    /// BPF_LINK_UPDATE.
    pub const LINK_UPDATE: u32 = 29;
    /// BPF_LINK_DETACH.
    pub const LINK_DETACH: u32 = 34;

    /// Whether `cmd` is reported.
    #[inline(always)]
    pub fn reported(cmd: u32) -> bool {
        matches!(
            cmd,
            PROG_LOAD
                | PROG_ATTACH
                | PROG_DETACH
                | RAW_TRACEPOINT_OPEN
                | LINK_CREATE
                | LINK_UPDATE
                | LINK_DETACH
        )
    }
}

/// Bytes of a program or tracepoint name kept in [`BpfEvent`].
pub const BPF_NAME_LEN: usize = 32;

/// Payload of [`EventKind::Bpf`]: read from the caller's `union bpf_attr`
/// at syscall exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BpfEvent {
    /// The syscall's return (an fd, 0, or a negative errno).
    pub ret: i32,
    /// [`bpf_cmd`].
    pub cmd: u32,
    /// `prog_type` of a BPF_PROG_LOAD; 0 otherwise.
    pub prog_type: u32,
    /// `attach_type` of BPF_PROG_ATTACH/DETACH and BPF_LINK_CREATE; 0
    /// otherwise.
    pub attach_type: u32,
    /// [`flags::COMPAT_SYSCALL`].
    pub flags: u32,
    /// Keeps alignment.
    pub _pad: u32,
    /// NUL-padded: the `prog_name` of a BPF_PROG_LOAD, or the tracepoint
    /// of a BPF_RAW_TRACEPOINT_OPEN.
    pub name: [u8; BPF_NAME_LEN],
}

wire_enum! {
    /// The syscalls of [`TamperEvent`].
    TamperSyscall {
        /// ptrace(2); `arg` is the request.
        Ptrace = 1,
        /// process_vm_readv(2).
        ProcessVmReadv = 2,
        /// process_vm_writev(2).
        ProcessVmWritev = 3,
        /// kill(2); `arg` is the signal.
        Kill = 4,
        /// tkill(2); `arg` is the signal.
        Tkill = 5,
        /// tgkill(2); `arg` is the signal.
        Tgkill = 6,
    }
}

/// Payload of [`EventKind::Tamper`]: a syscall by another process whose
/// target is the sensor's process id (as the caller named it).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TamperEvent {
    /// The syscall's return (0 or a negative errno, e.g. -EPERM).
    pub ret: i32,
    /// [`TamperSyscall`].
    pub syscall: u32,
    /// The pid (tid for ptrace and tkill, tgid for tgkill) named.
    pub target: u32,
    /// ptrace request or signal number; 0 for process_vm_*.
    pub arg: u32,
    /// [`flags::COMPAT_SYSCALL`].
    pub flags: u32,
    /// Keeps alignment.
    pub _pad: u32,
}

/// Per-CPU counters of records the kernel could not hand to userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LossCounters {
    /// Ring buffer full, indexed by [`EventKind`] id.
    pub ring_full: [u64; EVENT_KIND_SLOTS],
    /// A kernel read failed so the record was not built, by kind.
    pub read_error: [u64; EVENT_KIND_SLOTS],
    /// Over its process's rate limit (`FilterConfig::rate_limit`), by kind.
    pub rate_limited: [u64; EVENT_KIND_SLOTS],
}

/// Largest record: header, exec payload, the path and argv tails.
pub const MAX_RECORD: usize = core::mem::size_of::<EventHeader>()
    + core::mem::size_of::<ExecEvent>()
    + PATH_MAX
    + NAME_MAX
    + 1
    + ARGV_MAX;

/// Bytes of a dentry read in one probe per path component (d_parent,
/// d_name and the inline name); userspace refuses a layout that does not fit.
/// At most 72 bytes on 5.10 to 6.18.
pub const DENTRY_WINDOW: usize = 96;
/// Bytes of a `struct file` read at once (f_path and f_inode: 24 bytes on
/// 6.1, 40 on 6.12).
pub const FILE_WINDOW: usize = 48;
/// Bytes of a `struct mount` read at once (mnt_parent, mnt_mountpoint and
/// mnt.mnt_root: 24 bytes on 5.10 to 6.18).
pub const MOUNT_WINDOW: usize = 32;
/// Inline names are copied with this fixed size (>= DNAME_INLINE_LEN on
/// current kernels; longer inline names take the slow path).
pub const INLINE_NAME_COPY: usize = 40;

/// Per-CPU scratch buffer size: a power of two above [`MAX_RECORD`] plus
/// slack so masked offsets can never index past the end.
pub const SCRATCH_SIZE: usize = 16384;

const _: () = assert!(MAX_RECORD + NAME_MAX < SCRATCH_SIZE);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 64);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 48);
const _: () = assert!(core::mem::size_of::<ForkEvent>() == 16);
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 16);
const _: () = assert!(core::mem::size_of::<OpenEvent>() == 40);
const _: () = assert!(core::mem::size_of::<ConnectEvent>() == 40);
const _: () = assert!(core::mem::size_of::<CgroupEvent>() == 24);
const _: () = assert!(core::mem::size_of::<RateLimitedEvent>() == 16);
const _: () = assert!(core::mem::size_of::<BpfEvent>() == 56);
const _: () = assert!(core::mem::size_of::<TamperEvent>() == 24);
const _: () = assert!(core::mem::size_of::<ConnectStash>() == 160);

/// Per-CPU record assembly area.
#[repr(C)]
pub struct Scratch {
    /// The bytes; a record is built from offset 0.
    pub buf: [u8; SCRATCH_SIZE],
    /// Write cursor of a path walk. Kept in map memory, not a register, so
    /// the verifier sees an unknown value each iteration and prunes states
    /// instead of exploring every combination of component lengths.
    pub cursor: u64,
    /// Set by a path walk that met a component the open filter wants;
    /// in map memory for the same reason as `cursor`.
    pub matched: u64,
    /// Length of the walk's first (leaf) component.
    pub leaf_len: u64,
    /// The walk's current dentry, read with one probe per component:
    /// [`DENTRY_WINDOW`] bytes of `struct dentry`. Here rather than on the
    /// stack, which the open path's call chain has used up.
    pub dentry: [u8; DENTRY_WINDOW],
    /// The same for the walk's current mount ([`MOUNT_WINDOW`] bytes of
    /// `struct mount`).
    pub mount: [u8; MOUNT_WINDOW],
}

#[cfg(all(feature = "user", target_os = "linux"))]
mod pod {
    // SAFETY: repr(C) of u64 arrays only: no padding holes the kernel could
    // leave uninitialised, and any bit pattern is a valid value.
    unsafe impl aya::Pod for super::LossCounters {}
}
