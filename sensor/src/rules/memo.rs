//! Results of subconditions that read only the acting process and its
//! container, reused across that process's events (the subconditions are
//! marked at compile time: `compile::memoize`).
//!
//! Exceptions (`backup_job`, `package_management`) test every ancestor's
//! name against lists and the container image against a regex, and are
//! folded into each step of their rule: a process writing under /tmp paid
//! for them on every write. Their answer cannot change while the process's
//! ids, name, image, ancestry and container stay the same, and the
//! attribution shares those (one `Arc` each) between a process's events,
//! so the key is a few compares.
use std::{cell::Cell, sync::Arc};

use crate::{
    container::ContainerRef,
    event::Record,
    process::{Ancestry, ExecImage},
};

/// Slot values of the process the last event came from.
#[derive(Default)]
pub struct ProcessMemo {
    /// None when the last event's process could not be keyed: nothing is
    /// kept then.
    key: Option<ProcessKey>,
    /// Per slot: 0 not evaluated yet, 1 false, 2 true.
    values: Vec<Cell<u8>>,
}

impl ProcessMemo {
    /// Storage for `slots` slots.
    pub fn new(slots: usize) -> Self {
        Self {
            key: None,
            values: vec![Cell::new(0); slots],
        }
    }

    /// Keeps the values if `rec` comes from the same process as the last
    /// event, else forgets them.
    pub fn follow(&mut self, rec: &Record) {
        if self.values.is_empty() {
            return;
        }
        if self.key.as_ref().is_some_and(|k| k.is_of(rec)) {
            return;
        }
        self.key = ProcessKey::of(rec);
        self.values.iter().for_each(|v| v.set(0));
    }

    /// Slot `slot`'s value, computed by `eval` on first use.
    pub fn get(&self, slot: usize, eval: impl FnOnce() -> bool) -> bool {
        let Some(cell) = self.values.get(slot).filter(|_| self.key.is_some()) else {
            return eval();
        };
        match cell.get() {
            0 => {
                let v = eval();
                cell.set(1 + u8::from(v));
                v
            }
            v => v == 2,
        }
    }
}

/// What the process-scoped fields
/// ([`Field::of_process`](super::fields::Field::of_process)) read. The key
/// holds the shared parts, so their addresses cannot be reused for others
/// while it is kept.
struct ProcessKey {
    /// None for records without an acting process (egress, container
    /// lifecycle): their container is all there is.
    process: Option<ProcessParts>,
    container: Option<Arc<ContainerRef>>,
}

struct ProcessParts {
    pid: u32,
    ppid: Option<u32>,
    uid: u32,
    comm: [u8; 16],
    comm_len: usize,
    image: Option<Arc<ExecImage>>,
    ancestors: Ancestry,
}

impl ProcessKey {
    /// None when `rec`'s process cannot be keyed: the kernel's comm is at
    /// most 15 bytes, a longer one (the polling collector's process names)
    /// is not kept.
    fn of(rec: &Record) -> Option<Self> {
        let process = match rec.process() {
            Some(p) => {
                let name = p.comm.as_bytes();
                let mut comm = [0; 16];
                comm.get_mut(..name.len())?.copy_from_slice(name);
                Some(ProcessParts {
                    pid: p.pid,
                    ppid: p.ppid,
                    uid: p.uid,
                    comm,
                    comm_len: name.len(),
                    image: p.image.clone(),
                    ancestors: p.ancestors.clone(),
                })
            }
            None => None,
        };
        Some(Self {
            process,
            container: rec.container().cloned(),
        })
    }

    /// `rec` comes from the process this key was taken from, unchanged.
    fn is_of(&self, rec: &Record) -> bool {
        fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        same(self.container.as_ref(), rec.container())
            && match (&self.process, rec.process()) {
                (Some(k), Some(p)) => {
                    k.pid == p.pid
                        && k.ppid == p.ppid
                        && k.uid == p.uid
                        && k.comm[..k.comm_len] == *p.comm.as_bytes()
                        && same(k.image.as_ref(), p.image.as_ref())
                        && k.ancestors.same(&p.ancestors)
                }
                (None, None) => true,
                _ => false,
            }
    }
}
