//! Outputs against real receivers: a webhook server that is down, fails,
//! and is slow (the sensor retries, bounds its queue, counts what it drops,
//! and loses nothing while the queue has room); rsyslog over TCP and UDP;
//! file rotation with a retention cap; the ECS and OCSF encodings.
use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sensor_tests::{Sensor, patience, run_marker, unique_dir, validate_format};
use serde_json::Value;

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the test server answers a request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Answers 200 only after this long (past the sensor's timeout).
    Slow(Duration),
}

/// A webhook receiver: answers from a script (then 200), keeps the records
/// of every batch it answered 200 to, and the headers it saw.
struct Receiver {
    accepted: Arc<Mutex<Vec<Value>>>,
    headers: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, script: &[Reply]) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let thread = {
            let (accepted, headers, requests, stop) = (
                accepted.clone(),
                headers.clone(),
                requests.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let (accepted, headers, requests, script) = (
                                accepted.clone(),
                                headers.clone(),
                                requests.clone(),
                                script.clone(),
                            );
                            // One thread per connection: a slow reply must
                            // not hold up the next attempt.
                            std::thread::spawn(move || {
                                serve(stream, &accepted, &headers, &requests, &script)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            accepted,
            headers,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    accepted: &Mutex<Vec<Value>>,
    headers: &Mutex<Vec<String>>,
    requests: &Mutex<u32>,
    script: &Mutex<VecDeque<Reply>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            headers.lock().unwrap().push(line);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *requests.lock().unwrap() += 1;
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Status(200));
        let status = match reply {
            Reply::Status(s) => s,
            Reply::Slow(d) => {
                std::thread::sleep(d);
                // The sensor gave up waiting: this batch was not delivered.
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                return;
            }
        };
        if status == 200 {
            let batch: Value = serde_json::from_slice(&body).expect("a JSON batch");
            let batch = batch.as_array().expect("a JSON array").clone();
            accepted.lock().unwrap().extend(batch);
        }
        let reason = if status == 200 { "OK" } else { "Error" };
        let reply = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let patience = patience(secs);
    let deadline = Instant::now() + patience;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not after {patience:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records as the sensor wrote them to its file, to compare with what a
/// receiver got: the same encoding, so equal values.
fn sorted(mut records: Vec<Value>) -> Vec<String> {
    let mut text: Vec<String> = records.drain(..).map(|r| r.to_string()).collect();
    text.sort();
    text
}

/// A sensor seeing execs, writing to `url` as well as its own file.
fn webhook_sensor(url: &str, extra: &[&str]) -> Sensor {
    let common = ["--hooks", "exec", "--no-rules", "--output", url];
    Sensor::start(&[&common[..], extra].concat())
}

/// A webhook output's series `name` (`queue_depth`, `delivered_total`, or
/// `dropped_total` with `reason`).
fn webhook_series(name: &str, url: &str, reason: Option<&str>) -> String {
    let destination = url.split('?').next().unwrap();
    let reason = reason
        .map(|r| format!(",reason=\"{r}\""))
        .unwrap_or_default();
    format!("sensor_output_{name}{{output=\"webhook\",destination=\"{destination}\"{reason}}}")
}

/// Delivered and dropped, from the log line each network output writes
/// when the sensor stops.
fn closing_account(sensor: &Sensor) -> (u64, u64) {
    let log = sensor.log();
    let closed = log
        .lines()
        .find(|l| l.contains("output closed"))
        .unwrap_or_else(|| panic!("no closing account:\n{log}"));
    let field = |k: &str| -> u64 {
        closed
            .split(&format!("{k}="))
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {closed}"))
    };
    (field("delivered"), field("dropped"))
}

#[test]
fn webhook_retries_through_down_failing_and_slow_receivers_and_loses_nothing() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest?token=secret");
    let mut sensor = webhook_sensor(
        &url,
        &[
            "--webhook-header",
            "Authorization: Bearer t0k",
            "--batch-wait",
            "100ms",
            "--output-timeout",
            "1s",
            "--output-drain",
            "30s",
            // Other tests' processes are seen too; none is to be dropped.
            "--queue-size",
            "1000000",
        ],
    );
    let series = |name: &str| webhook_series(name, &url, None);
    // Down: nothing listens.
    run_marker("webhook-while-down");
    wait_until("retries while the receiver is down", 20, || {
        sensor.metric(&series("failures_total")) >= 2.0
    });
    assert!(sensor.metric(&series("queue_depth")) >= 1.0);
    // Up, but failing twice, then too slow once, then well.
    let receiver = Receiver::start(
        port,
        &[
            Reply::Status(500),
            Reply::Status(503),
            Reply::Slow(Duration::from_secs(3)),
        ],
    );
    run_marker("webhook-after-recovery");
    wait_until("the queue empties once the receiver recovers", 60, || {
        sensor.metric(&series("queue_depth")) == 0.0
            && sensor.metric(&series("delivered_total")) > 0.0
    });
    let failures = sensor.metric(&series("failures_total"));
    assert!(failures >= 5.0, "down twice, 500, 503, timeout: {failures}");
    sensor.wait_log("delivery recovered");
    let metrics = sensor.http_get("/metrics").1;
    assert!(
        !metrics.contains("sensor_output_dropped_total{"),
        "{metrics}"
    );
    let written = sensor.stop().to_vec();
    // Every record, once each (no batch was accepted twice), in order.
    assert_eq!(sorted(receiver.accepted()), sorted(written.clone()));
    let markers = |records: &[Value]| {
        records
            .iter()
            .filter(|r| r["kind"] == "exec" && r["exec"]["args"].to_string().contains("webhook-"))
            .count()
    };
    assert_eq!(
        markers(&receiver.accepted()),
        2,
        "{:?}",
        receiver.accepted()
    );
    let headers = receiver.headers.lock().unwrap().clone();
    // Header names are case-insensitive; the client sends them lower case.
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("authorization: Bearer t0k")),
        "{headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: application/json"))
    );
    assert!(*receiver.requests.lock().unwrap() >= 4);
    // The token in the URL never reaches the log.
    assert!(!sensor.log().contains("secret"), "{}", sensor.log());
}

#[test]
fn webhook_queue_is_bounded_and_every_drop_is_counted() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut sensor = webhook_sensor(
        &url,
        &[
            "--queue-size",
            "20",
            "--batch-size",
            "5",
            "--batch-wait",
            "50ms",
            "--output-drain",
            "30s",
        ],
    );
    let series = |name: &str| webhook_series(name, &url, None);
    assert_eq!(sensor.metric(&series("queue_capacity")), 20.0);
    // Far more than fit: each run is an exec, fork and exit at least.
    for n in 0..60 {
        run_marker(&format!("bounded-{n}"));
    }
    let dropped = webhook_series("dropped_total", &url, Some("queue_full"));
    wait_until("drops once the queue is full", 20, || {
        sensor.metric(&dropped) > 0.0
    });
    let depth = sensor.metric(&series("queue_depth"));
    assert!(depth <= 25.0, "queue (20) plus one batch (5): {depth}");

    let receiver = Receiver::start(port, &[]);
    wait_until("the queue drains", 30, || {
        sensor.metric(&series("queue_depth")) == 0.0
    });
    let written = sensor.stop().len() as u64;
    // The closing account: every record written was delivered or counted.
    let (delivered, dropped) = closing_account(&sensor);
    assert!(dropped > 0);
    assert_eq!(delivered + dropped, written);
    assert_eq!(receiver.accepted().len() as u64, delivered);
}

/// rsyslogd in the foreground, listening on loopback TCP and UDP, writing
/// each message's header fields and body to a file.
struct Rsyslog {
    child: Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start(tcp: u16, udp: u16) -> Self {
        let dir = unique_dir("rsyslog");
        let out = dir.path().join("received.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="fields" type="string" string="%inputname%|%pri%|%hostname%|%app-name%|%msgid%|%timereported:::date-rfc3339%|%msg%\n")
if $app-name == "runtime-sensor" then {{
  action(type="omfile" file="{out}" template="fields")
}}
"#,
                dir = dir.path().display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian package rsyslog; ./x test installs it)");
        // Listening once a TCP connection is taken.
        wait_until("rsyslogd listening", 20, || {
            TcpStream::connect(("127.0.0.1", tcp)).is_ok()
        });
        Self {
            child,
            out,
            _dir: dir,
        }
    }

    fn received(&self) -> Vec<(String, String, String, String, String, Value)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(7, '|').collect();
                let json = serde_json::from_str(f.get(6)?.trim()).ok()?;
                Some((
                    f[0].into(),
                    f[1].into(),
                    f[2].into(),
                    f[4].into(),
                    f[5].into(),
                    json,
                ))
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn syslog_reaches_rsyslog_over_tcp_and_udp_as_rfc5424() {
    let (tcp, udp) = (free_port(), free_port());
    let rsyslog = Rsyslog::start(tcp, udp);
    let mut sensor = Sensor::start(&[
        "--hooks",
        "exec",
        "--no-rules",
        "--node-name",
        "node-9",
        "--output",
        &format!("syslog+tcp://127.0.0.1:{tcp}"),
        "--output",
        &format!("syslog+udp://127.0.0.1:{udp}"),
        "--syslog-facility",
        "local3",
        "--batch-wait",
        "50ms",
    ]);
    // A long argument (the kernel copies 4 KiB of argv): past the 2 KiB
    // many receivers assume, in one message either way.
    let long = format!("syslog-marker-{}", "x".repeat(3000));
    run_marker(&long);
    let is_marker = |v: &Value| v["kind"] == "exec" && v["exec"]["args"][1] == long.as_str();
    wait_until("the marker over both transports", 20, || {
        let got = rsyslog.received();
        ["imtcp", "imudp"]
            .iter()
            .all(|input| got.iter().any(|(i, .., v)| i == input && is_marker(v)))
    });
    let written = sensor.stop().to_vec();
    let mine = written
        .iter()
        .find(|r| is_marker(r))
        .expect("in the file too");
    for (input, pri, host, msgid, time, json) in rsyslog.received() {
        if !is_marker(&json) {
            continue;
        }
        assert_eq!(&json, mine, "{input}: the same record");
        // local3 (19) * 8 + informational (6).
        assert_eq!(pri, "158", "{input}");
        assert_eq!(host, "node-9", "{input}");
        assert_eq!(msgid, "exec", "{input}");
        // The header's time is the record's, to the microsecond.
        let record_time = mine["time"].as_str().unwrap();
        assert_eq!(
            &time[..26],
            &record_time[..26],
            "{input}: {time} vs {record_time}"
        );
    }
}

#[test]
fn files_rotate_by_size_and_keep_a_bounded_number() {
    let dir = unique_dir("rotate");
    let file = dir.path().join("events.json");
    let mut sensor = Sensor::start(&[
        "--hooks",
        "exec",
        "--no-rules",
        "--output",
        file.to_str().unwrap(),
        "--rotate-size",
        "16KiB",
        "--rotate-keep",
        "2",
    ]);
    for n in 0..150 {
        run_marker(&format!("rotate-{n}"));
    }
    // A fork, an exec and an exit each, at least. (The harness's own file
    // rotates too, so the count comes from the sensor.)
    let written = || -> f64 {
        let (_, metrics) = sensor.http_get("/metrics");
        metrics
            .lines()
            .filter(|l| l.starts_with("sensor_records_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    wait_until("every marker written", 20, || written() >= 450.0);
    let written = written();
    sensor.stop();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["events.json", "events.json.1", "events.json.2"]);
    let mut kept = Vec::new();
    for name in names.iter().rev() {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        // Other tests' records land here too; one larger than the limit
        // (a huge argv) goes alone into a file, never split.
        assert!(
            text.len() <= 16 << 10 || text.lines().count() == 1,
            "{name}: {} bytes in {} records",
            text.len(),
            text.lines().count()
        );
        for line in text.lines() {
            kept.push(
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {line}")),
            );
        }
    }
    // The newest records kept, the oldest files deleted.
    assert!(
        (kept.len() as f64) < written,
        "{} of {written} kept",
        kept.len()
    );
    let first = kept
        .iter()
        .any(|r| r["kind"] == "exec" && r["exec"]["args"][1] == "rotate-0");
    assert!(!first, "the oldest records went with the oldest file");
}

/// A tmpfs of `size`, mounted for one test.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = unique_dir("tmpfs");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs");
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Every line of `path` parses and ends with a newline; returns them.
fn whole_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "torn last line in {}",
        path.display()
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn has_marker(records: &[Value], marker: &str) -> bool {
    records
        .iter()
        .any(|r| r["kind"] == "exec" && r["exec"]["args"][1] == marker)
}

#[test]
fn a_full_disk_pauses_the_file_output_counts_drops_and_resumes_with_whole_lines() {
    let fs = Tmpfs::mount("256k");
    let file = fs.0.path().join("events.json");
    // Fill the disk, then leave 8 KiB: a few records fit, the next is cut
    // short by ENOSPC.
    let filler = fs.0.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let full = f.metadata().unwrap().len();
    f.set_len(full - 8192).unwrap();
    drop(f);

    let mut sensor = Sensor::start(&[
        "--hooks",
        "exec",
        "--no-rules",
        "--output",
        file.to_str().unwrap(),
    ]);
    for n in 0..100 {
        run_marker(&format!("disk-full-{n}"));
    }
    // Counted in loss records (the harness's own file has room) and
    // metrics; the sensor runs on.
    sensor.wait_for("loss", "disk_full in a loss record", |r| {
        r["loss"]["output_dropped"]["disk_full"].as_u64() > Some(0)
    });
    let series = format!(
        "sensor_output_dropped_total{{output=\"file\",destination=\"{}\",reason=\"disk_full\"}}",
        file.display()
    );
    assert!(sensor.metric(&series) > 0.0, "{series}");
    let before = whole_lines(&file);
    assert!(!before.is_empty(), "the first records fit");

    // Space returns: the output resumes.
    std::fs::remove_file(&filler).unwrap();
    wait_until("writing resumed", 20, || {
        run_marker("disk-back");
        has_marker(&whole_lines(&file), "disk-back")
    });
    sensor.wait_log("resumed");
    sensor.stop();
    whole_lines(&file);
}

#[test]
fn a_restart_after_a_torn_record_starts_a_new_line_and_counts_it() {
    let dir = unique_dir("torn");
    let file = dir.path().join("events.json");
    std::fs::write(&file, "{\"whole\":1}\n{\"schema\":1,\"ti").unwrap();
    let mut sensor = Sensor::start(&[
        "--hooks",
        "exec",
        "--no-rules",
        "--output",
        file.to_str().unwrap(),
    ]);
    sensor.wait_for("loss", "the torn tail counted", |r| {
        r["loss"]["output_dropped"]["torn_tail"] == 1
    });
    run_marker("after-torn");
    sensor.wait_for("exec", "the marker", |r| {
        r["exec"]["args"][1] == "after-torn"
    });
    sensor.stop();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("{\"whole\":1}"));
    assert_eq!(lines.next(), Some("{\"schema\":1,\"ti"));
    let rest: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(has_marker(&rest, "after-torn"));
}

#[test]
fn a_closed_stdout_is_counted_and_the_sensor_runs_on() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let sensor = Sensor::start_with(&["--hooks", "exec", "--no-rules", "--output", "-"], |c| {
        c.stdout(writer);
    });
    run_marker("stdout-closed");
    sensor.wait_for("loss", "output_closed in a loss record", |r| {
        r["loss"]["output_dropped"]["output_closed"].as_u64() > Some(0)
    });
    run_marker("still-running");
    sensor.wait_for("exec", "an exec after stdout closed", |r| {
        r["exec"]["args"][1] == "still-running"
    });
}

/// Live records in both encodings: a launch reads as it should, and every
/// record of the stream (execs, an inet and a unix connect, whatever else
/// the machine did meanwhile) validates against OCSF 1.4.0 and ECS 8.17
/// (tests/validate/formats.py).
#[test]
fn ocsf_and_ecs_encode_the_live_stream() {
    let hooks = ["--hooks", "exec,connect", "--no-rules"];
    let mut ocsf = Sensor::start(&[&hooks[..], &["--format", "ocsf"]].concat());
    let mut ecs = Sensor::start(&[&hooks[..], &["--format", "ecs"]].concat());
    run_marker("format-marker");
    let refused = free_port();
    assert!(TcpStream::connect(("127.0.0.1", refused)).is_err());
    let dir = unique_dir("formats");
    let socket = dir.path().join("s");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let me = std::process::id();
    let ocsf = ocsf.stop();
    let launch = ocsf
        .iter()
        .find(|e| e["class_uid"] == 1007 && e["process"]["cmd_line"] == "/bin/true format-marker")
        .cloned()
        .expect("an OCSF process launch");
    assert_eq!(launch["activity_id"], 1);
    assert_eq!(launch["type_uid"], 100701);
    assert_eq!(launch["process"]["file"]["path"], "/usr/bin/true");
    assert_eq!(launch["actor"]["process"]["pid"], me);
    assert_eq!(launch["metadata"]["version"], "1.4.0");
    let unix = ocsf
        .iter()
        .find(|e| e["class_uid"] == 4001 && e["unmapped"]["unix_path"] == socket.to_str().unwrap())
        .expect("an OCSF unix connect");
    assert!(unix.get("dst_endpoint").is_none(), "{unix}");
    assert!(
        ocsf.iter()
            .any(|e| e["activity_id"] == 5 && e["dst_endpoint"]["port"] == refused),
        "an OCSF refused connect"
    );
    let ecs = ecs.stop();
    let start = ecs
        .iter()
        .find(|d| d["event"]["action"] == "exec" && d["process"]["args"][1] == "format-marker")
        .cloned()
        .expect("an ECS process start");
    assert_eq!(start["event"]["category"][0], "process");
    assert_eq!(start["process"]["parent"]["pid"], me);
    assert_eq!(start["process"]["executable"], "/usr/bin/true");
    assert!(start["@timestamp"].as_str().unwrap().ends_with('Z'));
    for (format, documents) in [("ocsf", &ocsf), ("ecs", &ecs)] {
        if let Some(report) = validate_format(format, documents) {
            eprintln!("{report}");
        }
    }
}

/// A CA and a certificate it signed for 127.0.0.1, made with openssl.
fn certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=sensor test CA",
        "-days",
        "1",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
}

/// An HTTPS receiver (Python's http.server behind ssl) appending each body
/// it is posted, one per line, to `bodies`.
fn https_receiver(dir: &std::path::Path, port: u16) -> Child {
    let script = r#"
import http.server, ssl, sys
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .arg(dir.join("bodies"))
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    wait_until("the HTTPS receiver listening", 20, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

#[test]
fn webhook_over_https_verifies_the_receiver_against_the_given_ca() {
    let dir = unique_dir("https");
    certificates(dir.path());
    let port = free_port();
    let mut receiver = https_receiver(dir.path(), port);
    let url = format!("https://127.0.0.1:{port}/");
    let ca = dir.path().join("ca.pem");
    let common = [
        "--hooks",
        "exec",
        "--no-rules",
        "--batch-wait",
        "50ms",
        "--output",
        &url,
    ];
    let mut trusting =
        Sensor::start(&[&common[..], &["--webhook-ca", ca.to_str().unwrap()]].concat());
    // Without the CA the built-in public roots cannot vouch for it.
    let doubting = Sensor::start(&common);
    run_marker("https-marker");
    let bodies = dir.path().join("bodies");
    wait_until("the marker posted over TLS", 20, || {
        std::fs::read_to_string(&bodies).is_ok_and(|t| t.contains("https-marker"))
    });
    let failures = webhook_series("failures_total", &url, None);
    wait_until("the unverified receiver refused", 20, || {
        doubting.metric(&failures) >= 1.0
    });
    assert!(
        doubting.log().contains("UnknownIssuer") || doubting.log().contains("certificate"),
        "{}",
        doubting.log()
    );
    let delivered = failures.replace("failures_total", "delivered_total");
    assert_eq!(doubting.metric(&delivered), 0.0);
    assert_eq!(trusting.metric(&failures), 0.0);
    trusting.stop();
    let _ = receiver.kill();
    let _ = receiver.wait();
    // Each body is a JSON array of records.
    for line in std::fs::read_to_string(&bodies).unwrap().lines() {
        let batch: Value = serde_json::from_str(line).unwrap();
        assert!(batch.as_array().is_some_and(|b| !b.is_empty()));
    }
}

#[test]
fn webhook_batches_the_receiver_refuses_are_dropped_and_counted_not_retried() {
    let port = free_port();
    let receiver = Receiver::start(port, &[Reply::Status(400)]);
    let url = format!("http://127.0.0.1:{port}/");
    let mut sensor = webhook_sensor(&url, &["--batch-wait", "50ms"]);
    let rejected = webhook_series("dropped_total", &url, Some("rejected"));
    run_marker("refused-1");
    wait_until("the refused batch counted", 20, || {
        sensor.metric(&rejected) >= 1.0
    });
    run_marker("refused-2");
    sensor.wait_log("batch refused by the receiver");
    let written = sensor.stop().len() as u64;
    let accepted = receiver.accepted();
    assert!(accepted.iter().any(|r| r["exec"]["args"][1] == "refused-2"));
    // Refused once, never sent again: what the receiver took and what was
    // refused add up to what was written.
    let (delivered, dropped) = closing_account(&sensor);
    assert!(dropped >= 1);
    assert_eq!(accepted.len() as u64, delivered);
    assert_eq!(delivered + dropped, written);
}
