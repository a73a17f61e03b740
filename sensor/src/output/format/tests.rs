use serde_json::{Value, json};

use super::*;

/// Through text, as records are read.
fn record(v: Value) -> Record {
    serde_json::from_str(&v.to_string()).unwrap()
}

fn encode(format: Format, r: &Record) -> Value {
    let mut out = Vec::new();
    Encoder::new(format, "node-1").encode(r, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn container() -> Value {
    json!({"id": "4f1c", "runtime": "containerd", "pod_uid": "9b0e6a2c-1f3d-4e5a-8b7c-0d1e2f3a4b5c",
           "name": "web", "image": "nginx:1.27", "pod_name": "web-0", "pod_namespace": "shop"})
}

fn process(pid: u32) -> Value {
    json!({"pid": pid, "tid": pid, "uid": 1000, "gid": 1000, "comm": "curl", "ppid": 40,
           "start_ticks": 77, "exe": "/usr/bin/curl", "args": ["curl", "-o", "/tmp/x y", "http://e/x"],
           "ancestors": [{"pid": 40, "start_ticks": 70, "exe": "/bin/sh", "args": ["sh", "-c", "curl"]}]})
}

fn exec() -> Record {
    record(json!({
        "schema": 1, "time": "2026-12-04T10:00:00.123456789Z", "boot_ns": 5, "kind": "exec",
        "process": process(41), "cgroup": {"id": 9}, "container": container(),
        "exec": {"ppid": 40, "euid": 0, "egid": 0, "ns_pid": 7, "pid_ns": 1, "mnt_ns": 2,
                 "start_boottime_ns": 4, "path": "/usr/bin/curl",
                 "args": ["curl", "-o", "/tmp/x y", "http://e/x"]}
    }))
}

/// A failed open of a path that is not UTF-8 (`/tmp/\xff`).
fn open_non_utf8() -> Record {
    record(json!({
        "schema": 1, "time": "2026-12-04T10:00:01Z", "boot_ns": 6, "kind": "open",
        "process": process(41), "cgroup": {"id": 9}, "container": {"id": "host", "runtime": "host"},
        "open": {"syscall": "openat", "path": {"lossy": "/tmp/\u{fffd}", "base64": "L3RtcC//"},
                 "path_source": "caller", "access": "write", "flags": ["O_WRONLY", "O_CREAT"],
                 "flags_raw": 65, "mode": "0644", "error": "EACCES"}
    }))
}

fn connect() -> Record {
    record(json!({
        "schema": 1, "time": "2026-12-04T10:00:02Z", "boot_ns": 7, "kind": "connect",
        "process": process(41), "cgroup": {"id": 9}, "container": container(),
        "connect": {"family": "inet", "sock_type": "stream", "protocol": "tcp",
                    "address": "203.0.113.9", "port": 443, "fd": 3, "ret": -115,
                    "error": "EINPROGRESS"}
    }))
}

fn alert() -> Record {
    record(json!({
        "schema": 1, "time": "2026-12-04T10:00:03Z", "boot_ns": 8, "kind": "alert",
        "rule": {"id": "T1105-download-in-container", "title": "Download in a container",
                 "severity": "medium", "pack": "t1105-ingress-tool-transfer",
                 "technique": {"id": "T1105", "name": "Ingress Tool Transfer",
                               "tactic": "command-and-control"},
                 "description": "curl fetched a URL"},
        "container": container(), "process": process(41), "evidence": []
    }))
}

#[test]
fn ecs_exec_is_a_process_start_in_a_pod() {
    let d = encode(Format::Ecs, &exec());
    assert_eq!(d["@timestamp"], "2026-12-04T10:00:00.123456789Z");
    assert_eq!(d["event"]["kind"], "event");
    assert_eq!(d["event"]["category"], json!(["process"]));
    assert_eq!(d["event"]["type"], json!(["start"]));
    assert_eq!(d["host"]["name"], "node-1");
    let p = &d["process"];
    assert_eq!(p["pid"], 41);
    assert_eq!(p["vpid"], 7);
    assert_eq!(p["executable"], "/usr/bin/curl");
    assert_eq!(p["args"], json!(["curl", "-o", "/tmp/x y", "http://e/x"]));
    assert_eq!(p["command_line"], "curl -o '/tmp/x y' http://e/x");
    assert_eq!(p["user"]["id"], "0", "effective uid");
    assert_eq!(p["real_user"]["id"], "1000");
    assert_eq!(p["parent"]["pid"], 40);
    assert_eq!(p["parent"]["executable"], "/bin/sh");
    assert_eq!(p["entity_id"], "node-1:41:4ns");
    assert_eq!(d["container"]["id"], "4f1c");
    assert_eq!(d["container"]["image"]["name"], "nginx:1.27");
    assert_eq!(d["orchestrator"]["namespace"], "shop");
    assert_eq!(d["orchestrator"]["resource"]["name"], "web-0");
    assert_eq!(
        d["orchestrator"]["resource"]["id"],
        "9b0e6a2c-1f3d-4e5a-8b7c-0d1e2f3a4b5c"
    );
    // What ECS has no field for stays, under `sensor`.
    assert_eq!(d["sensor"]["exec"]["mnt_ns"], 2);
    assert_eq!(d["sensor"]["boot_ns"], 5);
}

#[test]
fn ecs_keeps_exact_bytes_of_non_utf8_paths_and_the_failure() {
    let d = encode(Format::Ecs, &open_non_utf8());
    assert_eq!(d["event"]["category"], json!(["file"]));
    assert_eq!(d["event"]["type"], json!(["creation"]));
    assert_eq!(d["event"]["outcome"], "failure");
    assert_eq!(d["error"]["code"], "EACCES");
    assert_eq!(d["file"]["path"], "/tmp/\u{fffd}");
    assert_eq!(d["file"]["directory"], "/tmp");
    assert_eq!(d["sensor"]["exact"]["file.path"], "L3RtcC//");
    assert!(d.get("container").is_none(), "the host is not a container");
}

#[test]
fn ecs_connect_and_alert() {
    let d = encode(Format::Ecs, &connect());
    assert_eq!(d["event"]["type"], json!(["connection", "start"]));
    assert_eq!(d["event"]["outcome"], "success", "EINPROGRESS is under way");
    assert_eq!(d["destination"]["ip"], "203.0.113.9");
    assert_eq!(d["destination"]["port"], 443);
    assert_eq!(d["network"]["transport"], "tcp");
    assert_eq!(d["network"]["type"], "ipv4");

    let a = encode(Format::Ecs, &alert());
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["severity"], 47);
    assert_eq!(a["rule"]["id"], "T1105-download-in-container");
    assert_eq!(a["threat"]["technique"]["id"], json!(["T1105"]));
    assert_eq!(
        a["threat"]["tactic"]["name"],
        json!(["Command and Control"])
    );
    assert_eq!(a["threat"]["tactic"]["id"], json!(["TA0011"]));
    assert_eq!(a["rule"]["category"], "command-and-control");
    assert_eq!(a["process"]["executable"], "/usr/bin/curl");
    assert_eq!(a["container"]["id"], "4f1c");
}

/// Attributes every OCSF event needs, and the class's own.
fn assert_ocsf(e: &Value, class_uid: u64, activity_id: u64) {
    for key in [
        "activity_id",
        "category_uid",
        "class_uid",
        "severity_id",
        "time",
        "type_uid",
        "metadata",
    ] {
        assert!(e.get(key).is_some(), "{key} missing: {e}");
    }
    assert_eq!(e["class_uid"], class_uid);
    assert_eq!(e["activity_id"], activity_id);
    assert_eq!(e["type_uid"], class_uid * 100 + activity_id);
    assert_eq!(e["metadata"]["version"], ocsf::OCSF_VERSION);
    assert_eq!(e["metadata"]["product"]["vendor_name"], PRODUCT);
    assert_eq!(e["device"]["hostname"], "node-1");
}

#[test]
fn ocsf_exec_is_a_launch_by_the_parent_with_the_container_profile() {
    let e = encode(Format::Ocsf, &exec());
    assert_ocsf(&e, 1007, 1);
    assert_eq!(e["category_uid"], 1);
    assert_eq!(e["time"], 1_796_378_400_123u64);
    assert_eq!(e["process"]["pid"], 41);
    assert_eq!(e["process"]["file"]["path"], "/usr/bin/curl");
    assert_eq!(e["process"]["cmd_line"], "curl -o '/tmp/x y' http://e/x");
    assert_eq!(
        e["process"]["ancestry"],
        json!([{"pid": 40, "uid": "node-1:40:70t", "name": "sh", "path": "/bin/sh",
                "cmd_line": "sh -c curl"}])
    );
    assert!(e["process"].get("lineage").is_none(), "deprecated in 1.4.0");
    assert_eq!(e["actor"]["process"]["pid"], 40);
    assert_eq!(e["actor"]["process"]["file"]["path"], "/bin/sh");
    // The container profile puts the container on the process, not at the
    // top; the image needs an id the sensor does not have, so its
    // reference stays with the whole container in `unmapped`.
    assert!(e.get("container").is_none());
    let c = &e["process"]["container"];
    assert_eq!(c["uid"], "4f1c");
    assert_eq!(c["pod_uuid"], "9b0e6a2c-1f3d-4e5a-8b7c-0d1e2f3a4b5c");
    assert!(c.get("image").is_none());
    assert_eq!(e["process"]["namespace_pid"], 7);
    assert!(e["actor"]["process"].get("container").is_none());
    assert_eq!(e["unmapped"]["container"]["image"], "nginx:1.27");
    assert_eq!(e["unmapped"]["container"]["pod_name"], "web-0");
    assert_eq!(e["metadata"]["profiles"], json!(["host", "container"]));
}

#[test]
fn ocsf_open_connect_alert_classes() {
    let e = encode(Format::Ocsf, &open_non_utf8());
    assert_ocsf(&e, 1001, 1);
    assert_eq!(e["status_id"], 2);
    assert_eq!(e["status_detail"], "EACCES");
    assert_eq!(e["file"]["path"], "/tmp/\u{fffd}");
    assert_eq!(e["unmapped"]["exact"]["file.path"], "L3RtcC//");
    assert_eq!(e["actor"]["process"]["pid"], 41);
    assert!(e["actor"]["process"].get("container").is_none());
    assert!(e["unmapped"].get("container").is_none(), "the host");
    assert_eq!(e["metadata"]["profiles"], json!(["host"]));

    let e = encode(Format::Ocsf, &connect());
    assert_ocsf(&e, 4001, 1);
    assert_eq!(e["dst_endpoint"], json!({"ip": "203.0.113.9", "port": 443}));
    assert_eq!(e["src_endpoint"], json!({"hostname": "node-1"}));
    assert_eq!(e["actor"]["process"]["container"]["uid"], "4f1c");
    assert_eq!(e["connection_info"]["protocol_num"], 6);
    assert_eq!(e["connection_info"]["direction_id"], 2);

    let e = encode(Format::Ocsf, &alert());
    assert_ocsf(&e, 2004, 1);
    assert_eq!(e["severity_id"], 3);
    assert_eq!(
        e["finding_info"]["analytic"]["uid"],
        "T1105-download-in-container"
    );
    assert_eq!(e["finding_info"]["attacks"][0]["technique"]["uid"], "T1105");
    assert_eq!(
        e["finding_info"]["attacks"][0]["tactic"],
        json!({"name": "Command and Control", "uid": "TA0011"})
    );
    assert_eq!(e["evidences"][0]["process"]["pid"], 41);
    assert_eq!(e["actor"]["process"]["container"]["uid"], "4f1c");
}

#[test]
fn records_without_a_class_are_base_events_that_keep_their_fields() {
    let loss = record(json!({
        "schema": 1, "time": "2026-12-04T10:00:04Z", "boot_ns": 9, "kind": "loss",
        "loss": {"ring_full": {"open": 3}, "kernel_error": {}, "ring_full_by_cpu": {"1": 3},
                 "malformed": 0, "total_since_start": 3}
    }));
    let e = encode(Format::Ocsf, &loss);
    assert_eq!(e["class_uid"], 0);
    assert_eq!(e["type_uid"], 99);
    assert_eq!(e["unmapped"]["loss"]["ring_full"]["open"], 3);
    let d = encode(Format::Ecs, &loss);
    assert_eq!(d["event"]["kind"], "metric");
    assert_eq!(d["sensor"]["loss"]["total_since_start"], 3);
}

#[test]
fn command_lines_quote_what_a_shell_would_split() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(command_line(&args(&["ls", "-la", "/tmp"])), "ls -la /tmp");
    assert_eq!(command_line(&args(&["sh", "-c", "a; b"])), "sh -c 'a; b'");
    assert_eq!(
        command_line(&args(&["echo", "it's", ""])),
        r"echo 'it'\''s' ''"
    );
    assert_eq!(command_line(&args(&["a\nb"])), "'a\nb'");
    // Written straight into a document, the same line.
    for argv in [
        &["sh", "-c", "a; b"][..],
        &["echo", "it's", ""],
        &["ls"],
        &[],
    ] {
        let texts: Vec<Text> = argv.iter().map(|a| Text::from(a.as_bytes())).collect();
        assert_eq!(
            CommandLine(&texts).to_string(),
            command_line(&args(argv)),
            "{argv:?}"
        );
    }
}

#[test]
fn non_utf8_arguments_keep_their_bytes_under_their_index() {
    let mut v = serde_json::to_value(exec()).unwrap();
    v["exec"]["args"][1] = json!({"lossy": "\u{fffd}", "base64": "/w=="});
    let r = record(v);
    let d = encode(Format::Ecs, &r);
    assert_eq!(d["process"]["args"][1], "\u{fffd}");
    assert_eq!(d["sensor"]["exact"]["process.args.1"], "/w==");
    let e = encode(Format::Ocsf, &r);
    assert_eq!(e["unmapped"]["exact"]["process.args.1"], "/w==");
    assert_eq!(
        e["process"]["cmd_line"],
        "curl '\u{fffd}' '/tmp/x y' http://e/x"
    );
}

fn connect_unix() -> Record {
    record(json!({
        "schema": 1, "time": "2026-12-04T10:00:05Z", "boot_ns": 10, "kind": "connect",
        "process": process(41), "cgroup": {"id": 9}, "container": {"id": "host", "runtime": "host"},
        "connect": {"family": "unix", "sock_type": "stream", "unix_path": "/run/docker.sock",
                    "fd": 3, "ret": 0}
    }))
}

#[test]
fn ocsf_unix_connects_name_no_empty_endpoint_and_keep_the_path() {
    let e = encode(Format::Ocsf, &connect_unix());
    assert_ocsf(&e, 4001, 1);
    assert!(e.get("dst_endpoint").is_none(), "{e}");
    assert_eq!(e["src_endpoint"]["hostname"], "node-1");
    assert_eq!(e["unmapped"]["unix_path"], "/run/docker.sock");
}

#[test]
fn ocsf_puts_a_container_without_a_process_on_the_endpoint_or_the_device() {
    let egress = record(json!({
        "schema": 1, "time": "2026-12-04T10:00:06Z", "boot_ns": 11, "kind": "egress",
        "cgroup": {"id": 9}, "container": container(),
        "egress": {"family": "inet6", "protocol": "udp", "address": "2001:db8::1", "port": 53,
                   "bytes": 100, "packets": 1, "interval_ms": 10000}
    }));
    let e = encode(Format::Ocsf, &egress);
    assert_ocsf(&e, 4001, 6);
    assert_eq!(e["src_endpoint"]["container"]["uid"], "4f1c");
    assert!(e["device"].get("container").is_none());
    let start = record(json!({
        "schema": 1, "time": "2026-12-04T10:00:07Z", "boot_ns": 12, "kind": "container_start",
        "container": container(), "pid": 41
    }));
    let e = encode(Format::Ocsf, &start);
    assert_eq!(e["class_uid"], 0);
    assert_eq!(e["device"]["container"]["uid"], "4f1c");
    assert_eq!(e["metadata"]["profiles"], json!(["host", "container"]));
    assert_eq!(e["unmapped"]["container"]["pod_namespace"], "shop");
}

#[test]
fn ocsf_unknown_containers_and_odd_pod_uids_stay_in_unmapped() {
    let mut v = serde_json::to_value(exec()).unwrap();
    v["container"] = json!({"id": "unknown", "runtime": "unknown", "reason": "not indexed"});
    let e = encode(Format::Ocsf, &record(v.clone()));
    assert!(e["process"].get("container").is_none());
    assert_eq!(e["metadata"]["profiles"], json!(["host"]));
    assert_eq!(e["unmapped"]["container"]["reason"], "not indexed");
    v["container"] = json!({"id": "4f1c", "runtime": "cri", "pod_uid": "not-a-uuid"});
    let e = encode(Format::Ocsf, &record(v));
    assert!(e["process"]["container"].get("pod_uuid").is_none());
    assert_eq!(e["process"]["container"]["orchestrator"], "Kubernetes");
    assert_eq!(e["unmapped"]["container"]["pod_uid"], "not-a-uuid");
}

#[test]
fn tactics_are_named_as_attack_names_them() {
    for (short, name, id) in TACTICS {
        assert_eq!(tactic(short), (name, Some(id)));
        // ATT&CK's URL slugs are the short names rules use.
        assert_eq!(short, name.to_lowercase().replace(' ', "-"));
    }
    assert_eq!(tactic("my-own"), ("my-own", None));
}
