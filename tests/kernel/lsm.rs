//! The LSM tier: connect addresses from the kernel's own copy, and io_uring
//! opens and connects, which never pass a syscall exit. Where the tier does
//! not run (forced tracepoint tier, kernel without BPF LSM) the same tests
//! check the documented fallback instead.
use std::{
    ffi::CString,
    net::TcpListener,
    os::unix::ffi::OsStrExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
};

use io_uring::{IoUring, opcode, types};
use sensor_tests::{Sensor, patience, text_bytes, unique_dir};

fn mine(r: &serde_json::Value) -> bool {
    r["process"]["pid"] == std::process::id()
}

/// Accepts and drops connections forever, so connects never queue.
fn listen_forever() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

/// `struct sockaddr_in` whose port another thread may rewrite.
#[repr(C)]
struct RacySockaddrIn {
    family: u16,
    port_be: AtomicU16,
    addr: [u8; 4],
    zero: [u8; 8],
}

fn peer_port(fd: i32) -> u16 {
    // SAFETY: an all-zero sockaddr_in is valid (integers only); getpeername
    // writes at most `len` bytes, the size of that local buffer.
    unsafe {
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::getpeername(fd, (&raw mut sa).cast(), &mut len),
            0,
            "getpeername"
        );
        u16::from_be(sa.sin_port)
    }
}

/// A second thread flips the port in the caller's sockaddr while connect
/// runs. The tracepoint tiers read that buffer back at exit and may report
/// the other port; the LSM tier must report, every time, the port the
/// kernel connected to.
#[test]
fn connect_reports_the_address_the_kernel_used() {
    const CONNECTS: usize = 200;
    let (pa, pb) = (listen_forever(), listen_forever());
    let mut sensor = Sensor::start(&["--hooks", "connect"]);
    let lsm = sensor.lsm_tier();

    let addr = Arc::new(RacySockaddrIn {
        family: libc::AF_INET as u16,
        port_be: AtomicU16::new(pa.to_be()),
        addr: [127, 0, 0, 1],
        zero: [0; 8],
    });
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut to_b = true;
            while !stop.load(Ordering::Relaxed) {
                let p = if to_b { pb } else { pa };
                addr.port_be.store(p.to_be(), Ordering::Relaxed);
                to_b = !to_b;
            }
        })
    };
    // SAFETY: gettid(2) takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    let mut actual = Vec::with_capacity(CONNECTS);
    for _ in 0..CONNECTS {
        // SAFETY: a fresh socket, connected with a pointer to a live
        // sockaddr_in-shaped buffer (held by the Arc) of the length given,
        // then closed once.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket");
            let r = libc::connect(
                fd,
                Arc::as_ptr(&addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
            actual.push(peer_port(fd));
            libc::close(fd);
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();

    let events = sensor.find("connect", |r| {
        mine(r)
            && r["process"]["tid"] == tid
            && (r["connect"]["port"] == pa || r["connect"]["port"] == pb)
    });
    assert_eq!(events.len(), CONNECTS, "one event per connect");
    let source = if lsm { "kernel" } else { "caller" };
    let mut differ = 0;
    for (e, port) in events.iter().zip(&actual) {
        assert_eq!(e["connect"]["address_source"], source, "{e}");
        if e["connect"]["port"] != *port {
            differ += 1;
            assert!(
                !lsm,
                "reported {} but connected to {port}: {e}",
                e["connect"]["port"]
            );
        }
    }
    eprintln!(
        "{differ} of {CONNECTS} connects reported a port other than the one connected (lsm tier: {lsm})"
    );
}

/// io_uring does its opens and connects without the syscalls, so sys_exit
/// never sees them; the LSM tier's hooks do.
#[test]
fn io_uring_opens_and_connects() {
    let port = listen_forever();
    let dir = unique_dir("uring");
    let path = dir.path().join("staged.bin");
    let mut sensor = Sensor::start(&["--hooks", "open,connect"]);
    let lsm = sensor.lsm_tier();

    let mut ring = IoUring::new(8).expect("io_uring_setup (is io_uring disabled by sysctl?)");
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), cpath.as_ptr())
        .flags(libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC)
        .mode(0o600)
        .build()
        .user_data(1);
    // SAFETY: the entry points at `cpath`, which outlives the
    // submit_and_wait below that completes it.
    unsafe { ring.submission().push(&open).unwrap() };
    ring.submit_and_wait(1).unwrap();
    let fd = ring.completion().next().unwrap().result();
    assert!(fd >= 0, "io_uring openat: {fd}");
    // SAFETY: close(2) of the fd io_uring just opened for us, closed once.
    unsafe { libc::close(fd) };

    // SAFETY: socket(2) takes no pointers; the fd is closed once below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    let connect = opcode::Connect::new(
        types::Fd(sock),
        (&raw const sa).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as u32,
    )
    .build()
    .user_data(2);
    // SAFETY: the entry points at `sa`, which outlives the submit_and_wait
    // below that completes it.
    unsafe { ring.submission().push(&connect).unwrap() };
    ring.submit_and_wait(1).unwrap();
    assert_eq!(
        ring.completion().next().unwrap().result(),
        0,
        "io_uring connect"
    );
    // SAFETY: close(2) of the socket made above, closed only here.
    unsafe { libc::close(sock) };

    let is_path = |r: &serde_json::Value| {
        mine(r) && text_bytes(&r["open"]["path"]) == path.as_os_str().as_bytes()
    };
    let is_port = |r: &serde_json::Value| mine(r) && r["connect"]["port"] == port;
    if lsm {
        let open = sensor.wait_for("open", "the io_uring open", is_path);
        let o = &open["open"];
        assert_eq!(
            (o["syscall"].as_str(), o["io_uring"].as_bool()),
            (Some("io_uring"), Some(true)),
            "{open}"
        );
        assert_eq!(o["access"], "write", "{open}");
        assert!(
            o["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "O_CREAT"),
            "{open}"
        );
        assert!(o["fd"].is_null() && o["ino"].as_u64().is_some(), "{open}");
        let conn = sensor.wait_for("connect", "the io_uring connect", is_port);
        let c = &conn["connect"];
        assert_eq!(c["io_uring"], true, "{conn}");
        assert_eq!(c["address_source"], "kernel", "{conn}");
        assert_eq!(
            (c["address"].as_str(), c["protocol"].as_str()),
            (Some("127.0.0.1"), Some("tcp")),
            "{conn}"
        );
    } else {
        // The documented gap: nothing to see without the LSM tier.
        std::thread::sleep(patience(1));
        assert!(sensor.find("open", is_path).is_empty());
        assert!(sensor.find("connect", is_port).is_empty());
    }
}
