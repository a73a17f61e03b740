//! The LSM tier: programs on the kernel's own security checks (BPF LSM,
//! kernel >= 5.15 for `bpf_task_pt_regs`, with `bpf` in the active LSM
//! list). They see the objects the kernel acts on, so they close two gaps
//! of the syscall-exit hook:
//!
//! - `socket_connect` gets the kernel's copy of the address. For a connect
//!   syscall it is stashed for sys_exit, which reports it with the result
//!   instead of rereading the caller's buffer (which a second thread may
//!   have rewritten after the kernel copied it).
//! - io_uring opens and connects never pass a syscall exit; both hooks
//!   report those themselves.
//!
//! Syscall opens stay with sys_exit, which knows the result and the fd.
//! Every program returns the previous LSM verdict unchanged: the sensor
//! observes, it never decides.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_task_pt_regs},
    macros::lsm,
    programs::LsmContext,
};
use sensor_common::hook_bits;

use super::{
    connect, open,
    syscall::{Call, classify},
};
use crate::{
    globals::{filter, off},
    helpers::read::{Direct, Mem},
};

/// `task_struct.flags` bit of io_uring's worker and SQPOLL threads.
const PF_IO_WORKER: u32 = 0x10;

/// Who is asking.
enum Origin {
    /// A syscall this sensor reports at sys_exit.
    Syscall(Call),
    /// io_uring, from `io_uring_enter` or one of its kernel threads.
    IoUring,
    /// Anything else (exec opening its binary, kernel-internal sockets).
    Other,
}

#[inline(always)]
fn origin() -> Origin {
    let task = Direct::current();
    // Checked here, not only inside the reads: on a NULL path the compiler
    // would pass the constant 0, which the verifier refuses as a task.
    if task == 0 {
        return Origin::Other;
    }
    if Direct::read::<u32>(task, off!(task_flags)).is_ok_and(|f| f & PF_IO_WORKER != 0) {
        return Origin::IoUring;
    }
    // SAFETY: `task` is the current task as a BTF pointer.
    let regs = unsafe { bpf_task_pt_regs(task as *mut _) } as u64;
    match classify::<Direct>(regs) {
        Some((Call::IoUringEnter, _)) => Origin::IoUring,
        Some((call, _)) => Origin::Syscall(call),
        None => Origin::Other,
    }
}

#[inline(always)]
fn is_self() -> bool {
    (bpf_get_current_pid_tgid() >> 32) as u32 == filter!(self_pid)
}

/// `file_open(struct file *file)`, then the previous verdict.
#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let verdict: i32 = ctx.arg(1);
    if verdict == 0
        && filter!(hooks) & hook_bits::OPEN != 0
        && !is_self()
        && matches!(origin(), Origin::IoUring)
    {
        open::from_io_uring(file);
    }
    verdict
}

/// `socket_connect(struct socket *sock, struct sockaddr *address, int
/// addrlen)`, then the previous verdict.
#[lsm(hook = "socket_connect")]
pub fn lsm_socket_connect(ctx: LsmContext) -> i32 {
    let sock: u64 = ctx.arg(0);
    let address: u64 = ctx.arg(1);
    let addrlen: i32 = ctx.arg(2);
    let verdict: i32 = ctx.arg(3);
    if verdict != 0 || filter!(hooks) & hook_bits::CONNECT == 0 || is_self() {
        return verdict;
    }
    match origin() {
        Origin::Syscall(Call::Connect | Call::Socketcall) => connect::stash(sock, address, addrlen),
        Origin::IoUring => connect::from_io_uring(sock, address, addrlen),
        Origin::Syscall(_) | Origin::Other => {}
    }
    verdict
}
