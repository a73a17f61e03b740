//! Offline detection through the binary: `sensor replay` over recorded
//! events (the seeds' Windows and macOS steps as the fallback collector
//! records them), `sensor rules check` on broken rule files, and the OCSF
//! and ECS encodings of recorded events checked by independent validators.
//! No root.
use std::{collections::BTreeSet, path::Path, process::Command};

use sensor::event::Kind;
use sensor_tests::{format_verdict, sensor_bin, validate_format};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/replay")
        .join(name)
        .display()
        .to_string()
}

/// Records of every kind, in and out of containers, that the replay
/// fixtures lack (unix and other-family connects, egress, lifecycle, loss).
fn formats_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/formats/records.jsonl")
        .display()
        .to_string()
}

/// (pid, rule id) of every alert `sensor replay` prints.
fn replay(args: &[&str]) -> (BTreeSet<(u64, String)>, String) {
    let out = Command::new(sensor_bin())
        .arg("replay")
        .args(args)
        .output()
        .expect("run sensor replay");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "replay failed: {stderr}");
    let alerts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON alert per line"))
        .map(|a| {
            assert_eq!(a["kind"], "alert");
            let pid = a["process"]["pid"].as_u64().unwrap();
            (pid, a["rule"]["id"].as_str().unwrap().to_owned())
        })
        .collect();
    (alerts, stderr)
}

fn set(items: &[(u64, &str)]) -> BTreeSet<(u64, String)> {
    items.iter().map(|(p, r)| (*p, (*r).to_owned())).collect()
}

#[test]
fn windows_validation_steps_alert_and_benign_work_does_not() {
    let (alerts, _) = replay(&[&fixture("windows.jsonl")]);
    assert_eq!(
        alerts,
        set(&[
            (5001, "T1074.001-container-run-script-from-host-mount"),
            (5002, "T1560-powershell-compress-archive"),
            (5003, "T1074.001-container-run-script-from-host-mount"),
            (5003, "T1560-powershell-compress-archive"),
            (5004, "T1560-powershell-compress-archive"),
            (5005, "T1105-windows-download-cradle"),
            (5006, "T1105-windows-download-cradle"),
            (5007, "T1105-windows-download-cradle"),
            (5008, "T1105-windows-download-cradle"),
        ])
    );
}

#[test]
fn macos_validation_steps_alert_and_benign_work_does_not() {
    let (alerts, _) = replay(&[&fixture("macos.jsonl")]);
    assert_eq!(
        alerts,
        set(&[
            (801, "T1560-archive-of-sensitive-data"),
            (802, "T1560-archive-of-sensitive-data"),
            (802, "T1114-mailbox-archived"),
            (804, "T1105-pipe-to-shell"),
            (806, "T1048.001-encrypted-file-upload"),
            (806, "T1048.001-encrypt-then-egress"),
        ])
    );
}

#[test]
fn linux_command_line_variants_alert_and_benign_ones_do_not() {
    let (alerts, _) = replay(&[&fixture("linux-variants.jsonl")]);
    assert_eq!(
        alerts,
        set(&[
            (11, "T1048.001-symmetric-encryption-in-container"),
            (12, "T1560-archive-in-container"),
            (12, "T1048.001-symmetric-encryption-in-container"),
            (13, "T1560-archive-in-container"),
            (13, "T1048.001-symmetric-encryption-in-container"),
            (14, "T1048.001-symmetric-encryption-in-container"),
            (15, "T1560-archive-in-container"),
            (16, "T1560-archive-in-container"),
            (16, "T1560-archive-of-sensitive-data"),
            (17, "T1105-remote-copy-in-container"),
            (18, "T1105-download-in-container"),
            (19, "T1114-mailbox-read"),
            (20, "T1114-mailbox-read"),
        ])
    );
}

#[test]
fn malformed_lines_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("windows.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        format!("{{\"schema\":1,\"kind\":\"exec\"\nnot json at all\n\n{first}\n"),
    )
    .unwrap();
    let (alerts, stderr) = replay(&[file.to_str().unwrap()]);
    assert_eq!(
        alerts,
        set(&[(5001, "T1074.001-container-run-script-from-host-mount")])
    );
    assert!(
        stderr.contains("line=1") && stderr.contains("line=2"),
        "{stderr}"
    );
    assert!(stderr.contains("malformed=2"), "{stderr}");
}

#[test]
fn replay_with_a_rules_directory_and_without_rules() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let (alerts, _) = replay(&["--rules", rules.to_str().unwrap(), &fixture("macos.jsonl")]);
    assert_eq!(alerts.len(), 6);
    let (none, _) = replay(&["--no-rules", &fixture("macos.jsonl")]);
    assert!(none.is_empty());
}

/// `sensor rules check` on one file: (exit success, stdout, stderr).
fn check(name: &str, yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(sensor_bin())
        .current_dir(dir.path())
        .args(["rules", "check", name])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEAD: &str = "pack: p\ntechnique: {id: T1, name: n, tactic: t}\nrules:\n";

#[test]
fn rule_errors_name_file_line_and_column() {
    let rule = |body: &str| {
        format!("{HEAD}  - id: r\n    title: t\n    severity: low\n    description: d\n{body}")
    };
    let cases: &[(&str, String, &str)] = &[
        (
            "yaml.yaml",
            "pack: [p\n".into(),
            "yaml.yaml:2:1: YAML syntax",
        ),
        (
            "key.yaml",
            rule("    condition: evt.type = exec\n    sevrity: high\n"),
            "key.yaml:9:5: unknown key 'sevrity' in a rule",
        ),
        (
            "regex.yaml",
            rule("    condition: evt.type = exec and proc.cmdline regex 'a(b'\n"),
            "regex.yaml:8:55: bad regex 'a(b'",
        ),
        (
            "field.yaml",
            rule("    condition: evt.type = exec and proc.nmae = tar\n"),
            "field.yaml:8:36: unknown field 'proc.nmae' (did you mean proc.name?)",
        ),
        (
            "type.yaml",
            rule("    condition: evt.type = connect and connect.port = https\n"),
            "type.yaml:8:54: connect.port is a number; 'https' is not",
        ),
        (
            "op.yaml",
            rule("    condition: evt.type = connect and connect.port startswith 44\n"),
            "op.yaml:8:52: operator startswith does not apply to connect.port (a number)",
        ),
        (
            "syntax.yaml",
            rule("    condition: evt.type = exec and (proc.name = tar\n"),
            "syntax.yaml:8:52: expected ')'",
        ),
        (
            "macro.yaml",
            format!(
                "macros:\n  m: proc.name = tar and open.path glob '[a'\n{}",
                rule("    condition: m\n")
            ),
            "macro.yaml:2:41: bad glob '[a'",
        ),
        (
            "kind.yaml",
            rule("    condition: evt.type = execve\n"),
            "kind.yaml:8:27: unknown evt.type 'execve'",
        ),
        // Once a stack overflow (exit 134), from ~7,500 levels.
        (
            "deep.yaml",
            rule(&format!(
                "    condition: '{}proc.name = x{}'\n",
                "(".repeat(10_000),
                ")".repeat(10_000)
            )),
            "deep.yaml:8:81: 'not' and parentheses nest deeper than 64 levels",
        ),
        (
            "nots.yaml",
            rule(&format!(
                "    condition: {}proc.name = x\n",
                "not ".repeat(30_000)
            )),
            "nots.yaml:8:272: 'not' and parentheses nest deeper than 64 levels",
        ),
        // Detection off by accident: refused, not loaded as 0 rules.
        (
            "empty.yaml",
            String::new(),
            "empty.yaml: no rules are defined",
        ),
        (
            "lists.yaml",
            "lists:\n  a: [x]\n".into(),
            "lists.yaml: no rules are defined",
        ),
        (
            "disabled.yaml",
            rule("    condition: proc.name = x\n    enabled: false\n"),
            "disabled.yaml: all 1 rules are disabled",
        ),
    ];
    for (name, yaml, want) in cases {
        let (ok, stderr) = check(name, yaml);
        assert!(!ok, "{name} was accepted");
        assert!(
            stderr.lines().any(|l| l.starts_with(want)),
            "{name}: want {want:?}, got:\n{stderr}"
        );
    }
}

#[test]
fn an_explicitly_empty_set_is_accepted_with_a_warning() {
    let (ok, stderr) = check("none.yaml", "rules: []\n");
    assert!(ok, "{stderr}");
    assert!(stderr.starts_with("warning: the set is empty"), "{stderr}");
}

#[test]
fn unreadable_rule_and_config_files_are_named_without_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    for args in [&["rules", "check"][..], &["config", "check"][..]] {
        let out = Command::new(sensor_bin())
            .args(args)
            .arg(&missing)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let want = format!("{}: cannot read: ", missing.display());
        assert!(
            stderr.starts_with(&want),
            "{args:?}: want {want:?}, got:\n{stderr}"
        );
    }
}

#[test]
fn shipped_rules_check_clean() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let out = Command::new(sensor_bin())
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let builtin = Command::new(sensor_bin())
        .args(["rules", "check"])
        .output()
        .unwrap();
    assert!(builtin.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).split(" (").next(),
        String::from_utf8_lossy(&builtin.stdout).split(" (").next(),
        "the built-in set is the rules/ directory"
    );
}

/// Every replay fixture and the hand-made records of every kind, events and
/// the alerts the built-in rules raise on them, as `sensor replay --format`
/// writes them: each document must validate against OCSF 1.4.0 and ECS
/// 8.17 (tests/validate/formats.py), and every kind must be among them, in
/// a container and on the host, so the check cannot shrink unnoticed.
#[test]
fn replayed_records_validate_as_ocsf_and_ecs() {
    let files = [
        fixture("windows.jsonl"),
        fixture("macos.jsonl"),
        fixture("linux-variants.jsonl"),
        formats_fixture(),
    ];
    for format in ["ocsf", "ecs"] {
        let mut documents = Vec::new();
        for file in &files {
            let out = Command::new(sensor_bin())
                .args([
                    "replay",
                    "--events",
                    "--format",
                    format,
                    "--node-name",
                    "node-1",
                ])
                .arg(file)
                .output()
                .expect("run sensor replay");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "replay failed: {stderr}");
            assert!(stderr.contains("malformed=0"), "{file}: {stderr}");
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                documents
                    .push(serde_json::from_str::<serde_json::Value>(line).expect("JSON lines"));
            }
        }
        // (kind, in a container) of each document, as the format says it.
        let seen: BTreeSet<(String, bool)> = documents
            .iter()
            .map(|d| match format {
                "ocsf" => (
                    d["unmapped"]["kind"].as_str().unwrap_or("?").to_owned(),
                    d["metadata"]["profiles"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p == "container")),
                ),
                _ => (
                    d["event"]["action"].as_str().unwrap_or("?").to_owned(),
                    d.get("container").is_some(),
                ),
            })
            .collect();
        for kind in Kind::ALL {
            assert!(
                seen.iter().any(|(k, _)| k == kind.name()),
                "{format}: no {} record to validate",
                kind.name()
            );
        }
        for kind in ["exec", "open", "connect", "alert"] {
            for in_container in [true, false] {
                assert!(
                    seen.contains(&(kind.to_owned(), in_container)),
                    "{format}: no {kind} record {} a container",
                    if in_container { "in" } else { "outside" }
                );
            }
        }
        if let Some(report) = validate_format(format, &documents) {
            eprintln!("{report}");
        }
        refuses_what_the_encoders_once_wrote(format, &documents);
    }
}

/// The validator is alive: what the old OCSF encoder wrote (a top-level
/// container, lineage), a missing required attribute, and a field ECS
/// does not have or of the wrong type fail it, named by line and field.
fn refuses_what_the_encoders_once_wrote(format: &str, documents: &[serde_json::Value]) {
    let mut doc = documents[0].clone();
    let wants: &[&str] = if format == "ocsf" {
        doc["container"] = serde_json::json!({"uid": "4f1c"});
        doc["process"]["lineage"] = serde_json::json!(["/bin/sh"]);
        doc.as_object_mut().unwrap().remove("time");
        &[
            ": container: not an attribute",
            ": process.lineage: deprecated",
            ": time: required, missing",
        ]
    } else {
        doc["process"]["pid"] = "41".into();
        doc["process"]["lineage"] = serde_json::json!(["/bin/sh"]);
        &[
            ": process.pid: \"41\" is not of type long",
            ": process.lineage: not a field of ECS 8.17.0",
        ]
    };
    let Some((valid, report, _dir)) = format_verdict(format, &[doc]) else {
        return;
    };
    assert!(
        !valid,
        "{format}: the validator took a broken document:\n{report}"
    );
    for want in wants {
        assert!(
            report
                .lines()
                .any(|l| l.contains(":1: ") && l.contains(want)),
            "{format}: no {want:?} in:\n{report}"
        );
    }
}
