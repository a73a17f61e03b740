//! OCSF events: Process Activity (1007), File System Activity (1001),
//! Network Activity (4001) and, for alerts, Detection Finding (2004), with
//! the host and container profiles. Records OCSF has no class for (cgroup
//! and container lifecycle, loss) are Base Events (0). What no attribute
//! holds goes to `unmapped`, OCSF's place for it, exact bytes of non-UTF-8
//! text included (`unmapped.exact`).
use serde_json::{Map, Value, json};

use super::{
    Exact, PRODUCT, ProcessView, base_name, command_line, container, directory, epoch_ms,
    native_body, product,
};
use crate::{
    container::ContainerRef,
    event::{Body, Record},
    rules::source::Severity,
};

/// The OCSF release whose classes this follows.
pub const OCSF_VERSION: &str = "1.4.0";

/// A class: uid, name, category uid and name.
struct Class(u32, &'static str, u32, &'static str);

const BASE_EVENT: Class = Class(0, "Base Event", 0, "Uncategorized");
const FILE_SYSTEM_ACTIVITY: Class = Class(1001, "File System Activity", 1, "System Activity");
const PROCESS_ACTIVITY: Class = Class(1007, "Process Activity", 1, "System Activity");
const DETECTION_FINDING: Class = Class(2004, "Detection Finding", 2, "Findings");
const NETWORK_ACTIVITY: Class = Class(4001, "Network Activity", 4, "Network Activity");

/// One OCSF event.
pub(super) fn event(record: &Record, node: &str) -> Value {
    let mut exact = Exact::default();
    let mut ev = Map::new();
    let mut unmapped = Map::new();
    unmapped.insert(
        "kind".into(),
        crate::rules::fields::kind_name(record).into(),
    );
    unmapped.insert("schema".into(), record.schema.into());
    unmapped.insert("boot_ns".into(), record.boot_ns.into());
    unmapped.insert("source".into(), json!(record.source));
    let view = ProcessView::of(record);
    if let Some(c) = container(record) {
        if c.id == "unknown" {
            unmapped.insert("container".into(), json!(c));
        } else {
            ev.insert("container".into(), container_object(c));
        }
    }
    let mut status: Option<(bool, Option<&str>)> = None;
    let mut severity_id = 1;
    let (class, activity_id, activity_name) = match &record.body {
        Body::Exec(_) | Body::Fork(_) => {
            // The new process is the target; its creator, the parent, acts.
            let v = view.as_ref().expect("a kernel event has a process");
            ev.insert("process".into(), process(v, node, &mut exact, "process"));
            let parent = v.ppid.map(|ppid| {
                let mut p = json!({"pid": ppid});
                if let Some(image) = v.parent() {
                    let path = exact.text("actor.process.file.path", &image.exe);
                    let args = exact.args("actor.process.args", &image.args);
                    p["name"] = base_name(&path).into();
                    p["file"] = file_object(&path);
                    p["cmd_line"] = command_line(&args).into();
                }
                p
            });
            ev.insert(
                "actor".into(),
                json!({"process": parent.unwrap_or(json!({}))}),
            );
            status = Some((true, None));
            (PROCESS_ACTIVITY, 1, "Launch")
        }
        Body::Exit(e) => {
            let v = view.as_ref().expect("a kernel event has a process");
            ev.insert("process".into(), process(v, node, &mut exact, "process"));
            if let Some(code) = e.data.exit.code {
                ev.insert("exit_code".into(), code.into());
            }
            (PROCESS_ACTIVITY, 2, "Terminate")
        }
        Body::Open(e) => {
            let o = &e.data.open;
            let path = exact.text("file.path", &o.path);
            let mut file = file_object(&path);
            if let Some(ino) = o.ino {
                file["uid"] = ino.to_string().into();
            }
            ev.insert("file".into(), file);
            status = Some((o.succeeded(), o.error.as_deref()));
            if o.creates() {
                (FILE_SYSTEM_ACTIVITY, 1, "Create")
            } else {
                (FILE_SYSTEM_ACTIVITY, 14, "Open")
            }
        }
        Body::Connect(e) => {
            let c = &e.data.connect;
            let mut dst = Map::new();
            if let Some(ip) = c.address {
                dst.insert("ip".into(), ip.to_string().into());
            }
            if let Some(port) = c.port {
                dst.insert("port".into(), port.into());
            }
            if let Some(path) = &c.unix_path {
                unmapped.insert(
                    "unix_path".into(),
                    exact.text("unmapped.unix_path", path).into(),
                );
            }
            ev.insert("dst_endpoint".into(), dst.into());
            ev.insert("src_endpoint".into(), json!({"hostname": node}));
            ev.insert(
                "connection_info".into(),
                connection_info(&c.family, c.protocol.as_deref()),
            );
            let pending = c.error.as_deref() == Some("EINPROGRESS");
            let ok = c.ret == 0 || pending;
            status = Some((ok, c.error.as_deref()));
            match c.error.as_deref() {
                _ if ok => (NETWORK_ACTIVITY, 1, "Open"),
                Some("ECONNREFUSED") => (NETWORK_ACTIVITY, 5, "Refuse"),
                _ => (NETWORK_ACTIVITY, 4, "Fail"),
            }
        }
        Body::Egress(e) => {
            let g = &e.egress;
            let mut dst = json!({"ip": g.address.to_string()});
            if let Some(port) = g.port {
                dst["port"] = port.into();
            }
            ev.insert("dst_endpoint".into(), dst);
            ev.insert("src_endpoint".into(), json!({"hostname": node}));
            ev.insert(
                "connection_info".into(),
                connection_info(&g.family, Some(&g.protocol)),
            );
            ev.insert(
                "traffic".into(),
                json!({"bytes_out": g.bytes, "packets_out": g.packets}),
            );
            ev.insert("duration".into(), g.interval_ms.into());
            (NETWORK_ACTIVITY, 6, "Traffic")
        }
        Body::Alert(a) => {
            let r = &a.rule;
            severity_id = severity(r.severity);
            ev.insert("message".into(), r.title.clone().into());
            ev.insert(
                "finding_info".into(),
                json!({
                    "uid": format!("{node}:{}:{}", r.id, record.boot_ns),
                    "title": r.title,
                    "desc": r.description,
                    "types": [r.pack],
                    "analytic": {"uid": r.id, "name": r.title, "type_id": 1, "type": "Rule"},
                    "attacks": [{
                        "technique": {"uid": r.technique.id, "name": r.technique.name},
                        "tactic": {"name": r.technique.tactic},
                        "version": "15",
                    }],
                }),
            );
            ev.insert("is_alert".into(), true.into());
            if let Some(p) = &a.process {
                let v = ProcessView::new(p, record);
                let process = process(&v, node, &mut exact, "actor.process");
                ev.insert("actor".into(), json!({"process": process}));
                ev.insert(
                    "evidences".into(),
                    json!([{"process": ev["actor"]["process"].clone()}]),
                );
            }
            (DETECTION_FINDING, 1, "Create")
        }
        Body::Loss(_) => {
            severity_id = 3;
            (BASE_EVENT, 99, "Other")
        }
        Body::CgroupMkdir(_)
        | Body::CgroupRmdir(_)
        | Body::ContainerStart(_)
        | Body::ContainerStop(_) => (BASE_EVENT, 99, "Other"),
    };
    // Everywhere but a launch, the process acts (an exit is reflexive).
    if let Some(v) = &view
        && !ev.contains_key("actor")
    {
        let process = process(v, node, &mut exact, "actor.process");
        ev.insert("actor".into(), json!({"process": process}));
    }
    let Class(class_uid, class_name, category_uid, category_name) = class;
    ev.insert("class_uid".into(), class_uid.into());
    ev.insert("class_name".into(), class_name.into());
    ev.insert("category_uid".into(), category_uid.into());
    ev.insert("category_name".into(), category_name.into());
    ev.insert("activity_id".into(), activity_id.into());
    ev.insert("activity_name".into(), activity_name.into());
    let type_uid = if class_uid == 0 {
        99
    } else {
        class_uid * 100 + activity_id
    };
    ev.insert("type_uid".into(), type_uid.into());
    ev.insert(
        "type_name".into(),
        format!("{class_name}: {activity_name}").into(),
    );
    ev.insert("severity_id".into(), severity_id.into());
    ev.insert("severity".into(), severity_name(severity_id).into());
    if let Some((ok, detail)) = status {
        ev.insert("status_id".into(), if ok { 1 } else { 2 }.into());
        ev.insert(
            "status".into(),
            if ok { "Success" } else { "Failure" }.into(),
        );
        if let Some(detail) = detail {
            ev.insert("status_detail".into(), detail.into());
        }
    }
    ev.insert("time".into(), epoch_ms(&record.time).unwrap_or(0).into());
    let mut profiles = vec!["host"];
    if ev.contains_key("container") {
        profiles.push("container");
    }
    let mut meta_product = product();
    meta_product["vendor_name"] = PRODUCT.into();
    ev.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": meta_product,
            "profiles": profiles,
            "original_time": record.time,
            "log_name": crate::rules::fields::kind_name(record),
        }),
    );
    ev.insert(
        "device".into(),
        json!({"hostname": node, "type_id": 0, "type": "Unknown"}),
    );
    if let Value::Object(native) = native_body(record) {
        unmapped.extend(native);
    }
    if let Some(bytes) = exact.into_value() {
        unmapped.insert("exact".into(), bytes);
    }
    ev.insert("unmapped".into(), unmapped.into());
    ev.into()
}

/// An OCSF process object; `at` names where it goes, for exact bytes.
fn process(view: &ProcessView<'_>, node: &str, exact: &mut Exact, at: &str) -> Value {
    let p = view.process;
    let mut out = json!({
        "pid": p.pid,
        "tid": p.tid,
        "name": exact.text(&format!("{at}.name"), &p.comm),
        "user": {"uid": p.uid.to_string()},
    });
    if let Some(uid) = view.entity_id(node) {
        out["uid"] = uid.into();
    }
    if let Some(exe) = view.exe {
        let path = exact.text(&format!("{at}.file.path"), exe);
        out["file"] = file_object(&path);
    }
    if let Some(args) = view.args {
        let args = exact.args(&format!("{at}.args"), args);
        out["cmd_line"] = command_line(&args).into();
    }
    if let Some(ppid) = view.ppid {
        let mut parent = json!({"pid": ppid});
        if let Some(image) = view.parent() {
            let path = exact.text(&format!("{at}.parent_process.file.path"), &image.exe);
            parent["file"] = file_object(&path);
        }
        out["parent_process"] = parent;
    }
    let lineage: Vec<String> = p
        .ancestors
        .iter()
        .enumerate()
        .map(|(i, a)| exact.text(&format!("{at}.lineage.{i}"), &a.image.exe))
        .collect();
    if !lineage.is_empty() {
        out["lineage"] = lineage.into();
    }
    out
}

fn file_object(path: &str) -> Value {
    let mut file = json!({"path": path, "name": base_name(path), "type_id": 0});
    if let Some(dir) = directory(path) {
        file["parent_folder"] = dir.into();
    }
    file
}

fn container_object(c: &ContainerRef) -> Value {
    let mut out = json!({"uid": c.id, "runtime": c.runtime});
    if let Some(meta) = &c.meta {
        if let Some(name) = &meta.name {
            out["name"] = name.clone().into();
        }
        if let Some(image) = &meta.image {
            out["image"] = json!({"name": image});
        }
    }
    if let Some(uid) = &c.pod_uid {
        out["orchestrator"] = "Kubernetes".into();
        out["pod_uuid"] = uid.clone().into();
    }
    out
}

fn connection_info(family: &str, protocol: Option<&str>) -> Value {
    let mut info = json!({"direction_id": 2, "direction": "Outbound"});
    match family {
        "inet" => info["protocol_ver_id"] = 4.into(),
        "inet6" => info["protocol_ver_id"] = 6.into(),
        _ => {}
    }
    if let Some(p) = protocol {
        info["protocol_name"] = p.into();
        if let Some(num) = match p {
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            "icmpv6" => Some(58),
            "sctp" => Some(132),
            _ => None,
        } {
            info["protocol_num"] = num.into();
        }
    }
    info
}

fn severity(s: Severity) -> u32 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn severity_name(id: u32) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}
