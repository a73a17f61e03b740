//! Whether the sensor's own hooks are still in place. Tracepoint, tracing
//! and LSM links cannot be detached by anyone else (the kernel answers
//! BPF_LINK_DETACH on them with EOPNOTSUPP), but a cgroup link can: any
//! root process can cut the egress counter off the cgroup2 root with
//! `bpftool link detach`. So that one is checked, and put back.
use std::{fs::File, os::fd::AsRawFd as _, path::Path};

use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType};
use sensor_common::EGRESS_PROGRAM;

use super::Loaded;

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
pub enum HookCheck {
    /// In place.
    Attached,
    /// Found detached, and attached again.
    Reattached,
    /// Found detached; attaching again failed, for this reason.
    Lost(String),
}

/// `bpf(2)` command and the egress attach type, from the kernel's UAPI.
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_CGROUP_INET_EGRESS: u32 = 1;

impl Loaded {
    /// Where the egress counter is attached, for messages.
    pub fn egress_root_display(&self) -> String {
        self.egress_root
            .as_deref()
            .map_or_else(|| "(none)".into(), |r| r.display().to_string())
    }

    /// Checks the egress counter (when it runs) and re-attaches it if
    /// something detached it. `None` when egress is not counted.
    pub fn check_egress(&mut self) -> Option<HookCheck> {
        let root = self.egress_root.clone()?;
        let program: &mut CgroupSkb = self.ebpf.program_mut(EGRESS_PROGRAM)?.try_into().ok()?;
        let ours = program.info().ok()?.id();
        match attached_programs(&root) {
            Ok(ids) if ids.contains(&ours) => return Some(HookCheck::Attached),
            Ok(_) => {}
            Err(e) => return Some(HookCheck::Lost(format!("querying {}: {e}", root.display()))),
        }
        let reattached = File::open(&root)
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                program
                    .attach(dir, CgroupSkbAttachType::Egress, CgroupAttachMode::Single)
                    .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
            });
        Some(match reattached {
            Ok(_) => HookCheck::Reattached,
            Err(e) => HookCheck::Lost(e),
        })
    }
}

/// Ids of the programs attached for egress on the cgroup `dir`.
fn attached_programs(dir: &Path) -> std::io::Result<Vec<u32>> {
    let dir = File::open(dir)?;
    let mut ids = [0u32; 64];
    // `union bpf_attr` for BPF_PROG_QUERY: target_fd, attach_type,
    // query_flags, attach_flags, prog_ids (u64), prog_cnt.
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(dir.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&BPF_CGROUP_INET_EGRESS.to_ne_bytes());
    attr[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr of the query's layout whose
    // prog_ids points at `ids`, with room for the prog_cnt it says; both
    // outlive the call, which writes only into them.
    let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let count = u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]]) as usize;
    Ok(ids[..count.min(ids.len())].to_vec())
}
