//! Elastic Common Schema documents. What ECS has no field for stays under
//! `sensor.*` (custom fields live outside ECS's own names), so nothing is
//! lost: `sensor.exact` holds the exact bytes of text that is not UTF-8.
use serde_json::{Map, Value, json};

use super::{
    Exact, ProcessView, base_name, command_line, container, directory, native_body, product,
};
use crate::{
    event::{Body, Record},
    rules::source::Severity,
};

/// The ECS release whose field set this follows.
pub const ECS_VERSION: &str = "8.17.0";

/// One ECS document.
pub(super) fn document(record: &Record, node: &str) -> Value {
    let mut exact = Exact::default();
    let mut doc = Map::new();
    let (kind, category, types, outcome) = classify(record);
    doc.insert("@timestamp".into(), record.time.clone().into());
    doc.insert("ecs".into(), json!({"version": ECS_VERSION}));
    doc.insert("host".into(), json!({"name": node, "hostname": node}));
    doc.insert(
        "agent".into(),
        json!({"type": super::PRODUCT, "version": product()["version"]}),
    );
    let action = crate::rules::fields::kind_name(record);
    let mut event = json!({
        "kind": kind, "category": category, "type": types, "action": action,
        "module": "sensor", "dataset": format!("sensor.{action}"),
    });
    if let Some(outcome) = outcome {
        event["outcome"] = outcome.into();
    }
    let mut custom = Map::new();
    custom.insert("schema".into(), record.schema.into());
    custom.insert("boot_ns".into(), record.boot_ns.into());
    custom.insert("source".into(), json!(record.source));

    if let Some(view) = ProcessView::of(record) {
        doc.insert("process".into(), process(&view, node, &mut exact));
        doc.insert("user".into(), json!({"id": view.process.uid.to_string()}));
    }
    if let Some(c) = container(record) {
        if c.id == "unknown" {
            custom.insert("container".into(), json!(c));
        } else {
            insert_container(&mut doc, c);
        }
    }
    match &record.body {
        Body::Exec(_) | Body::Fork(_) => {}
        Body::Exit(e) => {
            if let Some(code) = e.data.exit.code {
                doc["process"]["exit_code"] = code.into();
            }
        }
        Body::Open(e) => {
            let o = &e.data.open;
            let path = exact.text("file.path", &o.path);
            let mut file = json!({"path": path, "name": base_name(&path)});
            if let Some(dir) = directory(&path) {
                file["directory"] = dir.into();
            }
            if let Some(ino) = o.ino {
                file["inode"] = ino.to_string().into();
            }
            doc.insert("file".into(), file);
            if let Some(err) = &o.error {
                doc.insert("error".into(), json!({"code": err}));
            }
        }
        Body::Connect(e) => {
            let c = &e.data.connect;
            let mut destination = Map::new();
            if let Some(ip) = c.address {
                destination.insert("ip".into(), ip.to_string().into());
                destination.insert("address".into(), ip.to_string().into());
            }
            if let Some(port) = c.port {
                destination.insert("port".into(), port.into());
            }
            if let Some(path) = &c.unix_path {
                destination.insert(
                    "address".into(),
                    exact.text("destination.address", path).into(),
                );
            }
            doc.insert("destination".into(), destination.into());
            doc.insert("network".into(), network(&c.family, c.protocol.as_deref()));
            if let Some(err) = &c.error {
                doc.insert("error".into(), json!({"code": err}));
            }
        }
        Body::Egress(e) => {
            let g = &e.egress;
            let mut destination =
                json!({"ip": g.address.to_string(), "address": g.address.to_string()});
            if let Some(port) = g.port {
                destination["port"] = port.into();
            }
            doc.insert("destination".into(), destination);
            doc.insert(
                "source".into(),
                json!({"bytes": g.bytes, "packets": g.packets}),
            );
            let mut net = network(&g.family, Some(&g.protocol));
            net["bytes"] = g.bytes.into();
            net["packets"] = g.packets.into();
            doc.insert("network".into(), net);
            event["duration"] = (g.interval_ms * 1_000_000).into();
        }
        Body::Alert(a) => {
            let r = &a.rule;
            doc.insert("message".into(), r.title.clone().into());
            doc.insert(
                "rule".into(),
                json!({"id": r.id, "name": r.title, "description": r.description,
                       "ruleset": r.pack, "category": r.technique.tactic}),
            );
            event["severity"] = severity(r.severity).into();
            doc.insert(
                "threat".into(),
                json!({"framework": "MITRE ATT&CK",
                       "technique": {"id": [r.technique.id], "name": [r.technique.name]},
                       "tactic": {"name": [r.technique.tactic]}}),
            );
            if let Some(p) = &a.process {
                let view = ProcessView::new(p, record);
                doc.insert("process".into(), process(&view, node, &mut exact));
                doc.insert("user".into(), json!({"id": p.uid.to_string()}));
            }
        }
        Body::CgroupMkdir(_)
        | Body::CgroupRmdir(_)
        | Body::ContainerStart(_)
        | Body::ContainerStop(_)
        | Body::Loss(_) => {}
    }
    if let Value::Object(native) = native_body(record) {
        custom.extend(native);
    }
    if let Some(bytes) = exact.into_value() {
        custom.insert("exact".into(), bytes);
    }
    doc.insert("event".into(), event);
    doc.insert("sensor".into(), custom.into());
    doc.into()
}

/// event.kind, event.category, event.type and event.outcome.
fn classify(
    record: &Record,
) -> (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Option<&'static str>,
) {
    use Body::*;
    let ok = |failed: bool| Some(if failed { "failure" } else { "success" });
    match &record.body {
        Exec(_) | Fork(_) => ("event", &["process"], &["start"], Some("success")),
        Exit(_) => ("event", &["process"], &["end"], None),
        Open(e) => {
            let o = &e.data.open;
            let types: &[&str] = if o.creates() {
                &["creation"]
            } else if o.writes() {
                &["change"]
            } else {
                &["access"]
            };
            ("event", &["file"], types, ok(!o.succeeded()))
        }
        Connect(e) => {
            let c = &e.data.connect;
            let failed = c.ret != 0 && c.error.as_deref() != Some("EINPROGRESS");
            ("event", &["network"], &["connection", "start"], ok(failed))
        }
        Egress(_) => ("metric", &["network"], &["info"], None),
        CgroupMkdir(_) => ("event", &["configuration"], &["creation"], None),
        CgroupRmdir(_) => ("event", &["configuration"], &["deletion"], None),
        ContainerStart(_) => ("event", &["process"], &["start"], None),
        ContainerStop(_) => ("event", &["process"], &["end"], None),
        Loss(_) => ("metric", &["host"], &["info"], None),
        Alert(_) => ("alert", &["intrusion_detection"], &["info"], None),
    }
}

fn process(view: &ProcessView<'_>, node: &str, exact: &mut Exact) -> Value {
    let p = view.process;
    let mut out = json!({
        "pid": p.pid,
        "thread": {"id": p.tid},
        "name": exact.text("process.name", &p.comm),
        "real_user": {"id": p.uid.to_string()},
        "real_group": {"id": p.gid.to_string()},
    });
    if let Some(euid) = view.euid {
        out["user"] = json!({"id": euid.to_string()});
    }
    if let Some(egid) = view.egid {
        out["group"] = json!({"id": egid.to_string()});
    }
    if let Some(id) = view.entity_id(node) {
        out["entity_id"] = id.into();
    }
    if let Some(vpid) = view.ns_pid {
        out["vpid"] = vpid.into();
    }
    if let Some(exe) = view.exe {
        out["executable"] = exact.text("process.executable", exe).into();
    }
    if let Some(args) = view.args {
        let args = exact.args("process.args", args);
        out["command_line"] = command_line(&args).into();
        out["args_count"] = args.len().into();
        out["args"] = args.into();
    }
    if let Some(ppid) = view.ppid {
        let mut parent = json!({"pid": ppid});
        if let Some(image) = view.parent() {
            let args = exact.args("process.parent.args", &image.args);
            parent["executable"] = exact.text("process.parent.executable", &image.exe).into();
            parent["command_line"] = command_line(&args).into();
            parent["args"] = args.into();
        }
        out["parent"] = parent;
    }
    out
}

fn insert_container(doc: &mut Map<String, Value>, c: &crate::container::ContainerRef) {
    let mut container = json!({"id": c.id, "runtime": c.runtime});
    if let Some(meta) = &c.meta {
        if let Some(name) = &meta.name {
            container["name"] = name.clone().into();
        }
        if let Some(image) = &meta.image {
            container["image"] = json!({"name": image});
        }
        if meta.privileged {
            container["security_context"] = json!({"privileged": true});
        }
    }
    doc.insert("container".into(), container);
    if let Some(uid) = &c.pod_uid {
        let mut orchestrator =
            json!({"type": "kubernetes", "resource": {"type": "pod", "id": uid}});
        if let Some(meta) = &c.meta {
            if let Some(name) = &meta.pod_name {
                orchestrator["resource"]["name"] = name.clone().into();
            }
            if let Some(ns) = &meta.pod_namespace {
                orchestrator["namespace"] = ns.clone().into();
            }
        }
        doc.insert("orchestrator".into(), orchestrator);
    }
}

fn network(family: &str, protocol: Option<&str>) -> Value {
    let mut net = json!({"direction": "egress"});
    match family {
        "inet" => net["type"] = "ipv4".into(),
        "inet6" => net["type"] = "ipv6".into(),
        _ => {}
    }
    if let Some(p) = protocol {
        net["transport"] = p.into();
    }
    net
}

/// event.severity on the scale Elastic's detection rules use.
fn severity(s: Severity) -> u32 {
    match s {
        Severity::Info => 1,
        Severity::Low => 21,
        Severity::Medium => 47,
        Severity::High => 73,
        Severity::Critical => 99,
    }
}
