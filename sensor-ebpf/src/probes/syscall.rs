//! One hook on syscall exit serves open and connect: the result is known
//! there, and for a successful open the file is already installed in the fd
//! table, so the path comes from the file itself rather than from the string
//! the caller passed (which it could rewrite after the kernel copied it).
//!
//! Kernel prototype relied on: sys_exit(struct pt_regs *regs, long ret).
//! The argument registers are still the caller's at exit; the syscall number
//! is `orig_ax` (offsets from BTF). A 32-bit caller (int 0x80 works from
//! 64-bit code too) uses other numbers and registers; `TS_COMPAT` in
//! `thread_info.status` is still set at this point and tells them apart.
use sensor_common::{OpenSyscall, TamperSyscall, UNAVAILABLE, hook_bits};

use super::{arg, connect, open, tamper, tiered};
use crate::{
    globals::{filter, off},
    helpers::{args::Args, read::Mem},
};

tiered!("sys_exit", tp_btf_sys_exit, raw_tp_sys_exit, sys_exit);

/// The syscalls this hook reports, whatever their number on this ABI.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Open(OpenSyscall),
    Connect,
    /// ia32 socketcall(2): connect when its first argument is SYS_CONNECT.
    Socketcall,
    /// io_uring_enter(2): not reported here, but the LSM tier needs to know
    /// that an open or connect inside it was io_uring's.
    IoUringEnter,
    /// bpf(2).
    Bpf,
    /// A syscall that can act on another process.
    Tamper(TamperSyscall),
}

#[cfg(bpf_target_arch = "x86_64")]
mod abi {
    use super::{Call, OpenSyscall, TamperSyscall as T};

    /// x32 syscalls are the 64-bit numbers with this bit set.
    pub const X32_BIT: u64 = 0x4000_0000;
    /// `thread_info.status` bit of a syscall entered through a compat gate.
    pub const TS_COMPAT: u32 = 0x0002;

    /// Any number either table reports: one compare chain for the common
    /// case before the compat status is read.
    #[inline(always)]
    pub fn maybe_interesting(nr: u64) -> bool {
        matches!(
            nr,
            2 | 85
                | 257
                | 437
                | 42
                | 426
                | 5
                | 8
                | 295
                | 362
                | 102
                | 321
                | 101
                | 310
                | 311
                | 62
                | 200
                | 234
                | 357
                | 26
                | 347
                | 348
                | 37
                | 238
                | 270
        )
    }

    #[inline(always)]
    pub fn native(nr: u64) -> Option<Call> {
        Some(match nr {
            2 => Call::Open(OpenSyscall::Open),
            85 => Call::Open(OpenSyscall::Creat),
            257 => Call::Open(OpenSyscall::Openat),
            437 => Call::Open(OpenSyscall::Openat2),
            42 => Call::Connect,
            426 => Call::IoUringEnter,
            321 => Call::Bpf,
            101 => Call::Tamper(T::Ptrace),
            310 => Call::Tamper(T::ProcessVmReadv),
            311 => Call::Tamper(T::ProcessVmWritev),
            62 => Call::Tamper(T::Kill),
            200 => Call::Tamper(T::Tkill),
            234 => Call::Tamper(T::Tgkill),
            _ => return None,
        })
    }

    /// arch/x86/entry/syscalls/syscall_32.tbl
    #[inline(always)]
    pub fn ia32(nr: u64) -> Option<Call> {
        Some(match nr {
            5 => Call::Open(OpenSyscall::Open),
            8 => Call::Open(OpenSyscall::Creat),
            295 => Call::Open(OpenSyscall::Openat),
            437 => Call::Open(OpenSyscall::Openat2),
            362 => Call::Connect,
            102 => Call::Socketcall,
            426 => Call::IoUringEnter,
            357 => Call::Bpf,
            26 => Call::Tamper(T::Ptrace),
            347 => Call::Tamper(T::ProcessVmReadv),
            348 => Call::Tamper(T::ProcessVmWritev),
            37 => Call::Tamper(T::Kill),
            238 => Call::Tamper(T::Tkill),
            270 => Call::Tamper(T::Tgkill),
            _ => return None,
        })
    }
}

#[cfg(bpf_target_arch = "aarch64")]
mod abi {
    use super::{Call, OpenSyscall, TamperSyscall as T};

    pub const X32_BIT: u64 = 0;
    pub const TS_COMPAT: u32 = 0;

    #[inline(always)]
    pub fn maybe_interesting(nr: u64) -> bool {
        matches!(
            nr,
            56 | 437 | 203 | 426 | 280 | 117 | 270 | 271 | 129 | 130 | 131
        )
    }

    /// arm64 has no open(2) or creat(2).
    #[inline(always)]
    pub fn native(nr: u64) -> Option<Call> {
        Some(match nr {
            56 => Call::Open(OpenSyscall::Openat),
            437 => Call::Open(OpenSyscall::Openat2),
            203 => Call::Connect,
            426 => Call::IoUringEnter,
            280 => Call::Bpf,
            117 => Call::Tamper(T::Ptrace),
            270 => Call::Tamper(T::ProcessVmReadv),
            271 => Call::Tamper(T::ProcessVmWritev),
            129 => Call::Tamper(T::Kill),
            130 => Call::Tamper(T::Tkill),
            131 => Call::Tamper(T::Tgkill),
            _ => return None,
        })
    }

    #[inline(always)]
    pub fn ia32(_nr: u64) -> Option<Call> {
        None
    }
}

/// The syscall whose saved registers are `regs`, when it is one this
/// module knows, and whether it came through the compat entry.
#[inline(always)]
pub fn classify<M: Mem>(regs: u64) -> Option<(Call, bool)> {
    let raw_nr = M::read::<u64>(regs, off!(regs_syscall_nr)).ok()?;
    let nr = raw_nr & !abi::X32_BIT;
    if !abi::maybe_interesting(nr) {
        return None;
    }
    let status_off = off!(task_thread_status);
    let compat = status_off != UNAVAILABLE as usize
        && M::read::<u32>(M::current(), status_off).is_ok_and(|s| s & abi::TS_COMPAT != 0);
    let call = if compat {
        abi::ia32(nr)
    } else {
        abi::native(nr)
    };
    call.map(|c| (c, compat))
}

fn sys_exit<M: Mem>(ctx: *const u64) {
    let hooks = filter!(hooks);
    if hooks & (hook_bits::OPEN | hook_bits::CONNECT | hook_bits::TAMPER) == 0 {
        return;
    }
    let regs = arg(ctx, 0);
    let ret = arg(ctx, 1) as i64;
    let Some((call, compat)) = classify::<M>(regs) else {
        return;
    };
    let wanted = match call {
        Call::Open(_) => hook_bits::OPEN,
        Call::Connect | Call::Socketcall => hook_bits::CONNECT,
        Call::Bpf | Call::Tamper(_) => hook_bits::TAMPER,
        Call::IoUringEnter => return,
    };
    if hooks & wanted == 0 {
        return;
    }
    // The sensor's own file activity would feed back into its output.
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if pid == filter!(self_pid) {
        return;
    }
    let mut args = Args::new(regs, compat);
    match call {
        Call::Open(syscall) => open::on_exit::<M>(syscall, &args, ret),
        Call::Connect => connect::on_exit::<M>(&args, ret),
        Call::Socketcall => {
            const SYS_CONNECT: u64 = 3;
            if args.get::<M>(0) == SYS_CONNECT {
                let array = args.get::<M>(1);
                if args.use_socketcall_array(array) {
                    connect::on_exit::<M>(&args, ret);
                }
            }
        }
        Call::Bpf => tamper::bpf_exit::<M>(&args, ret),
        Call::Tamper(syscall) => tamper::access_exit::<M>(syscall, &args, ret),
        Call::IoUringEnter => {}
    }
}
