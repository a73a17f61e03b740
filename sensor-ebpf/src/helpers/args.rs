//! Arguments of the syscall a program runs on behalf of, read from its
//! saved registers. The dispatcher (`probes::syscall`) builds them once and
//! hands them to the per-syscall reporters (`probes::open`,
//! `probes::connect`), which therefore depend only on this helper, never on
//! the dispatcher.
use crate::{
    globals::off,
    helpers::read::{Mem, uread},
};

/// Syscall arguments: saved registers, or for socketcall(2) the caller's
/// array of 32-bit words.
pub struct Args {
    regs: u64,
    compat: bool,
    socketcall_args: u64,
}

impl Args {
    /// The arguments held in the saved registers `regs`; `compat` when the
    /// call came through the 32-bit entry.
    #[inline(always)]
    pub fn new(regs: u64, compat: bool) -> Self {
        Self {
            regs,
            compat,
            socketcall_args: 0,
        }
    }

    /// From now on, read the arguments from socketcall(2)'s user array at
    /// `addr` (its second argument) instead of the registers. False when
    /// `addr` is NULL: there is nothing to read then, and the registers
    /// stay the source.
    #[inline(always)]
    pub fn use_socketcall_array(&mut self, addr: u64) -> bool {
        self.socketcall_args = addr;
        self.socketcall_args != 0
    }

    /// Argument `i` (0..4).
    #[inline(always)]
    pub fn get<M: Mem>(&self, i: usize) -> u64 {
        if self.socketcall_args != 0 {
            return uread::<u32>(self.socketcall_args + 4 * i as u64).unwrap_or(0) as u64;
        }
        if self.compat {
            let o = match i {
                0 => off!(regs_compat_arg0),
                1 => off!(regs_compat_arg1),
                2 => off!(regs_compat_arg2),
                _ => off!(regs_compat_arg3),
            };
            // The ia32 entry truncates every argument to 32 bits.
            return M::read::<u64>(self.regs, o).unwrap_or(0) as u32 as u64;
        }
        let o = match i {
            0 => off!(regs_arg0),
            1 => off!(regs_arg1),
            2 => off!(regs_arg2),
            _ => off!(regs_arg3),
        };
        M::read(self.regs, o).unwrap_or(0)
    }

    /// [`sensor_common::flags::COMPAT_SYSCALL`] when the call was 32-bit.
    #[inline(always)]
    pub fn flags(&self) -> u32 {
        if self.compat {
            sensor_common::flags::COMPAT_SYSCALL
        } else {
            0
        }
    }
}
