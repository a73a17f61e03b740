use std::fs;

use sensor_tests::{Sensor, unique_dir};

/// A ring too small for a burst must report what it dropped: a loss record
/// with per-kind and per-CPU counts, and received + lost = generated.
#[test]
fn ring_overflow_is_counted_and_reported() {
    let dir = unique_dir("loss");
    let file = dir.path().join("burst");
    fs::write(&file, b"x").unwrap();
    let mut sensor = Sensor::start(&[
        "--hooks",
        "open",
        "--capture-opens",
        "all",
        "--ring-bytes",
        "4096",
    ]);
    const OPENS: u64 = 20_000;
    for _ in 0..OPENS {
        drop(fs::File::open(&file).unwrap());
    }
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
