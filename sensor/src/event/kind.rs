//! The one table of record kinds. Each row gives a kind's name in the
//! schema (`kind`, `evt.type`, metric and loss labels), its fields, the
//! kernel's discriminant where the kernel sends it, and whether rules
//! evaluate it. [`Kind`], [`Body`] (with its serde tags) and every list of
//! kinds elsewhere derive from the table, so adding a kind is one row here
//! plus what is new about it: its payload, its decoding, its rule fields and
//! its ECS/OCSF mapping.
use std::sync::Arc;

use sensor_common::EventKind;
use serde::{Deserialize, Serialize};

use super::{
    Alert, Attributed, Bpf, Cgroup, Connect, ContainerLifecycle, EgressRecord, Event, Exec, Exit,
    Fork, HookLost, Loss, Open, Process, RateLimited, Subject, Tamper,
};
use crate::container::ContainerRef;

macro_rules! kinds {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident($fields:ty) = $name:literal, kernel: $kernel:expr, rules: $rules:literal;
    )+) => {
        /// What a record is: the `kind` of every line.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[doc = $doc])* $kind,)+
        }

        /// The record's kind and its kind-specific fields.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Body {
            $($(#[doc = $doc])* #[serde(rename = $name)] $kind($fields),)+
        }

        impl Kind {
            /// Every kind, in bit order.
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),+];

            /// Its name in the schema.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)+
                }
            }

            /// The kernel's discriminant, for the kinds the kernel sends.
            pub const fn kernel(self) -> Option<EventKind> {
                match self {
                    $(Kind::$kind => $kernel,)+
                }
            }

            /// Rules are evaluated on its records (`evt.type` can name it);
            /// not on the records the sensor writes about itself.
            pub const fn ruled(self) -> bool {
                match self {
                    $(Kind::$kind => $rules,)+
                }
            }
        }

        impl Body {
            /// Its kind.
            pub const fn kind(&self) -> Kind {
                match self {
                    $(Body::$kind(_) => Kind::$kind,)+
                }
            }
        }

        impl Attributed for Body {
            fn process(&self) -> Option<&Process> {
                match self {
                    $(Body::$kind(fields) => fields.process(),)+
                }
            }

            fn container(&self) -> Option<&Arc<ContainerRef>> {
                match self {
                    $(Body::$kind(fields) => fields.container(),)+
                }
            }

            fn subject_mut(&mut self) -> Option<Subject<'_>> {
                match self {
                    $(Body::$kind(fields) => fields.subject_mut(),)+
                }
            }
        }
    };
}

kinds! {
    /// A successful execve.
    Exec(Event<Exec>) = "exec", kernel: Some(EventKind::Exec), rules: true;
    /// A new process.
    Fork(Event<Fork>) = "fork", kernel: Some(EventKind::Fork), rules: true;
    /// A process ended.
    Exit(Event<Exit>) = "exit", kernel: Some(EventKind::Exit), rules: true;
    /// A file open.
    Open(Event<Open>) = "open", kernel: Some(EventKind::Open), rules: true;
    /// A connect.
    Connect(Event<Connect>) = "connect", kernel: Some(EventKind::Connect), rules: true;
    /// A cgroup was created.
    CgroupMkdir(Event<Cgroup>) = "cgroup_mkdir", kernel: Some(EventKind::CgroupMkdir), rules: true;
    /// A cgroup was removed.
    CgroupRmdir(Event<Cgroup>) = "cgroup_rmdir", kernel: Some(EventKind::CgroupRmdir), rules: true;
    /// A process went over its rate limit (`--rate-limit`): its records of
    /// one kind are counted, not sent, for the rest of a one-second window.
    RateLimited(Event<RateLimited>) = "rate_limited", kernel: Some(EventKind::RateLimited), rules: true;
    /// Another process loaded, attached or detached a BPF program or link.
    Bpf(Event<Bpf>) = "bpf", kernel: Some(EventKind::Bpf), rules: true;
    /// Another process traced, read, wrote or signalled the sensor.
    Tamper(Event<Tamper>) = "tamper", kernel: Some(EventKind::Tamper), rules: true;
    /// Records lost since the previous loss record.
    Loss(Loss) = "loss", kernel: None, rules: false;
    /// The first process of a container exec'd (derived by the sensor).
    ContainerStart(ContainerLifecycle) = "container_start", kernel: None, rules: true;
    /// A container's cgroup was removed (derived by the sensor).
    ContainerStop(ContainerLifecycle) = "container_stop", kernel: None, rules: true;
    /// A rule matched (see docs/RULES.md).
    Alert(Box<Alert>) = "alert", kernel: None, rules: false;
    /// Bytes a cgroup sent to one destination during the last interval.
    Egress(EgressRecord) = "egress", kernel: None, rules: true;
    /// One of the sensor's own hooks was found detached (derived by the sensor).
    HookLost(HookLost) = "hook_lost", kernel: None, rules: true;
}

impl Kind {
    /// Its bit in sets of kinds (rule indexes, `evt.type` tests).
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Its position in [`Kind::ALL`], for tables indexed by kind.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The kind named `name`, of those rules evaluate.
    pub fn ruled_named(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.ruled() && k.name() == name)
    }

    /// The names rules can use, for messages.
    pub fn ruled_names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().filter(|k| k.ruled()).map(|k| k.name())
    }

    /// The kind the kernel sends as `kernel`.
    pub fn of_kernel(kernel: EventKind) -> Self {
        *Self::ALL
            .iter()
            .find(|k| k.kernel() == Some(kernel))
            .expect("every kernel kind has a row in the table")
    }
}

/// Every kind rules evaluate, as bits.
pub const RULED_KINDS: u32 = {
    let mut bits = 0;
    let mut i = 0;
    while i < Kind::ALL.len() {
        if Kind::ALL[i].ruled() {
            bits |= Kind::ALL[i].bit();
        }
        i += 1;
    }
    bits
};

const _: () = assert!(
    Kind::ALL.len() <= u32::BITS as usize,
    "a kind's bit fits a u32"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_the_discriminants() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
            assert_eq!(k.bit(), 1 << i, "{k:?}");
        }
    }

    #[test]
    fn every_kernel_kind_has_one_row() {
        for id in 0..sensor_common::EVENT_KIND_SLOTS as u32 {
            if let Ok(kernel) = EventKind::try_from(id) {
                let rows = Kind::ALL.iter().filter(|k| k.kernel() == Some(kernel));
                assert_eq!(rows.count(), 1, "{kernel:?}");
                assert_eq!(Kind::of_kernel(kernel).kernel(), Some(kernel));
            }
        }
    }

    #[test]
    fn only_ruled_kinds_have_rule_names() {
        assert_eq!(Kind::ruled_named("exec"), Some(Kind::Exec));
        assert_eq!(Kind::ruled_named("rate_limited"), Some(Kind::RateLimited));
        assert_eq!(Kind::ruled_named("loss"), None);
        assert_eq!(Kind::ruled_named("alert"), None);
        assert_eq!(
            RULED_KINDS.count_ones() as usize,
            Kind::ruled_names().count()
        );
    }
}
