//! Read-only globals userspace overrides before load. The verifier sees their
//! values as constants, so offsets are known at verification time and
//! disabled hooks are dead code.
use sensor_common::{FilterConfig, KernelOffsets};

#[unsafe(no_mangle)]
pub(crate) static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

#[unsafe(no_mangle)]
pub(crate) static FILTER: FilterConfig = unsafe { core::mem::zeroed() };

/// Offset of one kernel field, as `usize`. Volatile so the compiler cannot
/// fold the zero placeholder in.
macro_rules! off {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::OFFSETS.$field) };
        v as usize
    }};
}
pub(crate) use off;

/// One filter setting.
macro_rules! filter {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::FILTER.$field) };
        v
    }};
}
pub(crate) use filter;
