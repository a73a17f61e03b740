//! OCSF 1.4.0 events: Process Activity (1007), File System Activity
//! (1001), Network Activity (4001) and, for alerts, Detection Finding
//! (2004), with the host and container profiles. Records OCSF has no class
//! for (cgroup and container lifecycle, rate limits, loss) are Base Events
//! (0). What no attribute holds goes to `unmapped`, OCSF's place for it,
//! exact bytes of non-UTF-8 text included (`unmapped.exact`). Typed and
//! borrowing, as the ECS one. tests/validate/formats.py checks the output
//! against the schema's own export (the replay and kernel tests run it).
use std::{borrow::Cow, sync::Arc};

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{
    CommandLine, Exact, Native, PRODUCT, ProcessView, base_name, container, directory, epoch_ms,
    tactic,
};
use crate::{
    container::ContainerRef,
    event::{Body, Record, Severity, Source},
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

#[skip_serializing_none]
#[derive(Serialize)]
struct Event<'a> {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: &'static str,
    type_uid: u32,
    type_name: String,
    severity_id: u32,
    severity: &'static str,
    status_id: Option<u32>,
    status: Option<&'static str>,
    status_detail: Option<&'a str>,
    time: u64,
    metadata: Metadata<'a>,
    device: Device<'a>,
    message: Option<&'a str>,
    actor: Option<Actor<'a>>,
    process: Option<ProcessObj<'a>>,
    exit_code: Option<u8>,
    file: Option<FileObj<'a>>,
    src_endpoint: Option<Endpoint<'a>>,
    dst_endpoint: Option<Endpoint<'a>>,
    connection_info: Option<ConnectionInfo<'a>>,
    traffic: Option<Traffic>,
    duration: Option<u64>,
    finding_info: Option<FindingInfo<'a>>,
    is_alert: Option<bool>,
    evidences: Option<[Evidence<'a>; 1]>,
    unmapped: Unmapped<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'static str,
    product: Product,
    profiles: &'static [&'static str],
    original_time: &'a str,
    log_name: &'static str,
}

#[derive(Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct Device<'a> {
    hostname: &'a str,
    type_id: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Container profile: the container of a record without a process.
    container: Option<ContainerObj<'a>>,
}

#[derive(Serialize)]
struct Actor<'a> {
    process: ProcessObj<'a>,
}

/// A process object; a launch's actor (the parent) has only some fields.
#[skip_serializing_none]
#[derive(Serialize, Clone)]
struct ProcessObj<'a> {
    pid: u32,
    tid: Option<u32>,
    name: Option<Cow<'a, str>>,
    user: Option<User>,
    uid: Option<String>,
    file: Option<FileObj<'a>>,
    cmd_line: Option<CommandLine<'a>>,
    parent_process: Option<Box<ProcessObj<'a>>>,
    /// Nearest first, as OCSF orders it; only on the top-level process
    /// (OCSF's recommendation), not its parent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestry: Vec<ProcessEntity<'a>>,
    /// Container profile.
    container: Option<ContainerObj<'a>>,
    /// Container profile: the pid in the container's pid namespace.
    namespace_pid: Option<u32>,
}

impl<'a> ProcessObj<'a> {
    fn pid_only(pid: u32) -> Self {
        Self {
            pid,
            tid: None,
            name: None,
            user: None,
            uid: None,
            file: None,
            cmd_line: None,
            parent_process: None,
            ancestry: Vec::new(),
            container: None,
            namespace_pid: None,
        }
    }
}

/// An ancestor, as OCSF's process entity. Up to eight per record: what
/// can be written straight into the document is (`uid`, as `cmd_line`
/// everywhere).
#[derive(Serialize, Clone)]
struct ProcessEntity<'a> {
    pid: u32,
    #[serde(serialize_with = "serialize_display")]
    uid: AncestorUid<'a>,
    name: Cow<'a, str>,
    path: Cow<'a, str>,
    cmd_line: CommandLine<'a>,
}

/// `node:pid:<start ticks>t`, as `uid` of a process known by its ticks.
#[derive(Clone, Copy)]
struct AncestorUid<'a> {
    node: &'a str,
    pid: u32,
    start_ticks: u64,
}

impl std::fmt::Display for AncestorUid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}t", self.node, self.pid, self.start_ticks)
    }
}

fn serialize_display<S: serde::Serializer>(
    v: &impl std::fmt::Display,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(Serialize, Clone)]
struct User {
    uid: String,
}

#[skip_serializing_none]
#[derive(Serialize, Clone)]
struct FileObj<'a> {
    path: Cow<'a, str>,
    name: String,
    type_id: u32,
    parent_folder: Option<String>,
    uid: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Default)]
struct Endpoint<'a> {
    hostname: Option<&'a str>,
    ip: Option<String>,
    port: Option<u16>,
    /// Container profile: egress, which has no process, says it here.
    container: Option<ContainerObj<'a>>,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct ConnectionInfo<'a> {
    direction_id: u32,
    direction: &'static str,
    protocol_ver_id: Option<u32>,
    protocol_name: Option<&'a str>,
    protocol_num: Option<u32>,
}

#[derive(Serialize)]
struct Traffic {
    bytes_out: u64,
    packets_out: u64,
}

#[derive(Serialize)]
struct FindingInfo<'a> {
    uid: String,
    title: &'a str,
    desc: &'a str,
    types: [&'a str; 1],
    analytic: Analytic<'a>,
    attacks: [Attack<'a>; 1],
}

#[derive(Serialize)]
struct Analytic<'a> {
    uid: &'a str,
    name: &'a str,
    type_id: u32,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Attack<'a> {
    technique: UidName<'a>,
    tactic: TacticObj<'a>,
    version: &'static str,
}

#[derive(Serialize)]
struct UidName<'a> {
    uid: &'a str,
    name: &'a str,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct TacticObj<'a> {
    name: &'a str,
    uid: Option<&'static str>,
}

#[derive(Serialize)]
struct Evidence<'a> {
    process: ProcessObj<'a>,
}

/// What of a container OCSF has attributes for. Not the image: OCSF's
/// image object requires the image id, which the runtimes' state the
/// sensor reads does not give; its reference stays in `unmapped.container`.
#[skip_serializing_none]
#[derive(Serialize, Clone)]
struct ContainerObj<'a> {
    uid: &'a str,
    runtime: &'a str,
    name: Option<&'a str>,
    orchestrator: Option<&'static str>,
    pod_uuid: Option<&'a str>,
}

/// `unmapped`: the record's own fields no attribute holds.
#[skip_serializing_none]
#[derive(Serialize)]
struct Unmapped<'a> {
    kind: &'static str,
    schema: u32,
    boot_ns: u64,
    source: Source,
    #[serde(flatten)]
    native: Native<'a>,
    /// The record's container whole (image, pod, mounts, privileges, or
    /// why it is `unknown`), as the native schema writes it.
    #[serde(serialize_with = "ContainerRef::cached")]
    container: Option<Arc<ContainerRef>>,
    unix_path: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Exact::is_empty")]
    exact: Exact,
}

/// One OCSF event.
pub(super) fn event<'a>(record: &'a Record, node: &'a str) -> impl Serialize + 'a {
    let mut exact = Exact::default();
    let kind = record.kind().name();
    let view = ProcessView::of(record);
    let native_container = container(record);
    // An `unknown` container names none: no profile, only `unmapped`.
    let container = native_container
        .filter(|c| c.id != "unknown")
        .map(|c| container_obj(c));
    let mut ev = Event {
        class_uid: 0,
        class_name: "",
        category_uid: 0,
        category_name: "",
        activity_id: 0,
        activity_name: "",
        type_uid: 0,
        type_name: String::new(),
        severity_id: 1,
        severity: "",
        status_id: None,
        status: None,
        status_detail: None,
        time: epoch_ms(&record.time).unwrap_or(0),
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: PRODUCT,
                vendor_name: PRODUCT,
                version: env!("CARGO_PKG_VERSION"),
            },
            profiles: if container.is_some() {
                &["host", "container"]
            } else {
                &["host"]
            },
            original_time: &record.time,
            log_name: kind,
        },
        device: Device {
            hostname: node,
            type_id: 0,
            kind: "Unknown",
            container: None,
        },
        message: None,
        actor: None,
        process: None,
        exit_code: None,
        file: None,
        src_endpoint: None,
        dst_endpoint: None,
        connection_info: None,
        traffic: None,
        duration: None,
        finding_info: None,
        is_alert: None,
        evidences: None,
        unmapped: Unmapped {
            kind,
            schema: record.schema,
            boot_ns: record.boot_ns,
            source: record.source,
            native: Native::of(record),
            container: native_container.cloned(),
            unix_path: None,
            exact: Exact::default(),
        },
    };
    let mut status: Option<(bool, Option<&'a str>)> = None;
    // Where the container profile puts the container: on the process that
    // acted, else on the endpoint that sent (egress), else on the device.
    let mut placed = false;
    let (class, activity_id, activity_name) = match &record.body {
        Body::Exec(_) | Body::Fork(_) => {
            // The new process is the target; its creator, the parent, acts.
            let v = view.as_ref().expect("a kernel event has a process");
            ev.process = Some(process(v, node, &mut exact, "process", container.as_ref()));
            placed = true;
            let parent = v.ppid.map(|ppid| {
                let mut p = ProcessObj::pid_only(ppid);
                if let Some(image) = v.parent() {
                    let path = exact.text(format_args!("actor.process.file.path"), &image.exe);
                    exact.keep_args(format_args!("actor.process.args"), &image.args);
                    p.name = Some(Cow::Owned(base_name(&path).to_owned()));
                    p.cmd_line = Some(CommandLine(&image.args));
                    p.file = Some(file_obj(path));
                }
                p
            });
            ev.actor = parent.map(|process| Actor { process });
            status = Some((true, None));
            (PROCESS_ACTIVITY, 1, "Launch")
        }
        Body::Exit(e) => {
            let v = view.as_ref().expect("a kernel event has a process");
            ev.process = Some(process(v, node, &mut exact, "process", container.as_ref()));
            ev.exit_code = e.data.exit.code;
            (PROCESS_ACTIVITY, 2, "Terminate")
        }
        Body::Open(e) => {
            let o = &e.data.open;
            let mut file = file_obj(exact.text(format_args!("file.path"), &o.path));
            file.uid = o.ino.map(|i| i.to_string());
            ev.file = Some(file);
            status = Some((o.succeeded(), o.error.as_deref()));
            if o.creates() {
                (FILE_SYSTEM_ACTIVITY, 1, "Create")
            } else {
                (FILE_SYSTEM_ACTIVITY, 14, "Open")
            }
        }
        Body::Connect(e) => {
            let c = &e.data.connect;
            // Only IP destinations are network endpoints; a unix socket's
            // path has no attribute (it goes to `unmapped`), and an empty
            // endpoint would not be one.
            ev.dst_endpoint = c.address.map(|a| Endpoint {
                ip: Some(a.to_string()),
                port: c.port,
                ..Endpoint::default()
            });
            ev.unmapped.unix_path = c
                .unix_path
                .as_ref()
                .map(|p| exact.text(format_args!("unmapped.unix_path"), p));
            ev.src_endpoint = Some(Endpoint {
                hostname: Some(node),
                ..Endpoint::default()
            });
            ev.connection_info = Some(connection_info(&c.family, c.protocol.as_deref()));
            let ok = c.ret == 0 || c.error.as_deref() == Some("EINPROGRESS");
            status = Some((ok, c.error.as_deref()));
            match c.error.as_deref() {
                _ if ok => (NETWORK_ACTIVITY, 1, "Open"),
                Some("ECONNREFUSED") => (NETWORK_ACTIVITY, 5, "Refuse"),
                _ => (NETWORK_ACTIVITY, 4, "Fail"),
            }
        }
        Body::Egress(e) => {
            let g = &e.egress;
            ev.dst_endpoint = Some(Endpoint {
                ip: Some(g.address.to_string()),
                port: g.port,
                ..Endpoint::default()
            });
            ev.src_endpoint = Some(Endpoint {
                hostname: Some(node),
                container: container.clone(),
                ..Endpoint::default()
            });
            placed = true;
            ev.connection_info = Some(connection_info(&g.family, Some(&g.protocol)));
            ev.traffic = Some(Traffic {
                bytes_out: g.bytes,
                packets_out: g.packets,
            });
            ev.duration = Some(g.interval_ms);
            (NETWORK_ACTIVITY, 6, "Traffic")
        }
        Body::Alert(a) => {
            let r = &a.rule;
            ev.severity_id = severity(r.severity);
            ev.message = Some(&r.title);
            let (tactic, tactic_uid) = tactic(&r.technique.tactic);
            ev.finding_info = Some(FindingInfo {
                uid: format!("{node}:{}:{}", r.id, record.boot_ns),
                title: &r.title,
                desc: &r.description,
                types: [&r.pack],
                analytic: Analytic {
                    uid: &r.id,
                    name: &r.title,
                    type_id: 1,
                    kind: "Rule",
                },
                attacks: [Attack {
                    technique: UidName {
                        uid: &r.technique.id,
                        name: &r.technique.name,
                    },
                    tactic: TacticObj {
                        name: tactic,
                        uid: tactic_uid,
                    },
                    version: "15",
                }],
            });
            ev.is_alert = Some(true);
            if let Some(p) = &a.process {
                let v = ProcessView::new(p, record);
                let process = process(&v, node, &mut exact, "actor.process", container.as_ref());
                placed = true;
                ev.evidences = Some([Evidence {
                    process: process.clone(),
                }]);
                ev.actor = Some(Actor { process });
            }
            (DETECTION_FINDING, 1, "Create")
        }
        // The sensor is the target; the caller acts.
        Body::Tamper(e) => {
            let t = &e.data.tamper;
            ev.process = Some(ProcessObj::pid_only(t.target_pid));
            status = Some((t.ret == 0, t.error.as_deref()));
            match &*t.syscall {
                "ptrace" | "process_vm_writev" => (PROCESS_ACTIVITY, 4, "Inject"),
                "process_vm_readv" => (PROCESS_ACTIVITY, 3, "Open"),
                _ => (PROCESS_ACTIVITY, 99, "Other"),
            }
        }
        // OCSF has no class for BPF programs; the details go to unmapped.
        Body::Bpf(e) => {
            let b = &e.data.bpf;
            status = Some((b.ret >= 0, b.error.as_deref()));
            (BASE_EVENT, 99, "Other")
        }
        // Records are missing from here on, as for a loss.
        Body::HookLost(h) => {
            ev.severity_id = 4;
            status = Some((h.hook_lost.reattached, h.hook_lost.error.as_deref()));
            (BASE_EVENT, 99, "Other")
        }
        // Both say records are missing from here on.
        Body::Loss(_) | Body::RateLimited(_) => {
            ev.severity_id = 3;
            (BASE_EVENT, 99, "Other")
        }
        Body::CgroupMkdir(_)
        | Body::CgroupRmdir(_)
        | Body::ContainerStart(_)
        | Body::ContainerStop(_) => (BASE_EVENT, 99, "Other"),
    };
    // Everywhere but a launch, the process acts (an exit is reflexive).
    if ev.actor.is_none()
        && let Some(v) = &view
    {
        ev.actor = Some(Actor {
            process: process(v, node, &mut exact, "actor.process", container.as_ref()),
        });
        placed = true;
    }
    if !placed {
        ev.device.container = container;
    }
    let Class(class_uid, class_name, category_uid, category_name) = class;
    ev.class_uid = class_uid;
    ev.class_name = class_name;
    ev.category_uid = category_uid;
    ev.category_name = category_name;
    ev.activity_id = activity_id;
    ev.activity_name = activity_name;
    ev.type_uid = class_uid * 100 + activity_id;
    ev.type_name = format!("{class_name}: {activity_name}");
    ev.severity = severity_name(ev.severity_id);
    if let Some((ok, detail)) = status {
        ev.status_id = Some(if ok { 1 } else { 2 });
        ev.status = Some(if ok { "Success" } else { "Failure" });
        ev.status_detail = detail;
    }
    ev.unmapped.exact = exact;
    ev
}

/// An OCSF process object; `at` names where it goes, for exact bytes.
fn process<'a>(
    view: &ProcessView<'a>,
    node: &'a str,
    exact: &mut Exact,
    at: &str,
    container: Option<&ContainerObj<'a>>,
) -> ProcessObj<'a> {
    let p = view.process;
    let parent = view.ppid.map(|ppid| {
        let mut parent = ProcessObj::pid_only(ppid);
        parent.file = view.parent().map(|image| {
            file_obj(exact.text(format_args!("{at}.parent_process.file.path"), &image.exe))
        });
        Box::new(parent)
    });
    ProcessObj {
        pid: p.pid,
        tid: Some(p.tid),
        name: Some(exact.text(format_args!("{at}.name"), &p.comm)),
        user: Some(User {
            uid: p.uid.to_string(),
        }),
        uid: view.entity_id(node),
        file: view
            .exe
            .map(|exe| file_obj(exact.text(format_args!("{at}.file.path"), exe))),
        cmd_line: view.args.map(|args| {
            exact.keep_args(format_args!("{at}.args"), args);
            CommandLine(args)
        }),
        parent_process: parent,
        ancestry: p
            .ancestors
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let path = exact.text(format_args!("{at}.ancestry.{i}.path"), &a.image.exe);
                exact.keep_args(format_args!("{at}.ancestry.{i}.args"), &a.image.args);
                ProcessEntity {
                    pid: a.pid,
                    uid: AncestorUid {
                        node,
                        pid: a.pid,
                        start_ticks: a.start_ticks,
                    },
                    name: base_name_cow(&path),
                    cmd_line: CommandLine(&a.image.args),
                    path,
                }
            })
            .collect(),
        container: container.cloned(),
        namespace_pid: container.and(view.ns_pid),
    }
}

/// The base name of a path, borrowed when the path is.
fn base_name_cow<'a>(path: &Cow<'a, str>) -> Cow<'a, str> {
    match path {
        Cow::Borrowed(p) => Cow::Borrowed(base_name(p)),
        Cow::Owned(p) => Cow::Owned(base_name(p).to_owned()),
    }
}

fn file_obj(path: Cow<'_, str>) -> FileObj<'_> {
    FileObj {
        name: base_name(&path).to_owned(),
        parent_folder: directory(&path).map(str::to_owned),
        type_id: 0,
        uid: None,
        path,
    }
}

fn container_obj(c: &ContainerRef) -> ContainerObj<'_> {
    let meta = c.meta.as_ref();
    ContainerObj {
        uid: &c.id,
        runtime: &c.runtime,
        name: meta.and_then(|m| m.name.as_deref()),
        orchestrator: c.pod_uid.as_ref().map(|_| "Kubernetes"),
        // OCSF types it a UUID, as Kubernetes makes pod uids; anything
        // else (a hand-made record) stays in `unmapped.container` only.
        pod_uuid: c.pod_uid.as_deref().filter(|u| is_uuid(u)),
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn connection_info<'a>(family: &str, protocol: Option<&'a str>) -> ConnectionInfo<'a> {
    ConnectionInfo {
        direction_id: 2,
        direction: "Outbound",
        protocol_ver_id: match family {
            "inet" => Some(4),
            "inet6" => Some(6),
            _ => None,
        },
        protocol_name: protocol,
        protocol_num: protocol.and_then(|p| match p {
            "tcp" => Some(6),
            "udp" => Some(17),
            "icmp" => Some(1),
            "icmpv6" => Some(58),
            "sctp" => Some(132),
            _ => None,
        }),
    }
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
