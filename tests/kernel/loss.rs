use std::fs;

use sensor_tests::{Sensor, unique_dir};

/// A sensor capturing every open, with one more setting, then `opens`
/// read-opens of one file by this process as fast as it can: the file's
/// directory, the file, the sensor, and how long the opens took.
fn open_flood(
    option: &str,
    value: &str,
    opens: u64,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Sensor,
    std::time::Duration,
) {
    let dir = unique_dir("flood");
    let file = dir.path().join("flood");
    fs::write(&file, b"x").unwrap();
    let sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all", option, value]);
    let started = std::time::Instant::now();
    for _ in 0..opens {
        drop(fs::File::open(&file).unwrap());
    }
    (dir, file, sensor, started.elapsed())
}

/// A ring too small for a burst must report what it dropped: a loss record
/// with per-kind and per-CPU counts, and received + lost = generated.
#[test]
fn ring_overflow_is_counted_and_reported() {
    const OPENS: u64 = 20_000;
    let (_dir, _, mut sensor, _) = open_flood("--ring-bytes", "4096", OPENS);
    // The metrics count the same drops as the loss records, once the
    // reports have caught up with the burst.
    sensor.wait_for("loss", "the burst", |_| true);
    let reported = |records: &[serde_json::Value]| -> u64 {
        records
            .iter()
            .filter(|r| r["kind"] == "loss")
            .filter_map(|l| l["loss"]["ring_full"].as_object())
            .flat_map(|m| m.values().map(|v| v.as_u64().unwrap()))
            .sum()
    };
    let counted = || -> u64 {
        let (_, body) = sensor.http_get("/metrics");
        body.lines()
            .filter(|l| l.starts_with("sensor_events_lost_total{reason=\"ring_full\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    loop {
        let (m, r) = (counted(), reported(&sensor.records_so_far()));
        if m == r && m > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics count {m} ring-full drops, loss records {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let me = std::process::id();
    let received = sensor.find("open", |r| r["process"]["pid"] == me).len() as u64;
    let losses = sensor.find("loss", |_| true);
    assert!(
        !losses.is_empty(),
        "a 4 KiB ring cannot hold {OPENS} opens, yet no loss was reported"
    );
    let lost_open: u64 = losses
        .iter()
        .map(|l| l["loss"]["ring_full"]["open"].as_u64().unwrap_or(0))
        .sum();
    let by_cpu: u64 = losses
        .iter()
        .flat_map(|l| {
            l["loss"]["ring_full_by_cpu"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(lost_open > 0);
    assert!(by_cpu >= lost_open);
    // Other processes' opens share the ring, so ours are a lower bound.
    assert!(
        received + lost_open >= OPENS,
        "received {received} + lost {lost_open} < generated {OPENS}"
    );
}

/// One process flooding opens gets its allowance per second; the rest are
/// counted under its pid in loss records and metrics, not sent, so they do
/// not overflow a ring the unlimited flood overflows, and another
/// process's opens still arrive.
#[test]
fn a_flooding_process_is_rate_limited_and_counted() {
    const LIMIT: u64 = 200;
    const OPENS: u64 = 20_000;
    let dir = unique_dir("ratelimit");
    let file = dir.path().join("flood");
    fs::write(&file, b"x").unwrap();
    let mut sensor = Sensor::start(&[
        "--hooks",
        "open",
        "--capture-opens",
        "all",
        "--ring-bytes",
        "262144",
        "--rate-limit",
        &LIMIT.to_string(),
    ]);
    // A shell of its own (one thread, its own pid, so the per-pid count is
    // exact): `: < FILE` opens the file without forking.
    let started = std::time::Instant::now();
    let mut shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "i=0; while [ $i -lt {OPENS} ]; do : < \"$0\"; i=$((i + 1)); done"
        ))
        .arg(&file)
        .spawn()
        .unwrap();
    let flooder = shell.id();
    assert!(shell.wait().unwrap().success());
    let windows = started.elapsed().as_secs() + 2;
    let other = dir.path().join("other");
    fs::write(&other, b"y").unwrap();
    let cat = std::process::Command::new("cat")
        .arg(&other)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(cat.success());
    let other_path = other.to_str().unwrap().to_owned();
    sensor.wait_for("open", "cat's open after the flood", |r| {
        r["open"]["path"] == other_path.as_str() && r["process"]["comm"] == "cat"
    });
    let flood_path = file.to_str().unwrap().to_owned();
    let received = |records: &[serde_json::Value]| -> u64 {
        records
            .iter()
            .filter(|r| r["kind"] == "open" && r["process"]["pid"] == flooder)
            .filter(|r| r["open"]["path"] == flood_path.as_str())
            .count() as u64
    };
    let limited = |records: &[serde_json::Value]| -> u64 {
        records
            .iter()
            .filter(|r| r["kind"] == "loss")
            .filter_map(|l| l["loss"]["rate_limited_by_pid"][flooder.to_string()].as_u64())
            .sum()
    };
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    loop {
        let records = sensor.records_so_far();
        let (r, l) = (received(&records), limited(&records));
        if r + l >= OPENS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "received {r} + limited {l} < generated {OPENS}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let metric =
        sensor.metric("sensor_events_lost_total{reason=\"rate_limited\",kind=\"open\"}") as u64;
    let records = sensor.stop().to_vec();
    let (received, limited) = (received(&records), limited(&records));
    assert_eq!(
        received + limited,
        OPENS,
        "sent {received} + limited {limited}"
    );
    assert!(received > 0, "the allowance itself is sent");
    assert!(
        received <= LIMIT * windows,
        "{received} opens sent in at most {windows} one-second windows of {LIMIT}"
    );
    let total = |reason: &str| -> u64 {
        records
            .iter()
            .filter(|r| r["kind"] == "loss")
            .filter_map(|l| l["loss"][reason]["open"].as_u64())
            .sum()
    };
    assert!(total("rate_limited") >= limited, "per kind below per pid");
    assert!(metric >= limited, "metric {metric} below {limited}");
    assert_eq!(total("ring_full"), 0, "limited, the flood fits the ring");

    // One rate_limited record per window in which the shell went over,
    // attributed to it, and the built-in rule's alert on it.
    let notices: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["kind"] == "rate_limited" && r["process"]["pid"] == flooder)
        .collect();
    assert!(
        !notices.is_empty() && notices.len() as u64 <= windows,
        "{} rate_limited records for {windows} windows",
        notices.len()
    );
    let mut starts = std::collections::BTreeSet::new();
    for n in &notices {
        let d = &n["rate_limited"];
        assert_eq!(
            (d["suppressed"].as_str(), d["limit"].as_u64()),
            (Some("open"), Some(LIMIT)),
            "{n}"
        );
        let (start, at) = (
            d["window_start_ns"].as_u64().unwrap(),
            n["boot_ns"].as_u64().unwrap(),
        );
        assert!(
            start <= at && at - start < 1_000_000_000,
            "outside its window: {n}"
        );
        assert!(starts.insert(start), "two records for one window: {n}");
    }
    // The shell is one thread: in each window it went over, exactly the
    // allowance was sent first (its loader's opens included).
    let sent = records
        .iter()
        .filter(|r| r["kind"] == "open" && r["process"]["pid"] == flooder)
        .count() as u64;
    assert!(
        sent >= LIMIT * notices.len() as u64,
        "{sent} opens sent, {} windows over the limit",
        notices.len()
    );
    let alerts = records
        .iter()
        .filter(|r| r["kind"] == "alert" && r["rule"]["id"] == "T1562.006-rate-limit-flood")
        .filter(|a| a["process"]["pid"] == flooder)
        .filter(|a| a["fields"]["rate_limited.suppressed"] == "open")
        .count();
    assert_eq!(alerts, notices.len(), "one alert per rate_limited record");
}
