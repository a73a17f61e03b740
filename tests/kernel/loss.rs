use std::fs;

use sensor_tests::{Sensor, unique_dir};

/// A ring too small for a burst must report what it dropped: a loss record
/// with per-kind and per-CPU counts, and received + lost = generated.
#[test]
fn ring_overflow_is_counted_and_reported() {
    let dir = unique_dir("loss");
    let file = dir.path().join("burst");
    fs::write(&file, b"x").unwrap();
    let mut sensor = Sensor::start(&["--hooks", "open", "--ring-bytes", "4096"]);
    const OPENS: u64 = 20_000;
    for _ in 0..OPENS {
        drop(fs::File::open(&file).unwrap());
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
