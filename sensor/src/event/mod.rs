//! The event schema: what the sensor writes, one JSON object per line.
//! Documented field by field in docs/EVENTS.md; bump [`SCHEMA_VERSION`] on any
//! incompatible change. Everything that reads or writes records stands on
//! this module; it names no collector, rule or output.
//!
//! - `kind`: the one table of record kinds ([`Kind`], [`Body`])
//! - `payload`: the fields of the events processes cause (exec, open, ...)
//! - `derived`: records the sensor derives (egress, container lifecycle, loss)
//! - `alert`: what a rule match writes
mod alert;
mod derived;
mod kind;
mod payload;

use std::{borrow::Cow, sync::Arc};

use serde::{Deserialize, Serialize};

pub use alert::{Alert, RuleInfo, Severity, Technique};
pub use derived::{
    ContainerLifecycle, EgressData, EgressRecord, HookLost, HookLostData, Loss, LossData,
};
pub use kind::{Body, Kind, RULED_KINDS};
pub use payload::{
    AddressSource, Bpf, BpfData, Cgroup, CgroupData, Connect, ConnectData, Exec, ExecData, Exit,
    ExitData, Fork, ForkData, Open, OpenData, PathSource, RateLimited, RateLimitedData, Tamper,
    TamperData,
};

use crate::{
    container::ContainerRef,
    process::{Ancestry, ExecImage},
    text::Text,
};

/// Version of the JSON schema, carried in every record as `schema`.
pub const SCHEMA_VERSION: u32 = 1;

/// One line of output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Wall-clock time, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// Which collector saw it; absent for eBPF.
    #[serde(default, skip_serializing_if = "Source::is_ebpf")]
    pub source: Source,
    /// Kernel `CLOCK_BOOTTIME` ns: exact ordering across records.
    pub boot_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// The collector a record comes from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The kernel programs (the default, not written out).
    #[default]
    Ebpf,
    /// The polling collector: snapshots of the process and socket tables
    /// and file notifications (docs/POLLING.md).
    Poll,
}

impl Source {
    fn is_ebpf(&self) -> bool {
        *self == Self::Ebpf
    }
}

impl Record {
    /// Its kind.
    pub const fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The process that acted, for the events processes cause.
    pub fn process(&self) -> Option<&Process> {
        self.body.process()
    }

    /// The container it is about, as attribution shares it.
    pub fn container(&self) -> Option<&Arc<ContainerRef>> {
        self.body.container()
    }
}

/// A kernel event: the acting process, its cgroups and container, the
/// kind's fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event<T> {
    /// The process that acted.
    pub process: Process,
    /// Its cgroups.
    pub cgroup: CgroupRef,
    /// Its container (`id: "host"` for host processes), set by enrichment.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ContainerRef::cached"
    )]
    pub container: Option<Arc<ContainerRef>>,
    /// Kind-specific fields, under the kind's name in JSON.
    #[serde(flatten)]
    pub data: T,
}

/// What a record is attributed to. Every kind's fields answer ([`Body`]
/// asks them), and [`Event`] answers for all the events processes cause,
/// so a new kind of those needs nothing here.
pub trait Attributed {
    /// The process that acted.
    fn process(&self) -> Option<&Process> {
        None
    }

    /// The container it happened in or is about.
    fn container(&self) -> Option<&Arc<ContainerRef>> {
        None
    }

    /// What enrichment fills in, for the events processes cause.
    fn subject_mut(&mut self) -> Option<Subject<'_>> {
        None
    }
}

/// The parts of an event that attribution reads (the kernel's pid and
/// cgroup) and completes (the process's context and the container).
pub struct Subject<'a> {
    /// The acting process: ppid, start, image and ancestry are filled in.
    pub process: &'a mut Process,
    /// Its cgroups, as the kernel reported them.
    pub cgroup: &'a CgroupRef,
    /// Set from the cgroup and the process table.
    pub container: &'a mut Option<Arc<ContainerRef>>,
}

impl<T> Event<T> {
    /// What enrichment fills in.
    pub fn subject(&mut self) -> Subject<'_> {
        Subject {
            process: &mut self.process,
            cgroup: &self.cgroup,
            container: &mut self.container,
        }
    }
}

impl<T> Attributed for Event<T> {
    fn process(&self) -> Option<&Process> {
        Some(&self.process)
    }

    fn container(&self) -> Option<&Arc<ContainerRef>> {
        self.container.as_ref()
    }

    fn subject_mut(&mut self) -> Option<Subject<'_>> {
        Some(self.subject())
    }
}

/// The acting process as the header describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Thread name (`comm`), at most 15 bytes.
    pub comm: Text,
    /// Parent pid (from the process table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// Start, clock ticks since boot: with `pid`, a stable identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// Executable and argv (from the process table).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub image: Option<Arc<ExecImage>>,
    /// Parent chain, nearest first, up to 8 or the container's entry point.
    #[serde(default, skip_serializing_if = "Ancestry::is_empty")]
    pub ancestors: Ancestry,
}

/// cgroup identity of the acting task.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupRef {
    /// cgroup2 id (inode of the cgroup2 directory).
    pub id: u64,
    /// kernfs id in the tracked v1 hierarchy on v1/hybrid hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1_id: Option<u64>,
}

/// A name from a fixed vocabulary (syscalls, flags, errno names): static
/// when decoded, so the busiest records allocate none; owned when read back
/// from JSON or made for a value outside the vocabulary.
pub type Name = Cow<'static, str>;

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
