//! Decoding fixtures built byte by byte, as the kernel writes them.
use super::{fixture::*, *};

#[test]
fn exec_path_and_argv_are_exact() {
    let path = b"true\0bin\0usr\0";
    let argv = b"/usr/bin/true\0a b\0\xff\xfe\0";
    let mut tail = path.to_vec();
    tail.extend_from_slice(argv);
    let raw = record(
        EventKind::Exec,
        &exec_payload(path.len(), argv.len(), flags::PATH_COMPONENTS),
        &tail,
    );
    let rec = decode(&raw, &BootClock::new()).unwrap();
    let Body::Exec(e) = rec.body else {
        panic!("not exec")
    };
    assert_eq!(e.data.exec.path.as_bytes(), b"/usr/bin/true");
    let args: Vec<&[u8]> = e.data.exec.args.iter().map(|a| a.as_bytes()).collect();
    assert_eq!(args, vec![&b"/usr/bin/true"[..], b"a b", b"\xff\xfe"]);
    assert_eq!(e.process.comm.as_bytes(), b"bash");
    assert_eq!(e.cgroup.v1_id, None);
}

#[test]
fn truncated_argv_without_final_nul_keeps_last_arg() {
    let argv = b"cat\0/etc/pass";
    let raw = record(
        EventKind::Exec,
        &exec_payload(0, argv.len(), flags::ARGV_TRUNCATED),
        argv,
    );
    let Body::Exec(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.exec.args.last().unwrap().as_bytes(), b"/etc/pass");
    assert!(e.data.exec.args_truncated);
    assert_eq!(e.data.exec.path.as_bytes(), b"/");
}

#[test]
fn tail_longer_than_record_is_rejected() {
    let raw = record(EventKind::Exec, &exec_payload(100, 0, 0), b"short");
    assert!(matches!(
        decode(&raw, &BootClock::new()),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn short_and_unknown_records_are_rejected() {
    assert!(matches!(
        decode(&[0u8; 10], &BootClock::new()),
        Err(DecodeError::Truncated { .. })
    ));
    let mut h = header(EventKind::Exit);
    h.kind = 99;
    h.size = size_of::<EventHeader>() as u32;
    assert_eq!(
        decode(&bytes_of(&h), &BootClock::new()).unwrap_err(),
        DecodeError::UnknownKind(99)
    );
}

#[test]
fn header_size_must_match_ring_item() {
    let mut raw = record(
        EventKind::Fork,
        &ForkEvent {
            ppid: 1,
            parent_tid: 1,
            start_boottime: 0,
        },
        b"",
    );
    raw[4] = 200; // size field
    assert!(matches!(
        decode(&raw, &BootClock::new()),
        Err(DecodeError::SizeMismatch { .. })
    ));
}

fn open_payload(ret: i32, flags_: u32, rel_len: usize, path_len: usize) -> OpenEvent {
    OpenEvent {
        syscall: OpenSyscall::Openat as u32,
        open_flags: (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u32,
        mode: 0o644,
        ret,
        ino: 77,
        flags: flags_,
        path_len: path_len as u32,
        rel_len: rel_len as u32,
        _pad: 0,
    }
}

#[test]
fn open_resolved_path() {
    let tail = b"out.txt\0work\0tmp\0";
    let raw = record(
        EventKind::Open,
        &open_payload(
            3,
            flags::PATH_RESOLVED | flags::PATH_COMPONENTS,
            0,
            tail.len(),
        ),
        tail,
    );
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    let o = e.data.open;
    assert_eq!(o.path.as_bytes(), b"/tmp/work/out.txt");
    assert_eq!(o.path_source, PathSource::File);
    assert_eq!(o.access, "write");
    assert!(o.flags.contains(&"O_CREAT".into()) && o.flags.contains(&"O_TRUNC".into()));
    assert_eq!(o.mode.as_deref(), Some("0644"));
    assert_eq!((o.fd, o.ino, o.error), (Some(3), Some(77), None));
}

#[test]
fn failed_relative_open_is_joined_to_its_directory() {
    let mut tail = b"missing".to_vec();
    tail.extend_from_slice(b"work\0tmp\0");
    let raw = record(
        EventKind::Open,
        &open_payload(-2, flags::PATH_JOINED | flags::PATH_COMPONENTS, 7, 9),
        &tail,
    );
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.open.path.as_bytes(), b"/tmp/work/missing");
    assert_eq!(e.data.open.error.as_deref(), Some("ENOENT"));
    assert_eq!(e.data.open.path_source, PathSource::Joined);
}

#[test]
fn failed_absolute_open_keeps_callers_string() {
    let raw = record(
        EventKind::Open,
        &open_payload(-13, 0, 11, 0),
        b"/etc/shadow",
    );
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.open.path.as_bytes(), b"/etc/shadow");
    assert_eq!(e.data.open.error.as_deref(), Some("EACCES"));
}

fn connect_payload(family: i32, port: u16, addr: [u8; 16], unix_len: usize) -> ConnectEvent {
    ConnectEvent {
        ret: -111,
        fd: 5,
        family: family as u16,
        port,
        sock_type: libc::SOCK_STREAM as u16,
        protocol: libc::IPPROTO_TCP as u16,
        addr,
        unix_path_len: unix_len as u32,
        flags: 0,
    }
}

#[test]
fn connect_v4_mapped_and_unix() {
    let mut mapped = [0u8; 16];
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped[12..].copy_from_slice(&[127, 0, 0, 1]);
    let raw = record(
        EventKind::Connect,
        &connect_payload(libc::AF_INET6, 443, mapped, 0),
        b"",
    );
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    let c = e.data.connect;
    assert_eq!(c.ipv4_mapped, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(
        (c.port, c.protocol.as_deref(), c.error.as_deref()),
        (Some(443), Some("tcp"), Some("ECONNREFUSED"))
    );

    let path = b"/run/x.sock\0\0\0";
    let raw = record(
        EventKind::Connect,
        &connect_payload(libc::AF_UNIX, 0, [0; 16], path.len()),
        path,
    );
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.connect.unix_path.unwrap().as_bytes(), b"/run/x.sock");

    let abs = b"\0hidden";
    let raw = record(
        EventKind::Connect,
        &connect_payload(libc::AF_UNIX, 0, [0; 16], abs.len()),
        abs,
    );
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.connect.unix_path.unwrap().as_bytes(), b"@hidden");
}

#[test]
fn json_line_is_one_line_and_round_trips() {
    let argv = b"sh\0-c\0echo hi\n{\"kind\":\"exec\"}\0";
    let raw = record(EventKind::Exec, &exec_payload(0, argv.len(), 0), argv);
    let rec = decode(&raw, &BootClock::new()).unwrap();
    let line = serde_json::to_string(&rec).unwrap();
    assert!(!line.contains('\n'));
    let back: Record = serde_json::from_str(&line).unwrap();
    let Body::Exec(e) = back.body else { panic!() };
    assert_eq!(
        e.data.exec.args[2].as_bytes(),
        b"echo hi\n{\"kind\":\"exec\"}"
    );
}

#[test]
fn failed_relative_open_with_unreadable_directory_is_unresolved() {
    let raw = record(EventKind::Open, &open_payload(-2, 0, 7, 0), b"missing");
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.open.path.as_bytes(), b"missing");
    assert_eq!(e.data.open.path_source, PathSource::Unresolved);
}

#[test]
fn pseudo_path_starts_at_the_objects_name() {
    let tail = b"memfd:payload\0";
    let bits = flags::PATH_RESOLVED | flags::PATH_COMPONENTS | flags::PATH_PSEUDO;
    let raw = record(
        EventKind::Open,
        &open_payload(3, bits | flags::COMPAT_SYSCALL, 0, tail.len()),
        tail,
    );
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.open.path.as_bytes(), b"memfd:payload");
    assert!(e.data.open.path_pseudo && e.data.open.compat);
    let json = serde_json::to_value(&e.data.open).unwrap();
    assert_eq!(json["path_pseudo"], true);
    assert_eq!(json["compat"], true);
}

#[test]
fn mode_only_for_creating_opens_and_sync_named_once() {
    let (o_dir, o_sync) = (libc::O_DIRECTORY as u32, libc::O_SYNC as u32);
    let mut p = open_payload(3, flags::PATH_RESOLVED | flags::PATH_COMPONENTS, 0, 1);
    p.open_flags = o_dir | o_sync;
    let Body::Open(e) = decode(&record(EventKind::Open, &p, b"\0"), &BootClock::new())
        .unwrap()
        .body
    else {
        panic!()
    };
    let o = e.data.open;
    assert_eq!(o.mode, None, "O_DIRECTORY is not O_TMPFILE");
    assert_eq!(o.flags, ["O_RDONLY", "O_DIRECTORY", "O_SYNC"]);
    p.open_flags = libc::O_TMPFILE as u32 | libc::O_RDWR as u32;
    let Body::Open(e) = decode(&record(EventKind::Open, &p, b"\0"), &BootClock::new())
        .unwrap()
        .body
    else {
        panic!()
    };
    assert_eq!(e.data.open.mode.as_deref(), Some("0644"));
}

#[test]
fn restart_codes_have_names() {
    assert_eq!(errno_name(512), "ERESTARTSYS");
    assert_eq!(errno_name(516), "ERESTART_RESTARTBLOCK");
    assert_eq!(errno_name(2), "ENOENT");
    assert_eq!(errno_name(4000), "E4000");
}

#[test]
fn io_uring_open_carries_d_path_string_and_no_fd() {
    let tail = b"/tmp/drop/payload.bin\0";
    let mut p = open_payload(
        0,
        flags::PATH_RESOLVED | flags::PATH_D_PATH | flags::IO_URING,
        0,
        tail.len(),
    );
    p.syscall = OpenSyscall::IoUring as u32;
    let raw = record(EventKind::Open, &p, tail);
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    let o = e.data.open;
    assert_eq!(o.path.as_bytes(), b"/tmp/drop/payload.bin");
    assert_eq!((o.syscall.as_ref(), o.io_uring), ("io_uring", true));
    assert_eq!((o.fd, o.ino, o.error), (None, Some(77), None));
}

#[test]
fn connect_says_where_its_address_came_from() {
    let mut p = connect_payload(
        libc::AF_INET,
        443,
        [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    let raw = record(EventKind::Connect, &p, b"");
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(
        (e.data.connect.address_source, e.data.connect.io_uring),
        (AddressSource::Caller, false)
    );
    p.flags = flags::ADDR_FROM_KERNEL | flags::IO_URING;
    let raw = record(EventKind::Connect, &p, b"");
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(
        (e.data.connect.address_source, e.data.connect.io_uring),
        (AddressSource::Kernel, true)
    );
    let json = serde_json::to_string(&e.data.connect).unwrap();
    assert!(
        json.contains(r#""address_source":"kernel""#) && json.contains(r#""io_uring":true"#),
        "{json}"
    );
}

#[test]
fn rate_limited_names_the_suppressed_kind_and_refuses_others() {
    let payload = |suppressed: EventKind| RateLimitedEvent {
        suppressed: suppressed as u32,
        limit: 100,
        window_start_ns: 5,
    };
    let raw = record(EventKind::RateLimited, &payload(EventKind::Open), b"");
    let rec = decode(&raw, &BootClock::new()).unwrap();
    let line = serde_json::to_string(&rec).unwrap();
    assert!(
        line.contains(r#""kind":"rate_limited","#)
            && line.contains(
                r#""rate_limited":{"suppressed":"open","limit":100,"window_start_ns":5}"#
            ),
        "{line}"
    );
    let Body::RateLimited(e) = serde_json::from_str::<Record>(&line).unwrap().body else {
        panic!()
    };
    assert_eq!(e.process.comm.as_bytes(), b"bash");

    let raw = record(EventKind::RateLimited, &payload(EventKind::Exec), b"");
    assert_eq!(
        decode(&raw, &BootClock::new()).unwrap_err(),
        DecodeError::UnlimitedKind(EventKind::Exec as u32)
    );
}

#[test]
fn bpf_commands_name_the_command_program_type_and_name() {
    let mut name = [0u8; sensor_common::BPF_NAME_LEN];
    name[..7].copy_from_slice(b"hide_me");
    let load = sensor_common::BpfEvent {
        ret: -13,
        cmd: sensor_common::bpf_cmd::PROG_LOAD,
        prog_type: 2,
        attach_type: 0,
        flags: 0,
        _pad: 0,
        name,
    };
    let rec = decode(&record(EventKind::Bpf, &load, b""), &BootClock::new()).unwrap();
    let line = serde_json::to_string(&rec).unwrap();
    assert!(
        line.contains(r#""bpf":{"cmd":"prog_load","prog_type":"kprobe","name":"hide_me","ret":-13,"error":"EACCES"}"#),
        "{line}"
    );
    let detach = sensor_common::BpfEvent {
        ret: 0,
        cmd: sensor_common::bpf_cmd::PROG_DETACH,
        prog_type: 0,
        attach_type: 6,
        flags: sensor_common::flags::COMPAT_SYSCALL,
        _pad: 0,
        name: [0; sensor_common::BPF_NAME_LEN],
    };
    let rec = decode(&record(EventKind::Bpf, &detach, b""), &BootClock::new()).unwrap();
    let line = serde_json::to_string(&rec).unwrap();
    assert!(
        line.contains(r#""bpf":{"cmd":"prog_detach","attach_type":6,"ret":0,"compat":true}"#),
        "{line}"
    );
}

#[test]
fn tamper_records_name_the_syscall_request_and_signal() {
    let event = |syscall: u32, arg: u32, ret: i32| sensor_common::TamperEvent {
        ret,
        syscall,
        target: 4242,
        arg,
        flags: 0,
        _pad: 0,
    };
    let line = |e| {
        let rec = decode(&record(EventKind::Tamper, &e, b""), &BootClock::new()).unwrap();
        serde_json::to_string(&rec).unwrap()
    };
    let seize = line(event(1, 0x4206, 0));
    assert!(
        seize.contains(
            r#""tamper":{"syscall":"ptrace","target_pid":4242,"request":"seize","ret":0}"#
        ),
        "{seize}"
    );
    let stop = line(event(6, 19, -1));
    assert!(
        stop.contains(r#""tamper":{"syscall":"tgkill","target_pid":4242,"signal":"SIGSTOP","ret":-1,"error":"EPERM"}"#),
        "{stop}"
    );
    assert!(line(event(4, 0, 0)).contains(r#""signal":"SIG0""#));
    let raw = record(EventKind::Tamper, &event(99, 0, 0), b"");
    assert_eq!(
        decode(&raw, &BootClock::new()).unwrap_err(),
        DecodeError::UnknownSyscall(99)
    );
}

/// One record of every kernel kind, and of each way an open's path comes,
/// as the kernel writes them: the decode fuzz target's seeds.
fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let exec_tail = b"true\0bin\0usr\0/usr/bin/true\0-x\0\xff\0";
    let resolved = b"out.txt\0work\0tmp\0";
    let mut joined = b"missing".to_vec();
    joined.extend_from_slice(b"work\0tmp\0");
    let d_path = b"/tmp/ring/x\0";
    let mut v6 = [0u8; 16];
    v6[..2].copy_from_slice(&[0x20, 0x01]);
    v6[15] = 1;
    let cgroup = b"/system.slice/docker-3f4e8d2a1b0c9e7f6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39.scope";
    let cgroup_event = |path_len: usize| CgroupEvent {
        id: 4242,
        hierarchy_id: 0,
        level: 2,
        path_len: path_len as u32,
        _pad: 0,
    };
    let mut io_uring_connect = connect_payload(
        libc::AF_INET,
        80,
        [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        0,
    );
    io_uring_connect.flags = flags::IO_URING | flags::ADDR_FROM_KERNEL;
    io_uring_connect.ret = 0;
    vec![
        (
            "exec",
            record(
                EventKind::Exec,
                &exec_payload(13, exec_tail.len() - 13, flags::PATH_COMPONENTS),
                exec_tail,
            ),
        ),
        (
            "fork",
            record(
                EventKind::Fork,
                &ForkEvent {
                    ppid: 1,
                    parent_tid: 1,
                    start_boottime: 700,
                },
                b"",
            ),
        ),
        (
            "exit",
            record(
                EventKind::Exit,
                &ExitEvent {
                    exit_code: 9,
                    _pad: 0,
                    start_boottime: 500,
                },
                b"",
            ),
        ),
        (
            "open-resolved",
            record(
                EventKind::Open,
                &open_payload(
                    3,
                    flags::PATH_RESOLVED | flags::PATH_COMPONENTS,
                    0,
                    resolved.len(),
                ),
                resolved,
            ),
        ),
        (
            "open-joined",
            record(
                EventKind::Open,
                &open_payload(-2, flags::PATH_JOINED | flags::PATH_COMPONENTS, 7, 9),
                &joined,
            ),
        ),
        (
            "open-d-path",
            record(
                EventKind::Open,
                &open_payload(0, flags::PATH_D_PATH | flags::IO_URING, 0, d_path.len()),
                d_path,
            ),
        ),
        (
            "connect-inet6",
            record(
                EventKind::Connect,
                &connect_payload(libc::AF_INET6, 443, v6, 0),
                b"",
            ),
        ),
        (
            "connect-io-uring",
            record(EventKind::Connect, &io_uring_connect, b""),
        ),
        (
            "connect-unix-abstract",
            record(
                EventKind::Connect,
                &connect_payload(libc::AF_UNIX, 0, [0; 16], 7),
                b"\0hidden",
            ),
        ),
        (
            "cgroup-mkdir",
            record(EventKind::CgroupMkdir, &cgroup_event(cgroup.len()), cgroup),
        ),
        (
            "cgroup-rmdir",
            record(EventKind::CgroupRmdir, &cgroup_event(cgroup.len()), cgroup),
        ),
        (
            "rate-limited",
            record(
                EventKind::RateLimited,
                &RateLimitedEvent {
                    suppressed: EventKind::Open as u32,
                    limit: 100,
                    window_start_ns: 5,
                },
                b"",
            ),
        ),
        (
            "bpf-prog-load",
            record(
                EventKind::Bpf,
                &sensor_common::BpfEvent {
                    ret: 7,
                    cmd: sensor_common::bpf_cmd::PROG_LOAD,
                    prog_type: 2,
                    attach_type: 0,
                    flags: 0,
                    _pad: 0,
                    name: *b"hide_me\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                },
                b"",
            ),
        ),
        (
            "tamper-ptrace",
            record(
                EventKind::Tamper,
                &sensor_common::TamperEvent {
                    ret: -1,
                    syscall: sensor_common::TamperSyscall::Ptrace as u32,
                    target: 4012,
                    arg: 0x4206,
                    flags: 0,
                    _pad: 0,
                },
                b"",
            ),
        ),
    ]
}

/// The decode fuzz target starts from fuzz/seeds/decode: every seed is a
/// record that decodes, byte for byte what the fixtures build, so a change
/// of the record layout cannot leave the fuzzer starting from bytes it
/// rejects at once. `SENSOR_WRITE_FUZZ_SEEDS=1 cargo test -p sensor
/// fuzz_seeds` rewrites them.
#[test]
fn fuzz_seeds_are_current_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let dir = root.join("fuzz/seeds/decode");
    let write = std::env::var_os("SENSOR_WRITE_FUZZ_SEEDS").is_some();
    let seeds = fuzz_seeds();
    let kinds: std::collections::BTreeSet<u32> = seeds
        .iter()
        .map(|(_, raw)| u32::from_ne_bytes(raw[..4].try_into().unwrap()))
        .collect();
    let every: std::collections::BTreeSet<u32> = (0..sensor_common::EVENT_KIND_SLOTS as u32)
        .filter(|&id| EventKind::try_from(id).is_ok())
        .collect();
    assert_eq!(kinds, every, "a seed of every kind");
    for (name, raw) in seeds {
        if let Err(e) = decode(&raw, &BootClock::new()) {
            panic!("seed {name} does not decode: {e}");
        }
        let path = dir.join(format!("{name}.bin"));
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &raw).unwrap();
        } else {
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert!(
                on_disk == raw,
                "{} is not the record the fixtures build: SENSOR_WRITE_FUZZ_SEEDS=1 cargo test -p sensor fuzz_seeds",
                path.display()
            );
        }
    }
}

/// Found by the decode fuzz target (fuzz/seeds/decode/regression-*): a
/// return value of `i32::MIN` was negated to name its errno, which
/// overflows. Such a record is still decoded, its error named by number.
#[test]
fn most_negative_return_value_is_named_not_negated() {
    let raw = record(EventKind::Open, &open_payload(i32::MIN, 0, 4, 0), b"/tmp");
    let Body::Open(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.open.error.as_deref(), Some("E2147483648"));
    let mut payload = connect_payload(libc::AF_INET, 80, [0; 16], 0);
    payload.ret = i32::MIN;
    let raw = record(EventKind::Connect, &payload, b"");
    let Body::Connect(e) = decode(&raw, &BootClock::new()).unwrap().body else {
        panic!()
    };
    assert_eq!(e.data.connect.error.as_deref(), Some("E2147483648"));
}
