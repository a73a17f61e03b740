//! Results of subconditions that read only the acting process and its
//! container, reused across that process's events.
//!
//! Exceptions (`backup_job`, `package_management`) test every ancestor's
//! name against lists and the container image against a regex, and are
//! folded into each step of their rule: a process writing under /tmp paid
//! for them on every write. Their answer cannot change while the process's
//! ids, name, image, ancestry and container stay the same, and the
//! attribution shares those (one `Arc` each) between a process's events,
//! so the key is a few compares.
use std::{cell::Cell, sync::Arc};

use super::{
    compile::Pred,
    fields::{Field, container_entry, process_of},
};
use crate::{
    container::ContainerRef,
    event::Record,
    process::{Ancestry, ExecImage},
};

/// Wraps each maximal subcondition of `p` that reads only the acting
/// process and its container in [`Pred::Memo`], numbering the slots from
/// `*next`.
pub fn memoize(p: Pred, next: &mut usize) -> Pred {
    if of_process(&p) {
        let slot = *next;
        *next += 1;
        return Pred::Memo(slot, Box::new(p));
    }
    match p {
        Pred::And(v) => Pred::And(v.into_iter().map(|x| memoize(x, next)).collect()),
        Pred::Or(v) => Pred::Or(v.into_iter().map(|x| memoize(x, next)).collect()),
        Pred::Not(x) => Pred::Not(Box::new(memoize(*x, next))),
        other => other,
    }
}

fn of_process(p: &Pred) -> bool {
    match p {
        Pred::And(v) | Pred::Or(v) => v.iter().all(of_process),
        Pred::Not(x) | Pred::Memo(_, x) => of_process(x),
        Pred::Test(f, _) => f.of_process(),
        Pred::Kind(_) => false,
    }
}

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

/// What the process-scoped fields ([`Field::of_process`]) read. The key
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
        let process = match process_of(rec) {
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
            container: container_entry(rec).cloned(),
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
        same(self.container.as_ref(), container_entry(rec))
            && match (&self.process, process_of(rec)) {
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

impl Field {
    /// Read only from the acting process (ids, comm, image, ancestry) and
    /// its container, so [`ProcessMemo`] may reuse a result. A field not
    /// listed here is read from the event itself.
    pub fn of_process(self) -> bool {
        use Field::*;
        matches!(
            self,
            ProcPid
                | ProcPpid
                | ProcUid
                | ProcComm
                | ProcExe
                | ProcName
                | ProcExeName
                | ProcScript
                | ProcArgs
                | ProcCmdline
                | ParentExe
                | ParentName
                | ParentCmdline
                | AncestorExe
                | AncestorName
                | AncestorCmdline
                | ContainerId
                | ContainerRuntime
                | ContainerName
                | ContainerImage
                | ContainerPrivileged
                | ContainerHostPid
                | ContainerHostNetwork
                | ContainerRuntimeSocket
                | MountSource
                | MountDestination
                | MountRwSource
                | K8sPod
                | K8sNs
                | K8sPodUid
        )
    }
}
