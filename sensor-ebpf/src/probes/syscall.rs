//! One hook on syscall exit serves open and connect: the result is known
//! there, and for a successful open the file is already installed in the fd
//! table, so the path comes from the file itself rather than from the string
//! the caller passed (which it could rewrite after the kernel copied it).
//!
//! Kernel prototype relied on: sys_exit(struct pt_regs *regs, long ret).
//! The argument registers are still the caller's at exit; the syscall number
//! is `orig_ax` on x86_64 and `syscallno` on arm64 (offsets from BTF).
use sensor_common::hook_bits;

use super::{arg, connect, open, tiered};
use crate::{
    globals::{filter, off},
    helpers::read::Mem,
};

tiered!("sys_exit", tp_btf_sys_exit, raw_tp_sys_exit, sys_exit);

/// Syscall numbers of this architecture.
#[cfg(bpf_target_arch = "x86_64")]
pub mod nr {
    pub const OPEN: u64 = 2;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
    pub const OPENAT2: u64 = 437;
    pub const CONNECT: u64 = 42;
}
#[cfg(bpf_target_arch = "aarch64")]
pub mod nr {
    // arm64 has no open(2) or creat(2); u64::MAX never matches.
    pub const OPEN: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX - 1;
    pub const OPENAT: u64 = 56;
    pub const OPENAT2: u64 = 437;
    pub const CONNECT: u64 = 203;
}

/// Syscall arguments read from the saved user registers.
pub struct Args {
    regs: u64,
}

impl Args {
    /// Argument `i` (0..4).
    #[inline(always)]
    pub fn get<M: Mem>(&self, i: usize) -> u64 {
        let o = match i {
            0 => off!(regs_arg0),
            1 => off!(regs_arg1),
            2 => off!(regs_arg2),
            _ => off!(regs_arg3),
        };
        M::read(self.regs, o).unwrap_or(0)
    }
}

fn sys_exit<M: Mem>(ctx: *const u64) {
    let hooks = filter!(hooks);
    if hooks & (hook_bits::OPEN | hook_bits::CONNECT) == 0 {
        return;
    }
    let regs = arg(ctx, 0);
    let ret = arg(ctx, 1) as i64;
    let Ok(nr) = M::read::<u64>(regs, off!(regs_syscall_nr)) else {
        return;
    };
    let is_open = matches!(nr, nr::OPEN | nr::OPENAT | nr::OPENAT2 | nr::CREAT);
    if !(is_open && hooks & hook_bits::OPEN != 0
        || nr == nr::CONNECT && hooks & hook_bits::CONNECT != 0)
    {
        return;
    }
    // The sensor's own file activity would feed back into its output.
    let pid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
    if pid == filter!(self_pid) {
        return;
    }
    let args = Args { regs };
    if is_open {
        open::on_exit::<M>(nr, &args, ret);
    } else {
        connect::on_exit::<M>(&args, ret);
    }
}
