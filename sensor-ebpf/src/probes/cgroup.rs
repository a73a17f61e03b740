//! cgroup directory creation and removal: the earliest sign of a new
//! container, before its first exec.
//!
//! Kernel prototypes relied on (include/trace/events/cgroup.h):
//!   cgroup_mkdir(struct cgroup *cgrp, const char *path)
//!   cgroup_rmdir(struct cgroup *cgrp, const char *path)
use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::{CgroupEvent, EventKind, PATH_MAX, hook_bits};

use super::{arg, tiered};
use crate::{
    globals::{filter, off},
    helpers::{
        emit::{HEADER, count_read_error, header, payload, scratch, submit},
        read::Mem,
    },
};

tiered!(
    "cgroup_mkdir",
    tp_btf_cgroup_mkdir,
    raw_tp_cgroup_mkdir,
    mkdir
);
tiered!(
    "cgroup_rmdir",
    tp_btf_cgroup_rmdir,
    raw_tp_cgroup_rmdir,
    rmdir
);

const TAIL: usize = HEADER + core::mem::size_of::<CgroupEvent>();

fn mkdir<M: Mem>(ctx: *const u64) {
    emit::<M>(ctx, EventKind::CgroupMkdir);
}

fn rmdir<M: Mem>(ctx: *const u64) {
    emit::<M>(ctx, EventKind::CgroupRmdir);
}

fn emit<M: Mem>(ctx: *const u64, kind: EventKind) {
    if filter!(hooks) & hook_bits::CGROUP == 0 {
        return;
    }
    let cgrp = arg(ctx, 0);
    let path = arg(ctx, 1);
    let Some(s) = scratch() else {
        count_read_error(kind);
        return;
    };
    header::<M>(s, kind, None);
    let e = payload::<CgroupEvent>(s);
    let id = M::ptr(cgrp, off!(cgroup_kn)).and_then(|kn| M::read::<u64>(kn, off!(kernfs_node_id)));
    let hierarchy = M::ptr(cgrp, off!(cgroup_root))
        .and_then(|r| M::read::<i32>(r, off!(cgroup_root_hierarchy_id)));
    // SAFETY: destination inside scratch: TAIL + PATH_MAX < SCRATCH_SIZE.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            (*s).buf.as_mut_ptr().add(TAIL).cast(),
            PATH_MAX as u32,
            path as *const _,
        )
    };
    let path_len = if n > 1 {
        (n - 1) as usize & (PATH_MAX - 1)
    } else {
        0
    };
    // SAFETY: `e` is the payload of this CPU's scratch value (`payload`
    // keeps it inside `buf`), which nothing else writes meanwhile.
    unsafe {
        (*e).id = id.unwrap_or(0);
        (*e).hierarchy_id = hierarchy.unwrap_or(-1) as u32;
        (*e).level = M::read(cgrp, off!(cgroup_level)).unwrap_or(0);
        (*e).path_len = path_len as u32;
        (*e)._pad = 0;
    }
    submit(s, TAIL + path_len, kind);
}
