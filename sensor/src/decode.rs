//! Ring records to typed events. Every length is checked against the record
//! before use: a malformed record is an error the caller counts and skips,
//! never a panic or a read past the end.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sensor_common::{
    BpfEvent, CgroupEvent, ConnectEvent, EventHeader, EventKind, ExecEvent, ExitEvent, ForkEvent,
    OpenEvent, OpenSyscall, RateLimitedEvent, TamperEvent, TamperSyscall, bpf_cmd, flags,
};
use thiserror::Error;

use crate::{clock::BootClock, event::*, text::Text};

/// Why a record was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed part of its kind.
    #[error("record of {got} bytes is shorter than the {need} its {what} needs")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The header's size disagrees with the ring item's.
    #[error("header says {header} bytes, ring item has {actual}")]
    SizeMismatch {
        /// From the header.
        header: u32,
        /// From the ring.
        actual: usize,
    },
    /// Unknown kind id.
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    /// A rate-limit record naming a kind that is never limited.
    #[error("rate_limited record suppresses kind {0}, which is never limited")]
    UnlimitedKind(u32),
    /// A tamper record naming a syscall the kernel side never reports.
    #[error("tamper record names unknown syscall {0}")]
    UnknownSyscall(u32),
}

fn read<T: Copy>(bytes: &[u8], at: usize, what: &'static str) -> Result<T, DecodeError> {
    let need = at + size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Truncated {
            what,
            need,
            got: bytes.len(),
        });
    }
    // SAFETY: bounds checked above; T is a repr(C) integer-only record from
    // sensor-common, valid for any bit pattern; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().add(at).cast::<T>()) })
}

/// Splits `len` bytes off the front of `tail`.
fn take<'a>(
    tail: &mut &'a [u8],
    len: u32,
    what: &'static str,
    record: usize,
) -> Result<&'a [u8], DecodeError> {
    let len = len as usize;
    if tail.len() < len {
        return Err(DecodeError::Truncated {
            what,
            need: record - tail.len() + len,
            got: record,
        });
    }
    let (head, rest) = tail.split_at(len);
    *tail = rest;
    Ok(head)
}

/// Decodes one ring record.
pub fn decode(bytes: &[u8], clock: &BootClock) -> Result<Record, DecodeError> {
    let h: EventHeader = read(bytes, 0, "header")?;
    if h.size as usize != bytes.len()
        && (h.size as usize > bytes.len() || bytes.len() - h.size as usize >= 8)
    {
        // The ring pads items to 8 bytes; anything else is corruption.
        return Err(DecodeError::SizeMismatch {
            header: h.size,
            actual: bytes.len(),
        });
    }
    let bytes = &bytes[..h.size as usize];
    let kind = EventKind::try_from(h.kind).map_err(DecodeError::UnknownKind)?;
    let at = size_of::<EventHeader>();
    let body = match kind {
        EventKind::Exec => {
            let e: ExecEvent = read(bytes, at, "exec")?;
            let mut tail = &bytes[at + size_of::<ExecEvent>()..];
            let path = take(&mut tail, e.path_len, "exec path", bytes.len())?;
            let argv = take(&mut tail, e.argv_len, "exec argv", bytes.len())?;
            Body::Exec(with_header(
                &h,
                Exec {
                    exec: ExecData {
                        ppid: e.ppid,
                        euid: e.euid,
                        egid: e.egid,
                        ns_pid: e.ns_pid,
                        pid_ns: e.pid_ns,
                        mnt_ns: e.mnt_ns,
                        start_boottime_ns: e.start_boottime,
                        path: Text(path_from_components(path, e.flags)),
                        path_truncated: e.flags & flags::PATH_TRUNCATED != 0,
                        path_pseudo: e.flags & flags::PATH_PSEUDO != 0,
                        args: split_argv(argv),
                        args_truncated: e.flags & flags::ARGV_TRUNCATED != 0,
                    },
                },
            ))
        }
        EventKind::Fork => {
            let e: ForkEvent = read(bytes, at, "fork")?;
            Body::Fork(with_header(
                &h,
                Fork {
                    fork: ForkData {
                        ppid: e.ppid,
                        parent_tid: e.parent_tid,
                        start_boottime_ns: e.start_boottime,
                    },
                },
            ))
        }
        EventKind::Exit => {
            let e: ExitEvent = read(bytes, at, "exit")?;
            let signal = (e.exit_code & 0x7f) as u8;
            Body::Exit(with_header(
                &h,
                Exit {
                    exit: ExitData {
                        code: (signal == 0).then_some(((e.exit_code >> 8) & 0xff) as u8),
                        signal: (signal != 0).then_some(signal),
                        start_boottime_ns: e.start_boottime,
                    },
                },
            ))
        }
        EventKind::Open => {
            let e: OpenEvent = read(bytes, at, "open")?;
            let mut tail = &bytes[at + size_of::<OpenEvent>()..];
            let rel = take(&mut tail, e.rel_len, "open caller path", bytes.len())?;
            let path = take(&mut tail, e.path_len, "open path", bytes.len())?;
            Body::Open(with_header(
                &h,
                Open {
                    open: open_data(&e, rel, path),
                },
            ))
        }
        EventKind::Connect => {
            let e: ConnectEvent = read(bytes, at, "connect")?;
            let mut tail = &bytes[at + size_of::<ConnectEvent>()..];
            let unix = take(&mut tail, e.unix_path_len, "unix path", bytes.len())?;
            Body::Connect(with_header(
                &h,
                Connect {
                    connect: connect_data(&e, unix),
                },
            ))
        }
        EventKind::CgroupMkdir | EventKind::CgroupRmdir => {
            let e: CgroupEvent = read(bytes, at, "cgroup")?;
            let mut tail = &bytes[at + size_of::<CgroupEvent>()..];
            let path = take(&mut tail, e.path_len, "cgroup path", bytes.len())?;
            let data = Cgroup {
                cgroup_dir: CgroupData {
                    id: e.id,
                    hierarchy_id: e.hierarchy_id,
                    level: e.level,
                    path: Text::from(path),
                },
            };
            if kind == EventKind::CgroupMkdir {
                Body::CgroupMkdir(with_header(&h, data))
            } else {
                Body::CgroupRmdir(with_header(&h, data))
            }
        }
        EventKind::RateLimited => {
            let e: RateLimitedEvent = read(bytes, at, "rate_limited")?;
            let suppressed = match EventKind::try_from(e.suppressed) {
                Ok(k @ (EventKind::Open | EventKind::Connect)) => {
                    Kind::of_kernel(k).name().to_owned()
                }
                _ => return Err(DecodeError::UnlimitedKind(e.suppressed)),
            };
            Body::RateLimited(with_header(
                &h,
                RateLimited {
                    rate_limited: RateLimitedData {
                        suppressed,
                        limit: e.limit,
                        window_start_ns: e.window_start_ns,
                    },
                },
            ))
        }
        EventKind::Bpf => {
            let e: BpfEvent = read(bytes, at, "bpf")?;
            Body::Bpf(with_header(&h, Bpf { bpf: bpf_data(&e) }))
        }
        EventKind::Tamper => {
            let e: TamperEvent = read(bytes, at, "tamper")?;
            let syscall =
                TamperSyscall::try_from(e.syscall).map_err(DecodeError::UnknownSyscall)?;
            Body::Tamper(with_header(
                &h,
                Tamper {
                    tamper: tamper_data(&e, syscall),
                },
            ))
        }
    };
    Ok(Record {
        schema: SCHEMA_VERSION,
        source: Source::Ebpf,
        time: clock.rfc3339(h.boot_ns),
        boot_ns: h.boot_ns,
        body,
    })
}

fn with_header<T>(h: &EventHeader, data: T) -> Event<T> {
    Event {
        process: Process {
            pid: h.pid,
            tid: h.tid,
            uid: h.uid,
            gid: h.gid,
            comm: Text::from(cstr(&h.comm)),
            ppid: None,
            start_ticks: None,
            image: None,
            ancestors: Default::default(),
        },
        cgroup: CgroupRef {
            id: h.cgroup_id,
            v1_id: (h.cgroup_v1_id != 0).then_some(h.cgroup_v1_id),
        },
        container: None,
        data,
    }
}

fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Kernel walks store components leaf first, each NUL-terminated
/// (`c\0b\0a\0` for `/a/b/c`). Names cannot contain NUL or '/', so the
/// split is unambiguous. A pseudo path (`flags::PATH_PSEUDO`) starts at the
/// object's own name, not at `/`: `memfd:x`.
fn path_from_components(raw: &[u8], bits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 1);
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    let pseudo = bits & flags::PATH_PSEUDO != 0;
    if raw.is_empty() {
        if !pseudo {
            out.push(b'/');
        }
        return out;
    }
    for (i, part) in raw.rsplit(|&c| c == 0).enumerate() {
        if i > 0 || !pseudo {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    out
}

fn split_argv(raw: &[u8]) -> Vec<Text> {
    // argv strings are NUL-terminated; a truncated copy may lack the last NUL.
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&c| c == 0).map(Text::from).collect()
}

fn open_data(e: &OpenEvent, rel: &[u8], path: &[u8]) -> OpenData {
    let (path, source) = if e.flags & flags::PATH_D_PATH != 0 {
        (
            path.strip_suffix(&[0]).unwrap_or(path).to_vec(),
            PathSource::File,
        )
    } else if e.flags & flags::PATH_RESOLVED != 0 {
        (path_from_components(path, e.flags), PathSource::File)
    } else if e.flags & flags::PATH_JOINED != 0 {
        let mut p = path_from_components(path, e.flags);
        if !p.is_empty() && p != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(rel);
        (p, PathSource::Joined)
    } else if rel.starts_with(b"/") {
        (rel.to_vec(), PathSource::Caller)
    } else {
        (rel.to_vec(), PathSource::Unresolved)
    };
    let syscall = match OpenSyscall::try_from(e.syscall) {
        Ok(OpenSyscall::Open) => "open".into(),
        Ok(OpenSyscall::Openat) => "openat".into(),
        Ok(OpenSyscall::Openat2) => "openat2".into(),
        Ok(OpenSyscall::Creat) => "creat".into(),
        Ok(OpenSyscall::IoUring) => "io_uring".into(),
        Err(n) => format!("syscall_{n}").into(),
    };
    let access = match e.open_flags & libc::O_ACCMODE as u32 {
        0 => "read",
        1 => "write",
        _ => "read_write",
    };
    let io_uring = e.flags & flags::IO_URING != 0;
    let tmpfile = libc::O_TMPFILE as u32;
    let creates = e.open_flags & libc::O_CREAT as u32 != 0 || e.open_flags & tmpfile == tmpfile;
    OpenData {
        syscall,
        path: Text(path),
        path_source: source,
        path_truncated: e.flags & flags::PATH_TRUNCATED != 0,
        path_pseudo: e.flags & flags::PATH_PSEUDO != 0,
        compat: e.flags & flags::COMPAT_SYSCALL != 0,
        io_uring,
        access: access.into(),
        flags: open_flag_names(e.open_flags),
        flags_raw: e.open_flags,
        mode: creates.then(|| format!("{:04o}", e.mode & 0o7777)),
        fd: (e.ret >= 0 && !io_uring).then_some(e.ret),
        error: (e.ret < 0).then(|| errno_name(e.ret.unsigned_abs())),
        ino: (e.ret >= 0 && e.ino != 0).then_some(e.ino),
    }
}

fn open_flag_names(f: u32) -> Vec<Name> {
    const NAMES: &[(i32, &str)] = &[
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_LARGEFILE, "O_LARGEFILE"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
    ];
    let mut out = vec![
        match f & libc::O_ACCMODE as u32 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        }
        .into(),
    ];
    // O_TMPFILE includes O_DIRECTORY's bit; name it whole or not at all.
    if f & libc::O_TMPFILE as u32 == libc::O_TMPFILE as u32 {
        out.push("O_TMPFILE".into());
    } else if f & libc::O_DIRECTORY as u32 != 0 {
        out.push("O_DIRECTORY".into());
    }
    // O_SYNC includes O_DSYNC's bit: likewise.
    let sync = f & libc::O_SYNC as u32 == libc::O_SYNC as u32;
    if sync {
        out.push("O_SYNC".into());
    }
    out.extend(
        NAMES
            .iter()
            .filter(|(bit, _)| f & *bit as u32 != 0 && !(sync && *bit == libc::O_DSYNC))
            .map(|(_, n)| Name::from(*n)),
    );
    out
}

/// IP protocol name (`tcp`, `udp`, ...), or `proto_<n>`.
pub fn protocol_name(p: i32) -> String {
    match p {
        libc::IPPROTO_TCP => "tcp".to_owned(),
        libc::IPPROTO_UDP => "udp".to_owned(),
        libc::IPPROTO_ICMP => "icmp".to_owned(),
        libc::IPPROTO_ICMPV6 => "icmpv6".to_owned(),
        libc::IPPROTO_SCTP => "sctp".to_owned(),
        n => format!("proto_{n}"),
    }
}

fn bpf_data(e: &BpfEvent) -> BpfData {
    let cmd = match e.cmd {
        bpf_cmd::PROG_LOAD => "prog_load",
        bpf_cmd::PROG_ATTACH => "prog_attach",
        bpf_cmd::PROG_DETACH => "prog_detach",
        bpf_cmd::RAW_TRACEPOINT_OPEN => "raw_tracepoint_open",
        bpf_cmd::LINK_CREATE => "link_create",
        bpf_cmd::LINK_UPDATE => "link_update",
        bpf_cmd::LINK_DETACH => "link_detach",
        _ => "",
    };
    let cmd: Name = if cmd.is_empty() {
        format!("cmd_{}", e.cmd).into()
    } else {
        cmd.into()
    };
    let name_len = e.name.iter().position(|b| *b == 0).unwrap_or(e.name.len());
    let takes_attach = matches!(
        e.cmd,
        bpf_cmd::PROG_ATTACH | bpf_cmd::PROG_DETACH | bpf_cmd::LINK_CREATE
    );
    BpfData {
        cmd,
        prog_type: (e.cmd == bpf_cmd::PROG_LOAD).then(|| prog_type_name(e.prog_type)),
        attach_type: takes_attach.then_some(e.attach_type),
        name: (name_len > 0).then(|| Text::from(&e.name[..name_len])),
        ret: e.ret,
        error: (e.ret < 0).then(|| errno_name(e.ret.unsigned_abs())),
        compat: e.flags & flags::COMPAT_SYSCALL != 0,
    }
}

/// The kernel's `enum bpf_prog_type`, lower case without the prefix.
fn prog_type_name(t: u32) -> Name {
    const NAMES: [&str; 33] = [
        "unspec",
        "socket_filter",
        "kprobe",
        "sched_cls",
        "sched_act",
        "tracepoint",
        "xdp",
        "perf_event",
        "cgroup_skb",
        "cgroup_sock",
        "lwt_in",
        "lwt_out",
        "lwt_xmit",
        "sock_ops",
        "sk_skb",
        "cgroup_device",
        "sk_msg",
        "raw_tracepoint",
        "cgroup_sock_addr",
        "lwt_seg6local",
        "lirc_mode2",
        "sk_reuseport",
        "flow_dissector",
        "cgroup_sysctl",
        "raw_tracepoint_writable",
        "cgroup_sockopt",
        "tracing",
        "struct_ops",
        "ext",
        "lsm",
        "sk_lookup",
        "syscall",
        "netfilter",
    ];
    match NAMES.get(t as usize) {
        Some(n) => (*n).into(),
        None => format!("prog_type_{t}").into(),
    }
}

fn tamper_data(e: &TamperEvent, syscall: TamperSyscall) -> TamperData {
    let (name, request, signal) = match syscall {
        TamperSyscall::Ptrace => ("ptrace", Some(ptrace_request_name(e.arg)), None),
        TamperSyscall::ProcessVmReadv => ("process_vm_readv", None, None),
        TamperSyscall::ProcessVmWritev => ("process_vm_writev", None, None),
        TamperSyscall::Kill => ("kill", None, Some(signal_name(e.arg))),
        TamperSyscall::Tkill => ("tkill", None, Some(signal_name(e.arg))),
        TamperSyscall::Tgkill => ("tgkill", None, Some(signal_name(e.arg))),
    };
    TamperData {
        syscall: name.into(),
        target_pid: e.target,
        request,
        signal,
        ret: e.ret,
        error: (e.ret < 0).then(|| errno_name(e.ret.unsigned_abs())),
        compat: e.flags & flags::COMPAT_SYSCALL != 0,
    }
}

/// ptrace(2) requests by their names in <sys/ptrace.h>, lower case.
fn ptrace_request_name(r: u32) -> Name {
    let name = match r {
        0 => "traceme",
        1 => "peektext",
        2 => "peekdata",
        3 => "peekuser",
        4 => "poketext",
        5 => "pokedata",
        6 => "pokeuser",
        7 => "cont",
        8 => "kill",
        9 => "singlestep",
        12 => "getregs",
        13 => "setregs",
        16 => "attach",
        17 => "detach",
        24 => "syscall",
        0x4200 => "setoptions",
        0x4202 => "getsiginfo",
        0x4204 => "getregset",
        0x4205 => "setregset",
        0x4206 => "seize",
        0x4207 => "interrupt",
        0x4208 => "listen",
        _ => return format!("request_{r}").into(),
    };
    name.into()
}

/// "SIGSTOP"; "SIG0" for the null signal (a probe that the pid exists).
fn signal_name(n: u32) -> Name {
    if n == 0 {
        return "SIG0".into();
    }
    match nix::sys::signal::Signal::try_from(n as i32) {
        Ok(s) => s.as_str().into(),
        Err(_) => format!("SIG{n}").into(),
    }
}

/// Symbolic errno ("ENOENT"), or "E<n>" for numbers the table lacks. Takes
/// the magnitude of a failed call's return value: negating `i32::MIN`, which
/// a corrupt record can carry, would overflow.
pub fn errno_name(n: u32) -> Name {
    // Kernel-internal codes a syscall exit shows when a signal interrupted
    // it: the call is restarted (another event follows) or fails EINTR.
    const RESTART: [&str; 5] = [
        "ERESTARTSYS",
        "ERESTARTNOINTR",
        "ERESTARTNOHAND",
        "ENOIOCTLCMD",
        "ERESTART_RESTARTBLOCK",
    ];
    if let Some(name) = n.checked_sub(512).and_then(|i| RESTART.get(i as usize)) {
        return (*name).into();
    }
    let e = i32::try_from(n).map_or(nix::errno::Errno::UnknownErrno, nix::errno::Errno::from_raw);
    if e == nix::errno::Errno::UnknownErrno {
        format!("E{n}").into()
    } else {
        format!("{e:?}").into()
    }
}

fn connect_data(e: &ConnectEvent, unix: &[u8]) -> ConnectData {
    let family = match e.family as i32 {
        libc::AF_INET => "inet".to_owned(),
        libc::AF_INET6 => "inet6".to_owned(),
        libc::AF_UNIX => "unix".to_owned(),
        libc::AF_UNSPEC => "unspec".to_owned(),
        n => format!("af_{n}"),
    };
    let (address, mapped, port) = match e.family as i32 {
        libc::AF_INET => {
            let v4 = Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]);
            (Some(IpAddr::V4(v4)), None, Some(e.port))
        }
        libc::AF_INET6 => {
            let v6 = Ipv6Addr::from(e.addr);
            (
                Some(IpAddr::V6(v6)),
                v6.to_ipv4_mapped().map(IpAddr::V4),
                Some(e.port),
            )
        }
        _ => (None, None, None),
    };
    let unix_path = (e.family as i32 == libc::AF_UNIX).then(|| unix_path(unix));
    let sock_type = (e.sock_type != 0).then(|| match e.sock_type as i32 {
        libc::SOCK_STREAM => "stream".to_owned(),
        libc::SOCK_DGRAM => "dgram".to_owned(),
        libc::SOCK_SEQPACKET => "seqpacket".to_owned(),
        libc::SOCK_RAW => "raw".to_owned(),
        n => format!("type_{n}"),
    });
    let protocol = (e.protocol != 0).then(|| protocol_name(e.protocol.into()));
    ConnectData {
        family,
        sock_type,
        protocol,
        address,
        ipv4_mapped: mapped,
        port,
        unix_path,
        fd: e.fd,
        ret: e.ret,
        error: (e.ret < 0).then(|| errno_name(e.ret.unsigned_abs())),
        compat: e.flags & flags::COMPAT_SYSCALL != 0,
        io_uring: e.flags & flags::IO_URING != 0,
        address_source: if e.flags & flags::ADDR_FROM_KERNEL != 0 {
            AddressSource::Kernel
        } else {
            AddressSource::Caller
        },
    }
}

/// `sun_path`: pathname sockets end at the first NUL; abstract ones start
/// with NUL and use every byte of the given length, shown with a leading '@'.
fn unix_path(raw: &[u8]) -> Text {
    match raw.split_first() {
        Some((0, rest)) => {
            let mut v = b"@".to_vec();
            v.extend_from_slice(rest);
            Text(v)
        }
        _ => Text::from(cstr(raw)),
    }
}

/// Builds ring records byte for byte as the kernel writes them, for tests
/// and benchmarks.
#[doc(hidden)]
pub mod fixture {
    use sensor_common::{EventHeader, EventKind};

    /// A header for `kind` from pid 10 / tid 11, comm "bash", cgroup 42.
    pub fn header(kind: EventKind) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"bash");
        EventHeader {
            kind: kind as u32,
            size: 0,
            boot_ns: 1_000,
            tid: 11,
            pid: 10,
            uid: 0,
            gid: 0,
            cgroup_id: 42,
            cgroup_v1_id: 0,
            comm,
        }
    }

    /// The bytes of a kernel record (a sensor-common header or payload).
    pub fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: `v` is a live reference, so size_of::<T>() bytes from it
        // are readable; the callers pass sensor-common records, repr(C)
        // integers whose padding is spelt out as fields (their sizes are
        // asserted there), so every one of those bytes is initialised.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    /// An exec payload for a path tail of `path_len` and argv of `argv_len` bytes.
    pub fn exec_payload(path_len: usize, argv_len: usize, flags: u32) -> sensor_common::ExecEvent {
        sensor_common::ExecEvent {
            ppid: 1,
            euid: 0,
            egid: 0,
            ns_pid: 10,
            mnt_ns: 4026531841,
            pid_ns: 4026531836,
            start_boottime: 500,
            flags,
            path_len: path_len as u32,
            argv_len: argv_len as u32,
            _pad: 0,
        }
    }

    /// header + payload + tail, with the header's size set.
    pub fn record<T: Copy>(kind: EventKind, payload: &T, tail: &[u8]) -> Vec<u8> {
        let mut h = header(kind);
        h.size = (size_of::<EventHeader>() + size_of::<T>() + tail.len()) as u32;
        let mut out = bytes_of(&h);
        out.extend(bytes_of(payload));
        out.extend_from_slice(tail);
        out
    }
}

#[cfg(test)]
mod tests;
