//! What could blind the sensor, seen at syscall exit (dispatched from
//! `syscall`, which has already left out the sensor's own calls):
//! - bpf(2) commands that load, attach or detach programs and links, by
//!   any process: another agent's, or an attacker's program on the same
//!   hooks;
//! - ptrace, process_vm_readv/writev and kill/tkill/tgkill naming the
//!   sensor's pid: attaching a debugger, reading or patching its memory,
//!   stopping it. Other targets are not reported, so this costs one compare
//!   on those syscalls.
//!
//! Pids are as the caller named them. A caller in another pid namespace
//! names other numbers, but from there it cannot see the sensor either. A
//! ptrace or tkill of one of the sensor's other threads is not matched.
use aya_ebpf::helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str};
use sensor_common::{BPF_NAME_LEN, BpfEvent, EventKind, TamperEvent, TamperSyscall, bpf_cmd};

use crate::{
    globals::filter,
    helpers::{
        args::Args,
        emit::{HEADER, count_read_error, header, payload, scratch, submit},
        read::{Mem, uread},
    },
};

/// `union bpf_attr` offsets: BPF_PROG_LOAD's `prog_name`, and
/// `attach_type` in BPF_PROG_ATTACH/DETACH and BPF_LINK_CREATE.
const PROG_NAME: u64 = 48;
const ATTACH_TYPE: u64 = 8;

pub fn bpf_exit<M: Mem>(args: &Args, ret: i64) {
    let cmd = args.get::<M>(0) as u32;
    if !bpf_cmd::reported(cmd) {
        return;
    }
    let attr = args.get::<M>(1);
    let Some(s) = scratch() else {
        count_read_error(EventKind::Bpf);
        return;
    };
    header::<M>(s, EventKind::Bpf, None);
    let e = payload::<BpfEvent>(s);
    // SAFETY: `e` is the payload of this CPU's scratch value, which nothing
    // else writes meanwhile; the name reads stay inside its `name`.
    unsafe {
        (*e).ret = ret as i32;
        (*e).cmd = cmd;
        (*e).prog_type = 0;
        (*e).attach_type = 0;
        (*e).flags = args.flags();
        (*e)._pad = 0;
        (*e).name = [0; BPF_NAME_LEN];
        let name = (*e).name.as_mut_ptr().cast();
        match cmd {
            bpf_cmd::PROG_LOAD => {
                (*e).prog_type = uread::<u32>(attr).unwrap_or(0);
                // prog_name is 16 bytes, NUL-terminated by the kernel's rules.
                bpf_probe_read_user(name, 16, (attr + PROG_NAME) as *const _);
            }
            bpf_cmd::PROG_ATTACH | bpf_cmd::PROG_DETACH | bpf_cmd::LINK_CREATE => {
                (*e).attach_type = uread::<u32>(attr + ATTACH_TYPE).unwrap_or(0);
            }
            bpf_cmd::RAW_TRACEPOINT_OPEN => {
                let tracepoint = uread::<u64>(attr).unwrap_or(0);
                if tracepoint != 0 {
                    bpf_probe_read_user_str(name, BPF_NAME_LEN as u32, tracepoint as *const _);
                }
            }
            _ => {}
        }
    }
    submit(s, HEADER + core::mem::size_of::<BpfEvent>(), EventKind::Bpf);
}

pub fn access_exit<M: Mem>(syscall: TamperSyscall, args: &Args, ret: i64) {
    let (target, arg) = match syscall {
        TamperSyscall::Ptrace => (args.get::<M>(1), args.get::<M>(0)),
        TamperSyscall::ProcessVmReadv | TamperSyscall::ProcessVmWritev => (args.get::<M>(0), 0),
        TamperSyscall::Kill | TamperSyscall::Tkill | TamperSyscall::Tgkill => {
            let sig = if syscall == TamperSyscall::Tgkill {
                2
            } else {
                1
            };
            (args.get::<M>(0), args.get::<M>(sig))
        }
    };
    let target = target as u32;
    if target != filter!(self_pid) {
        return;
    }
    let Some(s) = scratch() else {
        count_read_error(EventKind::Tamper);
        return;
    };
    header::<M>(s, EventKind::Tamper, None);
    let e = payload::<TamperEvent>(s);
    // SAFETY: `e` is the payload of this CPU's scratch value, which nothing
    // else writes meanwhile.
    unsafe {
        (*e).ret = ret as i32;
        (*e).syscall = syscall as u32;
        (*e).target = target;
        (*e).arg = arg as u32;
        (*e).flags = args.flags();
        (*e)._pad = 0;
    }
    submit(
        s,
        HEADER + core::mem::size_of::<TamperEvent>(),
        EventKind::Tamper,
    );
}
