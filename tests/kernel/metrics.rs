//! The operations endpoint of a running sensor: readiness and liveness,
//! the hooks and tiers it attached, records counted as they are written,
//! rule hits and reloads; and a port in use refused before start.
use std::{net::TcpListener, process::Command};

use sensor_tests::{Sensor, marker_rule, run_marker, sensor_bin, unique_dir};

#[test]
fn endpoint_reports_health_hooks_records_and_rule_hits() {
    let dir = unique_dir("metrics");
    let file = dir.path().join("local.yaml");
    std::fs::write(&file, marker_rule("metrics-marker", "metrics-marker-1")).unwrap();
    let sensor = Sensor::start(&[
        "--hooks",
        "exec",
        "--rules",
        dir.path().to_str().unwrap(),
        "--node-name",
        "node-7",
    ]);

    assert_eq!(sensor.http_get("/readyz"), (200, "ready\n".to_owned()));
    assert_eq!(sensor.http_get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(sensor.http_get("/nothing").0, 404);
    assert_eq!(sensor.metric("sensor_collector{collector=\"ebpf\"}"), 1.0);
    assert_eq!(sensor.metric("sensor_rules_loaded"), 1.0);
    // Every hook the log says it attached, with its tier.
    let log = sensor.log();
    let attached: Vec<(String, String)> = log
        .lines()
        .filter(|l| l.contains("hook attached") && l.contains("tracepoint="))
        .map(|l| {
            let field = |k: &str| {
                l.split(&format!("{k}="))
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_matches('"')
                    .to_owned()
            };
            (field("tracepoint"), field("tier"))
        })
        .collect();
    assert!(!attached.is_empty(), "{log}");
    for (hook, tier) in &attached {
        let series = format!("sensor_hook{{hook=\"{hook}\",tier=\"{tier}\"}}");
        assert_eq!(sensor.metric(&series), 1.0, "{series}");
    }

    for _ in 0..3 {
        run_marker("metrics-marker-1");
    }
    let hits = "sensor_rule_hits_total{rule=\"metrics-marker\",severity=\"low\"}";
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    while sensor.metric(hits) < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sensor.http_get("/metrics").1
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Counted as written: the output holds as many.
    let written = |kind: &str| {
        sensor
            .records_so_far()
            .iter()
            .filter(|r| r["kind"] == kind)
            .count() as f64
    };
    assert_eq!(written("alert"), sensor.metric(hits));
    // Every record names the node.
    let records = sensor.records_so_far();
    assert!(records.iter().all(|r| r["node"] == "node-7"), "{records:?}");
    // Attribution: the markers' cgroup and their parent (this test) were
    // known; reported each second.
    let hits = |cache: &str| {
        sensor.metric(&format!(
            "sensor_attribution_cache_total{{cache=\"{cache}\",result=\"hit\"}}"
        ))
    };
    let deadline = std::time::Instant::now() + sensor_tests::patience(10);
    while hits("cgroup") < 3.0 || hits("process") < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sensor.http_get("/metrics").1
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, text) = sensor.http_get("/metrics");
    assert!(
        text.contains("sensor_attribution_cache_total{cache=\"cgroup\",result=\"miss\"}"),
        "{text}"
    );
    let execs = sensor.metric("sensor_records_total{kind=\"exec\"}");
    assert!(execs >= 3.0 && written("exec") >= 3.0, "{execs}");

    // A refused reload is counted, and the set stays.
    std::fs::write(&file, "rules: [\n").unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_log("rule reload refused");
    assert_eq!(
        sensor.metric("sensor_rule_reloads_total{outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(sensor.metric("sensor_rules_loaded"), 1.0);
}

#[test]
fn a_taken_metrics_port_stops_the_sensor_before_it_starts() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = Command::new(sensor_bin())
        .args(["run", "--collector", "poll", "--output", "/dev/null"])
        .args(["--metrics-address", &address])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("serving metrics on {address} (--metrics-address)")),
        "{err}"
    );
    let out = Command::new(sensor_bin())
        .args(["run", "--metrics-address", "localhost"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ADDRESS:PORT"),
        "{err}"
    );
}
