//! Elastic Common Schema documents. What ECS has no field for stays under
//! `sensor.*` (custom fields live outside ECS's own names), so nothing is
//! lost: `sensor.exact` holds the exact bytes of text that is not UTF-8.
//! Typed and borrowing, like the native schema: a document costs a few
//! allocations, not one per field.
use std::borrow::Cow;

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{
    Exact, Name, Native, ProcessView, base_name, command_line, container, directory, tactic,
};
use crate::{
    container::ContainerRef,
    event::{Body, Record, Severity, Source},
};

/// The ECS release whose field set this follows.
pub const ECS_VERSION: &str = "8.17.0";

#[skip_serializing_none]
#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: &'a str,
    ecs: Version,
    host: Host<'a>,
    agent: Agent,
    event: EventFields,
    message: Option<&'a str>,
    process: Option<ProcessDoc<'a>>,
    user: Option<Id>,
    container: Option<ContainerDoc<'a>>,
    orchestrator: Option<Orchestrator<'a>>,
    file: Option<FileDoc<'a>>,
    error: Option<ErrorDoc<'a>>,
    destination: Option<Destination<'a>>,
    source: Option<Traffic>,
    network: Option<Network<'a>>,
    rule: Option<RuleDoc<'a>>,
    threat: Option<Threat<'a>>,
    sensor: Custom<'a>,
}

#[derive(Serialize)]
struct Version {
    version: &'static str,
}

#[derive(Serialize)]
struct Host<'a> {
    name: &'a str,
    hostname: &'a str,
}

#[derive(Serialize)]
struct Agent {
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct EventFields {
    kind: &'static str,
    category: &'static [&'static str],
    #[serde(rename = "type")]
    types: &'static [&'static str],
    action: &'static str,
    module: &'static str,
    dataset: String,
    outcome: Option<&'static str>,
    severity: Option<u32>,
    duration: Option<u64>,
}

#[derive(Serialize)]
struct Id {
    id: String,
}

#[derive(Serialize)]
struct Thread {
    id: u32,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct ProcessDoc<'a> {
    pid: u32,
    thread: Thread,
    name: Cow<'a, str>,
    real_user: Id,
    real_group: Id,
    user: Option<Id>,
    group: Option<Id>,
    entity_id: Option<String>,
    vpid: Option<u32>,
    executable: Option<Cow<'a, str>>,
    command_line: Option<String>,
    args_count: Option<usize>,
    args: Option<Vec<Cow<'a, str>>>,
    parent: Option<Parent<'a>>,
    exit_code: Option<u8>,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Parent<'a> {
    pid: u32,
    executable: Option<Cow<'a, str>>,
    command_line: Option<String>,
    args: Option<Vec<Cow<'a, str>>>,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct ContainerDoc<'a> {
    id: &'a str,
    runtime: &'a str,
    name: Option<&'a str>,
    image: Option<Name<'a>>,
    security_context: Option<SecurityContext>,
}

#[derive(Serialize)]
struct SecurityContext {
    privileged: bool,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Orchestrator<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    resource: Resource<'a>,
    namespace: Option<&'a str>,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Resource<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    name: Option<&'a str>,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct FileDoc<'a> {
    path: Cow<'a, str>,
    name: String,
    directory: Option<String>,
    inode: Option<String>,
}

#[derive(Serialize)]
struct ErrorDoc<'a> {
    code: &'a str,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Destination<'a> {
    ip: Option<String>,
    address: Option<Cow<'a, str>>,
    port: Option<u16>,
}

#[derive(Serialize)]
struct Traffic {
    bytes: u64,
    packets: u64,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Network<'a> {
    direction: &'static str,
    #[serde(rename = "type")]
    kind: Option<&'static str>,
    transport: Option<&'a str>,
    bytes: Option<u64>,
    packets: Option<u64>,
}

#[derive(Serialize)]
struct RuleDoc<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    ruleset: &'a str,
    category: &'a str,
}

#[derive(Serialize)]
struct Threat<'a> {
    framework: &'static str,
    technique: Technique<'a>,
    tactic: Tactic<'a>,
}

#[derive(Serialize)]
struct Technique<'a> {
    id: [&'a str; 1],
    name: [&'a str; 1],
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Tactic<'a> {
    name: [&'a str; 1],
    id: Option<[&'static str; 1]>,
}

/// `sensor.*`: the record's own fields no ECS field holds.
#[skip_serializing_none]
#[derive(Serialize)]
struct Custom<'a> {
    schema: u32,
    boot_ns: u64,
    source: Source,
    #[serde(flatten)]
    native: Native<'a>,
    container: Option<&'a ContainerRef>,
    #[serde(skip_serializing_if = "Exact::is_empty")]
    exact: Exact,
}

/// One ECS document.
pub(super) fn document<'a>(record: &'a Record, node: &'a str) -> impl Serialize + 'a {
    let mut exact = Exact::default();
    let (kind, category, types, outcome) = classify(record);
    let action = record.kind().name();
    let event = EventFields {
        kind,
        category,
        types,
        action,
        module: "sensor",
        dataset: format!("sensor.{action}"),
        outcome,
        severity: None,
        duration: None,
    };
    let mut doc = Document {
        timestamp: &record.time,
        ecs: Version {
            version: ECS_VERSION,
        },
        host: Host {
            name: node,
            hostname: node,
        },
        agent: Agent {
            kind: super::PRODUCT,
            version: env!("CARGO_PKG_VERSION"),
        },
        event,
        message: None,
        process: None,
        user: None,
        container: None,
        orchestrator: None,
        file: None,
        error: None,
        destination: None,
        source: None,
        network: None,
        rule: None,
        threat: None,
        sensor: Custom {
            schema: record.schema,
            boot_ns: record.boot_ns,
            source: record.source,
            native: Native::of(record),
            container: None,
            exact: Exact::default(),
        },
    };
    if let Some(view) = ProcessView::of(record) {
        doc.user = Some(Id {
            id: view.process.uid.to_string(),
        });
        doc.process = Some(process(&view, node, &mut exact));
    }
    if let Some(c) = container(record) {
        if c.id == "unknown" {
            doc.sensor.container = Some(c);
        } else {
            (doc.container, doc.orchestrator) = container_docs(c);
        }
    }
    match &record.body {
        Body::Exit(e) => {
            if let Some(p) = &mut doc.process {
                p.exit_code = e.data.exit.code;
            }
        }
        Body::Open(e) => {
            let o = &e.data.open;
            let path = exact.text(format_args!("file.path"), &o.path);
            doc.file = Some(FileDoc {
                name: base_name(&path).to_owned(),
                directory: directory(&path).map(str::to_owned),
                inode: o.ino.map(|i| i.to_string()),
                path,
            });
            doc.error = o.error.as_deref().map(|code| ErrorDoc { code });
        }
        Body::Connect(e) => {
            let c = &e.data.connect;
            let ip = c.address.map(|a| a.to_string());
            let address = match &c.unix_path {
                Some(path) => Some(exact.text(format_args!("destination.address"), path)),
                None => ip.clone().map(Cow::Owned),
            };
            doc.destination = Some(Destination {
                ip,
                address,
                port: c.port,
            });
            doc.network = Some(network(&c.family, c.protocol.as_deref()));
            doc.error = c.error.as_deref().map(|code| ErrorDoc { code });
        }
        Body::Egress(e) => {
            let g = &e.egress;
            let ip = g.address.to_string();
            doc.destination = Some(Destination {
                address: Some(Cow::Owned(ip.clone())),
                ip: Some(ip),
                port: g.port,
            });
            doc.source = Some(Traffic {
                bytes: g.bytes,
                packets: g.packets,
            });
            let mut net = network(&g.family, Some(&g.protocol));
            net.bytes = Some(g.bytes);
            net.packets = Some(g.packets);
            doc.network = Some(net);
            doc.event.duration = Some(g.interval_ms * 1_000_000);
        }
        Body::Alert(a) => {
            let r = &a.rule;
            doc.message = Some(&r.title);
            doc.rule = Some(RuleDoc {
                id: &r.id,
                name: &r.title,
                description: &r.description,
                ruleset: &r.pack,
                category: &r.technique.tactic,
            });
            doc.event.severity = Some(severity(r.severity));
            let (tactic, tactic_id) = tactic(&r.technique.tactic);
            doc.threat = Some(Threat {
                framework: "MITRE ATT&CK",
                technique: Technique {
                    id: [&r.technique.id],
                    name: [&r.technique.name],
                },
                tactic: Tactic {
                    name: [tactic],
                    id: tactic_id.map(|id| [id]),
                },
            });
            if let Some(p) = &a.process {
                let view = ProcessView::new(p, record);
                doc.user = Some(Id {
                    id: p.uid.to_string(),
                });
                doc.process = Some(process(&view, node, &mut exact));
            }
        }
        Body::Tamper(e) => {
            doc.error = e.data.tamper.error.as_deref().map(|code| ErrorDoc { code });
        }
        Body::Bpf(e) => {
            doc.error = e.data.bpf.error.as_deref().map(|code| ErrorDoc { code });
        }
        Body::Exec(_)
        | Body::Fork(_)
        | Body::RateLimited(_)
        | Body::CgroupMkdir(_)
        | Body::CgroupRmdir(_)
        | Body::ContainerStart(_)
        | Body::ContainerStop(_)
        | Body::HookLost(_)
        | Body::Loss(_) => {}
    }
    doc.sensor.exact = exact;
    doc
}

type Classes = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Option<&'static str>,
);

/// event.kind, event.category, event.type and event.outcome.
fn classify(record: &Record) -> Classes {
    use Body::*;
    let ok = |failed: bool| Some(if failed { "failure" } else { "success" });
    match &record.body {
        Exec(_) | Fork(_) => ("event", &["process"], &["start"], Some("success")),
        Exit(_) => ("event", &["process"], &["end"], None),
        // What the process does is no longer recorded: about the process,
        // not an action of it.
        RateLimited(_) => ("event", &["process"], &["info"], None),
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
        // A program entering or leaving the kernel's paths: ECS's category
        // for operating system extensions.
        Bpf(e) => {
            let b = &e.data.bpf;
            let types: &[&str] = match &*b.cmd {
                "prog_load" => &["start"],
                "prog_detach" | "link_detach" => &["end"],
                _ => &["change"],
            };
            ("event", &["driver"], types, ok(b.ret < 0))
        }
        Tamper(e) => (
            "event",
            &["process"],
            &["access"],
            ok(e.data.tamper.ret < 0),
        ),
        Egress(_) => ("metric", &["network"], &["info"], None),
        CgroupMkdir(_) => ("event", &["configuration"], &["creation"], None),
        CgroupRmdir(_) => ("event", &["configuration"], &["deletion"], None),
        ContainerStart(_) => ("event", &["process"], &["start"], None),
        ContainerStop(_) => ("event", &["process"], &["end"], None),
        Loss(_) => ("metric", &["host"], &["info"], None),
        HookLost(h) => (
            "event",
            &["driver"],
            &["end"],
            Some(if h.hook_lost.reattached {
                "success"
            } else {
                "failure"
            }),
        ),
        Alert(_) => ("alert", &["intrusion_detection"], &["info"], None),
    }
}

fn process<'a>(view: &ProcessView<'a>, node: &str, exact: &mut Exact) -> ProcessDoc<'a> {
    let p = view.process;
    let args = view
        .args
        .map(|a| exact.args(format_args!("process.args"), a));
    let parent = view.ppid.map(|pid| {
        let image = view.parent();
        let args = image.map(|i| exact.args(format_args!("process.parent.args"), &i.args));
        Parent {
            pid,
            executable: image
                .map(|i| exact.text(format_args!("process.parent.executable"), &i.exe)),
            command_line: args.as_deref().map(command_line),
            args,
        }
    });
    ProcessDoc {
        pid: p.pid,
        thread: Thread { id: p.tid },
        name: exact.text(format_args!("process.name"), &p.comm),
        real_user: Id {
            id: p.uid.to_string(),
        },
        real_group: Id {
            id: p.gid.to_string(),
        },
        user: view.euid.map(|id| Id { id: id.to_string() }),
        group: view.egid.map(|id| Id { id: id.to_string() }),
        entity_id: view.entity_id(node),
        vpid: view.ns_pid,
        executable: view
            .exe
            .map(|e| exact.text(format_args!("process.executable"), e)),
        command_line: args.as_deref().map(command_line),
        args_count: args.as_ref().map(Vec::len),
        args,
        parent,
        exit_code: None,
    }
}

fn container_docs(c: &ContainerRef) -> (Option<ContainerDoc<'_>>, Option<Orchestrator<'_>>) {
    let meta = c.meta.as_ref();
    let container = ContainerDoc {
        id: &c.id,
        runtime: &c.runtime,
        name: meta.and_then(|m| m.name.as_deref()),
        image: meta
            .and_then(|m| m.image.as_deref())
            .map(|name| Name { name }),
        security_context: meta
            .is_some_and(|m| m.privileged)
            .then_some(SecurityContext { privileged: true }),
    };
    let orchestrator = c.pod_uid.as_deref().map(|id| Orchestrator {
        kind: "kubernetes",
        resource: Resource {
            kind: "pod",
            id,
            name: meta.and_then(|m| m.pod_name.as_deref()),
        },
        namespace: meta.and_then(|m| m.pod_namespace.as_deref()),
    });
    (Some(container), orchestrator)
}

fn network<'a>(family: &str, protocol: Option<&'a str>) -> Network<'a> {
    Network {
        direction: "egress",
        kind: match family {
            "inet" => Some("ipv4"),
            "inet6" => Some("ipv6"),
            _ => None,
        },
        transport: protocol,
        bytes: None,
        packets: None,
    }
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
