//! How a record is written: the native schema (docs/EVENTS.md), Elastic
//! Common Schema or OCSF (mappings in docs/OUTPUTS.md). One encoder serves
//! every destination, so each record is encoded once.
use std::{
    borrow::Cow,
    collections::BTreeMap,
    fmt::{self, Write as _},
    io,
    str::FromStr,
    sync::Arc,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::Serialize;

use crate::{
    container::ContainerRef,
    event::{
        Body, Bpf, Cgroup, CgroupRef, Connect, EgressData, Event, Exec, Exit, Fork, HookLost, Loss,
        Open, Process, RateLimited, Record, Tamper,
    },
    process::ExecImage,
    text::Text,
};

mod ecs;
mod ocsf;

/// `--format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The sensor's own schema, lossless.
    #[default]
    Native,
    /// Elastic Common Schema.
    Ecs,
    /// Open Cybersecurity Schema Framework.
    Ocsf,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Self::Native),
            "ecs" => Ok(Self::Ecs),
            "ocsf" => Ok(Self::Ocsf),
            _ => Err(format!(
                "unknown format {s:?}: expected native, ecs or ocsf"
            )),
        }
    }
}

/// Turns records into JSON objects, naming the node on each.
pub struct Encoder {
    format: Format,
    node: String,
    /// `{"node":"<name>",`: the native prefix; empty for [`Encoder::plain`].
    node_prefix: Vec<u8>,
}

impl Encoder {
    /// Encodes as `format`, naming `node`.
    pub fn new(format: Format, node: &str) -> Self {
        let name = serde_json::to_string(node).expect("a string serializes");
        Self {
            format,
            node: node.to_owned(),
            node_prefix: format!("{{\"node\":{name},").into_bytes(),
        }
    }

    /// Native records as they are, naming no node (replay, benchmarks).
    pub fn plain() -> Self {
        Self {
            format: Format::Native,
            node: String::new(),
            node_prefix: Vec::new(),
        }
    }

    /// Appends one JSON object (no newline) to `out`.
    pub fn encode(&mut self, record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
        match self.format {
            Format::Native if self.node_prefix.is_empty() => serde_json::to_writer(out, record)?,
            Format::Native => {
                // `{"node":"<name>"`, then the record's own object, whose
                // opening brace becomes the comma: no second copy of a
                // record that can be kilobytes (ancestors' arguments).
                out.extend_from_slice(&self.node_prefix[..self.node_prefix.len() - 1]);
                let brace = out.len();
                serde_json::to_writer(&mut *out, record)?;
                out[brace] = b',';
            }
            Format::Ecs => serde_json::to_writer(out, &ecs::document(record, &self.node))?,
            Format::Ocsf => serde_json::to_writer(out, &ocsf::event(record, &self.node))?,
        }
        Ok(())
    }
}

/// Exact bytes of text that is not UTF-8, by the field it was mapped to:
/// the mapped field holds readable (U+FFFD-replaced) text, this the truth.
#[derive(Default, Serialize)]
#[serde(transparent)]
struct Exact(BTreeMap<String, String>);

impl Exact {
    /// `t` as a string for the field `field`, kept exactly here if it is
    /// not UTF-8. Borrowed when it is; the key is only formatted then.
    fn text<'t>(&mut self, field: fmt::Arguments<'_>, t: &'t Text) -> Cow<'t, str> {
        match std::str::from_utf8(t.as_bytes()) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                self.0
                    .insert(field.to_string(), STANDARD.encode(t.as_bytes()));
                Cow::Owned(t.lossy().into_owned())
            }
        }
    }

    fn args<'t>(&mut self, field: fmt::Arguments<'_>, args: &'t [Text]) -> Vec<Cow<'t, str>> {
        args.iter()
            .enumerate()
            .map(|(i, a)| self.text(format_args!("{field}.{i}"), a))
            .collect()
    }

    /// Keeps the exact bytes of those of `args` that are not UTF-8, for
    /// argv written as a [`CommandLine`].
    fn keep_args(&mut self, field: fmt::Arguments<'_>, args: &[Text]) {
        for (i, a) in args.iter().enumerate() {
            self.text(format_args!("{field}.{i}"), a);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The record's kind-specific native fields (`"open": {...}` and its
/// `cgroup`), flattened into the custom or unmapped section: the parts of
/// a record no standard field holds. The process, its ancestry and the
/// container are mapped, so they are left out.
#[derive(Serialize)]
#[serde(untagged)]
enum Native<'a> {
    Exec(KernelEvent<'a, Exec>),
    Fork(KernelEvent<'a, Fork>),
    Exit(KernelEvent<'a, Exit>),
    Open(KernelEvent<'a, Open>),
    Connect(KernelEvent<'a, Connect>),
    Cgroup(KernelEvent<'a, Cgroup>),
    RateLimited(KernelEvent<'a, RateLimited>),
    Bpf(KernelEvent<'a, Bpf>),
    Tamper(KernelEvent<'a, Tamper>),
    Loss(&'a Loss),
    HookLost(&'a HookLost),
    Lifecycle {
        #[serde(skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
    },
    Egress {
        egress: &'a EgressData,
        cgroup: &'a CgroupRef,
    },
    Alert {
        alert: AlertNative<'a>,
    },
}

#[derive(Serialize)]
struct KernelEvent<'a, T> {
    #[serde(flatten)]
    data: &'a T,
    cgroup: &'a CgroupRef,
}

#[derive(Serialize)]
struct AlertNative<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    steps: &'a [String],
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    fields: &'a serde_json::Map<String, serde_json::Value>,
    evidence: &'a [Record],
}

impl<'a> Native<'a> {
    fn of(record: &'a Record) -> Self {
        fn k<'a, T>(e: &'a Event<T>) -> KernelEvent<'a, T> {
            KernelEvent {
                data: &e.data,
                cgroup: &e.cgroup,
            }
        }
        match &record.body {
            Body::Exec(e) => Self::Exec(k(e)),
            Body::Fork(e) => Self::Fork(k(e)),
            Body::Exit(e) => Self::Exit(k(e)),
            Body::Open(e) => Self::Open(k(e)),
            Body::Connect(e) => Self::Connect(k(e)),
            Body::CgroupMkdir(e) | Body::CgroupRmdir(e) => Self::Cgroup(k(e)),
            Body::RateLimited(e) => Self::RateLimited(k(e)),
            Body::Bpf(e) => Self::Bpf(k(e)),
            Body::Tamper(e) => Self::Tamper(k(e)),
            Body::Loss(l) => Self::Loss(l),
            Body::HookLost(h) => Self::HookLost(h),
            Body::ContainerStart(c) | Body::ContainerStop(c) => Self::Lifecycle { pid: c.pid },
            Body::Egress(e) => Self::Egress {
                egress: &e.egress,
                cgroup: &e.cgroup,
            },
            Body::Alert(a) => Self::Alert {
                alert: AlertNative {
                    steps: &a.steps,
                    fields: &a.fields,
                    evidence: &a.evidence,
                },
            },
        }
    }
}

/// What every format says of the acting process, gathered from the record
/// (an exec's own path and argv win over the process table's).
struct ProcessView<'a> {
    process: &'a Process,
    exe: Option<&'a Text>,
    args: Option<&'a [Text]>,
    ppid: Option<u32>,
    /// Effective ids, known at exec.
    euid: Option<u32>,
    egid: Option<u32>,
    ns_pid: Option<u32>,
    start_boottime_ns: Option<u64>,
}

impl<'a> ProcessView<'a> {
    fn of(record: &'a Record) -> Option<Self> {
        let process = record.process()?;
        Some(Self::new(process, record))
    }

    fn new(process: &'a Process, record: &'a Record) -> Self {
        let image = process.image.as_deref();
        let mut view = Self {
            process,
            exe: image.map(|i: &ExecImage| &i.exe),
            args: image.map(|i| i.args.as_slice()),
            ppid: process.ppid,
            euid: None,
            egid: None,
            ns_pid: None,
            start_boottime_ns: None,
        };
        match &record.body {
            Body::Exec(e) => {
                let x = &e.data.exec;
                view.exe = Some(&x.path);
                view.args = Some(&x.args);
                view.ppid = Some(x.ppid);
                view.euid = Some(x.euid);
                view.egid = Some(x.egid);
                view.ns_pid = Some(x.ns_pid);
                view.start_boottime_ns = Some(x.start_boottime_ns);
            }
            Body::Fork(e) => {
                view.ppid = Some(e.data.fork.ppid);
                view.start_boottime_ns = Some(e.data.fork.start_boottime_ns);
            }
            Body::Exit(e) => view.start_boottime_ns = Some(e.data.exit.start_boottime_ns),
            _ => {}
        }
        view
    }

    /// The parent's image, when the process table knew it.
    fn parent(&self) -> Option<&'a ExecImage> {
        let first = self.process.ancestors.first()?;
        (Some(first.pid) == self.ppid).then_some(&*first.image)
    }

    /// A stable identity across pid reuse: pid and start.
    fn entity_id(&self, node: &str) -> Option<String> {
        let p = self.process;
        match (self.start_boottime_ns, p.start_ticks) {
            (Some(ns), _) => Some(format!("{node}:{}:{ns}ns", p.pid)),
            (None, Some(ticks)) => Some(format!("{node}:{}:{ticks}t", p.pid)),
            _ => None,
        }
    }
}

/// argv as one line, each argument quoted only where it needs to be.
fn command_line<S: AsRef<str>>(args: &[S]) -> String {
    let mut line = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        quote(&mut line, a.as_ref()).expect("a String takes any text");
    }
    line
}

/// An argument as a shell reads it back as one word: bare when it is only
/// characters no shell splits on or expands, else in single quotes.
fn quote(out: &mut impl fmt::Write, a: &str) -> fmt::Result {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return out.write_str(a);
    }
    out.write_char('\'')?;
    for (i, part) in a.split('\'').enumerate() {
        if i > 0 {
            out.write_str(r"'\''")?;
        }
        out.write_str(part)?;
    }
    out.write_char('\'')
}

/// [`command_line`] of raw argv, written straight into the document rather
/// than built first: ancestors' argv, many per record, would cost several
/// allocations each. Text that is not UTF-8 reads with U+FFFD here; the
/// caller keeps its exact bytes.
#[derive(Clone, Copy)]
struct CommandLine<'a>(&'a [Text]);

impl fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            quote(f, &a.lossy())?;
        }
        Ok(())
    }
}

impl Serialize for CommandLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The last component of a path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The directory of a path, for absolute paths with one.
fn directory(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The container of a record, unless the host.
fn container(record: &Record) -> Option<&Arc<ContainerRef>> {
    record.container().filter(|c| c.id != "host")
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(time: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(time).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// The product, as outputs name it.
pub const PRODUCT: &str = "runtime-sensor";

/// `{"name": ...}`: ECS's image.
#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

/// ATT&CK Enterprise tactics (v15): the short name rules give, the name
/// and the id both standards expect.
const TACTICS: [(&str, &str, &str); 14] = [
    ("reconnaissance", "Reconnaissance", "TA0043"),
    ("resource-development", "Resource Development", "TA0042"),
    ("initial-access", "Initial Access", "TA0001"),
    ("execution", "Execution", "TA0002"),
    ("persistence", "Persistence", "TA0003"),
    ("privilege-escalation", "Privilege Escalation", "TA0004"),
    ("defense-evasion", "Defense Evasion", "TA0005"),
    ("credential-access", "Credential Access", "TA0006"),
    ("discovery", "Discovery", "TA0007"),
    ("lateral-movement", "Lateral Movement", "TA0008"),
    ("collection", "Collection", "TA0009"),
    ("command-and-control", "Command and Control", "TA0011"),
    ("exfiltration", "Exfiltration", "TA0010"),
    ("impact", "Impact", "TA0040"),
];

/// A rule's tactic as ATT&CK names it, and its id; one ATT&CK does not
/// know (a local rule's own word) keeps its name and has no id.
fn tactic(short: &str) -> (&str, Option<&'static str>) {
    match TACTICS.iter().find(|(s, _, _)| *s == short) {
        Some((_, name, id)) => (name, Some(id)),
        None => (short, None),
    }
}

#[cfg(test)]
mod tests;
