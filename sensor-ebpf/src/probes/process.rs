//! Process lifecycle: exec (sched_process_exec), fork (sched_process_fork),
//! exit (sched_process_exit). Fork and exit let userspace keep a process
//! table without scanning /proc.
//!
//! Kernel prototypes relied on (include/trace/events/sched.h):
//!   sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
//!   sched_process_fork(struct task_struct *parent, struct task_struct *child)
//!   sched_process_exit(struct task_struct *p, ...)
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use sensor_common::{
    ARGV_MAX, EventKind, ExecEvent, ExitEvent, ForkEvent, PATH_MAX, UNAVAILABLE, flags, hook_bits,
};

use super::{arg, tiered};
use crate::{
    globals::{filter, off},
    helpers::{
        emit::{HEADER, count_read_error, header, payload, scratch, submit, submit_now},
        path::{file_parts, write_path},
        read::Mem,
        task,
    },
};

tiered!(
    "sched_process_exec",
    tp_btf_sched_process_exec,
    raw_tp_sched_process_exec,
    exec
);
tiered!(
    "sched_process_fork",
    tp_btf_sched_process_fork,
    raw_tp_sched_process_fork,
    fork
);
tiered!(
    "sched_process_exit",
    tp_btf_sched_process_exit,
    raw_tp_sched_process_exit,
    exit
);

const EXEC_TAIL: usize = HEADER + core::mem::size_of::<ExecEvent>();

fn enabled() -> bool {
    filter!(hooks) & hook_bits::EXEC != 0
}

fn exec<M: Mem>(ctx: *const u64) {
    if !enabled() {
        return;
    }
    let bprm = arg(ctx, 2);
    let current = M::current();
    let Some(s) = scratch() else {
        count_read_error(EventKind::Exec);
        return;
    };
    header::<M>(s, EventKind::Exec, Some(current));
    let e = payload::<ExecEvent>(s);
    // SAFETY: `e` points into this CPU's scratch value.
    unsafe {
        (*e).ppid = task::ppid::<M>(current).unwrap_or(0);
        let (euid, egid) = task::effective_ids::<M>(current).unwrap_or((u32::MAX, u32::MAX));
        (*e).euid = euid;
        (*e).egid = egid;
        let (ns_pid, pid_ns) = task::ns_pid(current).unwrap_or((0, 0));
        (*e).ns_pid = ns_pid;
        (*e).pid_ns = pid_ns;
        (*e).mnt_ns = task::mnt_ns::<M>(current).unwrap_or(0);
        (*e).start_boottime = task::start_boottime::<M>(current).unwrap_or(0);
        (*e)._pad = 0;
    }

    // The executable actually mapped (for a #! script, its interpreter; the
    // script itself is in argv, where binfmt_script puts it).
    let (path_len, mut bits) = match M::ptr(bprm, off!(binprm_file)) {
        Ok(file) => match file_parts(file) {
            Ok((start, _)) => write_path(s, EXEC_TAIL, start),
            Err(_) => (0, 0),
        },
        Err(_) => (0, 0),
    };

    // argv from the new image's stack: [arg_start, arg_end) of the new mm.
    let argv_off = EXEC_TAIL + (path_len & (2 * PATH_MAX - 1));
    let mut argv_len = 0usize;
    if let Ok(mm) = M::ptr(current, off!(task_mm)) {
        let start: u64 = M::read(mm, off!(mm_arg_start)).unwrap_or(0);
        let end: u64 = M::read(mm, off!(mm_arg_end)).unwrap_or(0);
        let mut want = end.saturating_sub(start) as usize;
        if want > ARGV_MAX {
            want = ARGV_MAX;
            bits |= flags::ARGV_TRUNCATED;
        }
        // SAFETY: destination bounded by the masks above, inside scratch.
        let r = unsafe {
            bpf_probe_read_user(
                (*s).buf.as_mut_ptr().add(argv_off).cast(),
                want as u32,
                start as *const _,
            )
        };
        if r == 0 {
            argv_len = want;
        }
    }
    // SAFETY: scratch value of this CPU.
    let in_child_pid_ns = unsafe {
        (*e).flags = bits;
        (*e).path_len = path_len as u32;
        (*e).argv_len = argv_len as u32;
        let h = (*s).buf.as_mut_ptr() as *const sensor_common::EventHeader;
        (*e).ns_pid != 0 && (*e).ns_pid != (*h).pid
    };
    // An exec in a child pid namespace is most likely a container's: wake
    // the reader now, while the runtime's state for it can still be read.
    if in_child_pid_ns {
        submit_now(s, argv_off + argv_len, EventKind::Exec);
    } else {
        submit(s, argv_off + argv_len, EventKind::Exec);
    }
}

fn fork<M: Mem>(ctx: *const u64) {
    if !enabled() {
        return;
    }
    // arg 0, the parent, is the current task: the header describes it.
    let child = arg(ctx, 1);
    let (Ok(child_tid), Ok(child_pid)) = (task::tid::<M>(child), task::tgid::<M>(child)) else {
        count_read_error(EventKind::Fork);
        return;
    };
    if child_tid != child_pid {
        return; // a new thread, not a new process
    }
    let Some(s) = scratch() else {
        count_read_error(EventKind::Fork);
        return;
    };
    header::<M>(s, EventKind::Fork, Some(child));
    let e = payload::<ForkEvent>(s);
    // The header describes the forking task; the child may differ in parent
    // (CLONE_PARENT) and cgroup (CLONE_INTO_CGROUP).
    // SAFETY: scratch value of this CPU.
    unsafe {
        let h = (*s).buf.as_mut_ptr() as *mut sensor_common::EventHeader;
        (*e).parent_tid = (*h).tid;
        (*e).ppid = task::ppid::<M>(child).unwrap_or((*h).pid);
        (*h).tid = child_tid;
        (*h).pid = child_pid;
        if let Ok(id) = task::cgroup2_id::<M>(child) {
            (*h).cgroup_id = id;
        }
        (*e).start_boottime = task::start_boottime::<M>(child).unwrap_or(0);
    }
    submit(
        s,
        HEADER + core::mem::size_of::<ForkEvent>(),
        EventKind::Fork,
    );
}

fn exit<M: Mem>(ctx: *const u64) {
    if !enabled() {
        return;
    }
    let t = arg(ctx, 0);
    // Only the last thread out reports the process exit. signal->live is
    // decremented before this point, so two threads exiting together can
    // both see 0; the tracepoint's own group_dead (6.16+) cannot.
    let group_dead = if off!(exit_group_dead_arg) != UNAVAILABLE as usize {
        arg(ctx, 1) as u8 != 0
    } else {
        matches!(task::group_dead::<M>(t), Ok(true))
    };
    if !group_dead {
        return;
    }
    let Some(s) = scratch() else {
        count_read_error(EventKind::Exit);
        return;
    };
    header::<M>(s, EventKind::Exit, Some(t));
    let e = payload::<ExitEvent>(s);
    // SAFETY: scratch value of this CPU.
    unsafe {
        (*e).exit_code = M::read(t, off!(task_exit_code)).unwrap_or(0);
        (*e)._pad = 0;
        (*e).start_boottime = task::start_boottime::<M>(t).unwrap_or(0);
    }
    submit(
        s,
        HEADER + core::mem::size_of::<ExitEvent>(),
        EventKind::Exit,
    );
}
