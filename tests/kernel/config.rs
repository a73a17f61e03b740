//! The configuration file: errors located as file:line:col before anything
//! runs, and its settings under the flags and the environment.
use std::process::Command;

use sensor_tests::{Sensor, run_marker, sensor_bin, unique_dir};

#[test]
fn config_errors_name_file_line_and_column() {
    let dir = unique_dir("config-bad");
    let file = dir.path().join("sensor.yaml");
    std::fs::write(
        &file,
        "output: /tmp/x.jsonl\n\
         ring_bytes: 5000\n\
         hooks: [exec, bogus]\n\
         outptu: x\n\
         node_name: [a, b]\n\
         no_rules: maybe\n",
    )
    .unwrap();
    let check = Command::new(sensor_bin())
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{err}");
    let f = file.display();
    for expected in [
        format!("{f}:2:1: ring_bytes: "),
        format!("{f}:3:1: hooks: "),
        format!("{f}:4:1: unknown key 'outptu'"),
        format!("{f}:5:12: node_name: takes one value, not a list"),
        format!("{f}:6:11: no_rules: expected true or false, found 'maybe'"),
    ] {
        assert!(err.contains(&expected), "{expected:?} not in:\n{err}");
    }
    assert!(
        err.contains("power of two") && err.contains("bogus"),
        "{err}"
    );
    assert!(err.contains("5 error(s)"), "{err}");
    // `run` refuses the same file before it loads anything.
    let run = Command::new(sensor_bin())
        .args(["run", "--metrics-address", "off", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(
        err.contains(&format!("{f}:4:1: unknown key 'outptu'")),
        "{err}"
    );
    assert!(err.contains("configuration refused"), "{err}");

    // A null is no value; settings that conflict are refused together.
    let check = |text: &str| {
        let (ok, said) = config_check(&file, text);
        assert!(!ok, "{said}");
        said
    };
    let err = check("node_name: ~\n");
    assert!(
        err.contains(&format!("{f}:1:12: node_name: needs a value")),
        "{err}"
    );
    let err = check("no_rules: true\nrules: [/etc/x]\n");
    assert!(
        err.contains(&format!("{f}:1:1: ")) && err.contains("cannot be used with"),
        "{err}"
    );

    std::fs::write(&file, "node_name: n\nhooks: [exec]\n").unwrap();
    let ok = Command::new(sensor_bin())
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: 2 settings"));
}

/// The file sets what nothing else does; the environment overrides it, and
/// a flag overrides both.
#[test]
fn flags_and_environment_override_the_file() {
    let dir = unique_dir("config-run");
    let file = dir.path().join("sensor.yaml");
    std::fs::write(&file, "node_name: from-file\nhooks: [exec]\n").unwrap();
    let path = file.to_str().unwrap();
    let node_of = |sensor: &Sensor, marker: &str| {
        run_marker(marker);
        let exec = sensor.wait_for("exec", "the marker", |r| r["exec"]["args"][1] == marker);
        exec["node"].as_str().unwrap().to_owned()
    };
    let mut sensor = Sensor::start(&["--config", path]);
    assert_eq!(node_of(&sensor, "config-marker-1"), "from-file");
    // hooks: [exec] from the file: no opens.
    assert!(sensor.stop().iter().all(|r| r["kind"] != "open"));

    let sensor = Sensor::start_with(&["--config", path], |c| {
        c.env("SENSOR_NODE_NAME", "from-env");
    });
    assert_eq!(node_of(&sensor, "config-marker-2"), "from-env");
    drop(sensor);

    let sensor = Sensor::start_with(&["--config", path, "--node-name", "from-flag"], |c| {
        c.env("SENSOR_NODE_NAME", "from-env");
    });
    assert_eq!(node_of(&sensor, "config-marker-3"), "from-flag");
    drop(sensor);

    // `rules` and `no_rules` are one choice: a flag for either overrides
    // the file's.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("local.yaml"),
        sensor_tests::marker_rule("config-marker-rule", "config-marker-4"),
    )
    .unwrap();
    std::fs::write(&file, "no_rules: true\nhooks: [exec]\n").unwrap();
    let sensor = Sensor::start(&["--config", path, "--rules", rules.to_str().unwrap()]);
    run_marker("config-marker-4");
    sensor.wait_for("alert", "the flag's rules", |a| {
        a["rule"]["id"] == "config-marker-rule"
    });
}

/// `sensor config check` on `text` written to `file`: success, and what
/// it printed (stdout then stderr).
fn config_check(file: &std::path::Path, text: &str) -> (bool, String) {
    std::fs::write(file, text).unwrap();
    let out = Command::new(sensor_bin())
        .args(["config", "check"])
        .arg(file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn output_settings_are_checked_with_their_position() {
    let dir = unique_dir("config-outputs");
    let file = dir.path().join("sensor.yaml");
    let check = |text: &str| config_check(&file, text);
    let (ok, text) = check(
        "output: [/var/log/sensor/events.json, \"syslog+tcp://logs:6514\", \"https://c.example/in\"]\n\
         format: ocsf\n\
         rotate_size: 50MiB\n\
         webhook_header:\n  - \"Authorization: Bearer abc\"\n  - \"X-Tenant: blue, green\"\n\
         syslog_facility: local4\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("ok: 5 settings"), "{text}");

    let (ok, text) = check(
        "output: [\"-\", \"kafka://broker:9092\"]\n\
         format: xml\n\
         rotate_size: lots\n\
         webhook_header: [\"no colon here\"]\n\
         syslog_facility: local9\n",
    );
    assert!(!ok, "{text}");
    let f = file.display();
    for expected in [
        format!("{f}:1:1: output: "),
        format!("{f}:2:1: format: "),
        format!("{f}:3:1: rotate_size: "),
        format!("{f}:4:1: webhook_header: "),
        format!("{f}:5:1: syslog_facility: "),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    for why in [
        "unknown output",
        "expected native, ecs or ocsf",
        "100MiB",
        "NAME: VALUE",
        "local0",
    ] {
        assert!(text.contains(why), "{why:?} not in:\n{text}");
    }
    assert!(text.contains("5 error(s)"), "{text}");
}
