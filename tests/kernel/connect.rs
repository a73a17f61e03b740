use std::{
    io::{Read as _, Write as _},
    net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket},
    os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream},
    },
};

use sensor_tests::{Sensor, text_bytes, unique_dir};

fn mine(r: &serde_json::Value) -> bool {
    r["process"]["pid"] == std::process::id()
}

#[test]
fn tcp_udp_v4_v6_and_mapped_connects() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let udp_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (p4, p6, pu) = (
        v4.local_addr().unwrap().port(),
        v6.local_addr().unwrap().port(),
        udp_peer.local_addr().unwrap().port(),
    );
    let mut sensor = Sensor::start(&["--hooks", "connect", "--capture-connects", "all"]);

    TcpStream::connect(("127.0.0.1", p4)).unwrap();
    TcpStream::connect(("::1", p6)).unwrap();
    let mapped = SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]),
        p4,
        0,
        0,
    ));
    TcpStream::connect(mapped).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(("127.0.0.1", pu)).unwrap();
    // A refused connect still reports, with its error.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(TcpStream::connect(("127.0.0.1", closed_port)).is_err());

    let tcp4 = sensor.expect_one("connect", "tcp v4", |r| {
        mine(r) && r["connect"]["port"] == p4 && r["connect"]["family"] == "inet"
    });
    assert_eq!(tcp4["connect"]["address"], "127.0.0.1");
    assert_eq!(
        (
            tcp4["connect"]["protocol"].as_str(),
            tcp4["connect"]["sock_type"].as_str()
        ),
        (Some("tcp"), Some("stream"))
    );
    assert_eq!(tcp4["connect"]["ret"], 0);

    let tcp6 = sensor.expect_one("connect", "tcp v6", |r| {
        mine(r) && r["connect"]["port"] == p6
    });
    assert_eq!(
        (
            tcp6["connect"]["family"].as_str(),
            tcp6["connect"]["address"].as_str()
        ),
        (Some("inet6"), Some("::1"))
    );

    let m = sensor.expect_one("connect", "v4-mapped", |r| {
        mine(r) && r["connect"]["port"] == p4 && r["connect"]["family"] == "inet6"
    });
    assert_eq!(m["connect"]["ipv4_mapped"], "127.0.0.1");

    let u = sensor.expect_one("connect", "udp", |r| mine(r) && r["connect"]["port"] == pu);
    assert_eq!(
        (
            u["connect"]["protocol"].as_str(),
            u["connect"]["sock_type"].as_str()
        ),
        (Some("udp"), Some("dgram"))
    );

    let refused = sensor.expect_one("connect", "refused", |r| {
        mine(r) && r["connect"]["port"] == closed_port
    });
    assert_eq!(refused["connect"]["error"], "ECONNREFUSED");
}

#[test]
fn unix_path_and_abstract_connects() {
    let dir = unique_dir("unix");
    let path = dir.path().join("s.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    let abstract_addr = UnixAddr::from_abstract_name(b"sensor-test-abstract").unwrap();
    let _abstract_listener = UnixListener::bind_addr(&abstract_addr).unwrap();
    let mut sensor = Sensor::start(&["--hooks", "connect", "--capture-connects", "all"]);
    UnixStream::connect(&path).unwrap();
    UnixStream::connect_addr(&abstract_addr).unwrap();

    let named = sensor.expect_one("connect", "unix path", |r| {
        mine(r)
            && r["connect"]["unix_path"].is_string()
            && text_bytes(&r["connect"]["unix_path"]) == path.as_os_str().as_encoded_bytes()
    });
    assert_eq!(named["connect"]["family"], "unix");
    sensor.expect_one("connect", "abstract unix", |r| {
        mine(r) && r["connect"]["unix_path"] == "@sensor-test-abstract"
    });
}

/// With rules loaded, the kernel keeps only the connects a rule could
/// match (the shipped rules: successful inet ones), counts the rest, and
/// follows the rules when they reload.
#[test]
fn rules_decide_which_connects_reach_userspace() {
    let dir = unique_dir("connect-interest");
    let rules = unique_dir("connect-interest-rules");
    let rule_file = rules.path().join("local.yaml");
    let rule = |condition: &str| {
        format!(
            "pack: local\ntechnique: {{id: T1105, name: Ingress Tool Transfer, tactic: command-and-control}}\nrules:\n  - id: local-connect\n    title: t\n    severity: low\n    description: d\n    condition: {condition}\n"
        )
    };
    std::fs::write(
        &rule_file,
        rule("evt.type = connect and connect.success = true and connect.family in (inet, inet6)"),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let path = dir.path().join("s.sock");
    let _unix = UnixListener::bind(&path).unwrap();
    let is_unix = |r: &serde_json::Value| {
        mine(r)
            && r["connect"]["unix_path"].is_string()
            && text_bytes(&r["connect"]["unix_path"]) == path.as_os_str().as_encoded_bytes()
    };
    let sensor = Sensor::start(&[
        "--hooks",
        "connect",
        "--rules",
        rules.path().to_str().unwrap(),
    ]);

    UnixStream::connect(&path).unwrap();
    assert!(TcpStream::connect(("127.0.0.1", closed_port)).is_err());
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    sensor.wait_for("connect", "the successful inet connect", |r| {
        mine(r) && r["connect"]["port"] == port
    });
    sensor.wait_metric("sensor_kernel_filtered_total{kind=\"connect\"}", 2.0);
    // The ring keeps order: both came before the connect seen above.
    let so_far = sensor.records_so_far();
    let connects = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        so_far
            .iter()
            .filter(|r| r["kind"] == "connect" && pred(r))
            .count()
    };
    assert_eq!(connects(&is_unix), 0, "a unix connect no rule matches");
    assert_eq!(
        connects(&|r| mine(r) && r["connect"]["port"] == closed_port),
        0,
        "a failed connect no rule matches"
    );
    assert!(
        sensor
            .log()
            .contains("connects captured filter=failed=none unix=none inet=all other=none"),
        "{}",
        sensor.log()
    );

    // The next set asks for unix connects.
    std::fs::write(
        &rule_file,
        rule("evt.type = connect and connect.unix_path exists"),
    )
    .unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_log("rules reloaded");
    UnixStream::connect(&path).unwrap();
    sensor.wait_for("connect", "a unix connect after the reload", is_unix);
}

#[test]
fn failed_connect_on_a_non_socket_reads_no_socket_fields() {
    // SAFETY: eventfd(2) takes no pointers; the fd (whose private_data is
    // not a struct socket) is closed once below.
    let efd = unsafe { libc::eventfd(0, 0) };
    assert!(efd >= 0);
    // SAFETY: sockaddr_in is integers only, so all-zero bytes are valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = 9u16.to_be();
    let mut sensor = Sensor::start(&["--hooks", "connect", "--capture-connects", "all"]);
    // An oversized address length fails before the socket check.
    // SAFETY: `sa` is live; the length is wrong on purpose, and the kernel
    // rejects a length above sizeof(sockaddr_storage) before reading any.
    let r = unsafe { libc::connect(efd, (&raw const sa).cast(), 4096) };
    assert_eq!(r, -1);
    let c = sensor.expect_one("connect", "connect on an eventfd", |r| {
        mine(r) && r["connect"]["fd"] == efd
    });
    assert_eq!(c["connect"]["error"], "EINVAL");
    assert!(c["connect"].get("sock_type").is_none(), "{c}");
    assert!(c["connect"].get("protocol").is_none(), "{c}");
    // SAFETY: close(2) of the eventfd made above, closed only here.
    unsafe { libc::close(efd) };
}

/// Egress counts IP bytes of what carries data: TCP over IPv6 and UDP, each
/// to its own destination, and nothing for a connection that sends none.
#[test]
fn egress_counts_data_over_v6_tcp_and_udp_not_bare_handshakes() {
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (p6, pq, pu) = (
        v6.local_addr().unwrap().port(),
        quiet.local_addr().unwrap().port(),
        udp_peer.local_addr().unwrap().port(),
    );
    let mut sensor = Sensor::start(&["--hooks", "egress", "--egress-interval", "1s"]);

    let sent = vec![7u8; 100_000];
    let mut client = TcpStream::connect(("::1", p6)).unwrap();
    let (mut server, _) = v6.accept().unwrap();
    client.write_all(&sent).unwrap();
    drop(client);
    let mut received = Vec::new();
    server.read_to_end(&mut received).unwrap();
    assert_eq!(received.len(), sent.len());

    let bare = TcpStream::connect(("127.0.0.1", pq)).unwrap();
    drop((bare, quiet.accept().unwrap()));

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = [0u8; 1024];
    for _ in 0..3 {
        udp.send_to(&[1u8; 500], ("127.0.0.1", pu)).unwrap();
        assert_eq!(udp_peer.recv(&mut buf).unwrap(), 500);
    }

    let egress = sensor.find("egress", |_| true);
    let total = |family: &str, port: u16, field: &str| -> u64 {
        egress
            .iter()
            .filter(|r| r["egress"]["family"] == family && r["egress"]["port"] == port)
            .map(|r| r["egress"][field].as_u64().unwrap())
            .sum()
    };
    assert!(
        total("inet6", p6, "bytes") >= 100_000,
        "v6 TCP data undercounted: {egress:?}"
    );
    // Three datagrams of 20 (IP) + 8 (UDP) + 500 bytes.
    assert_eq!(
        (total("inet", pu, "packets"), total("inet", pu, "bytes")),
        (3, 3 * 528),
        "{egress:?}"
    );
    assert_eq!(
        total("inet", pq, "packets"),
        0,
        "a connection without data counted as egress: {egress:?}"
    );
}
