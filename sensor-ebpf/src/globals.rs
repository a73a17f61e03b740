//! Read-only globals userspace overrides before load. The verifier sees their
//! values as constants, so offsets are known at verification time and
//! disabled hooks are dead code.
use sensor_common::{FilterConfig, KernelOffsets};

#[unsafe(no_mangle)]
// SAFETY: `KernelOffsets` is repr(C) integers only, so all-zero bytes are a
// valid value; it is only the placeholder userspace overwrites before load.
pub(crate) static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

#[unsafe(no_mangle)]
// SAFETY: `FilterConfig` is repr(C) integers only, so all-zero bytes are a
// valid value; it is only the placeholder userspace overwrites before load.
pub(crate) static FILTER: FilterConfig = unsafe { core::mem::zeroed() };

/// Offset of one kernel field, as `usize`. Volatile so the compiler cannot
/// fold the zero placeholder in.
macro_rules! off {
    ($field:ident) => {{
        // SAFETY: the pointer is `&raw const` of a field of an immutable
        // static, so it is aligned, initialised and valid for the whole
        // program; nothing in the kernel program writes `OFFSETS`.
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::OFFSETS.$field) };
        v as usize
    }};
}
pub(crate) use off;

/// One filter setting.
macro_rules! filter {
    ($field:ident) => {{
        // SAFETY: as in `off!`: a field of the immutable static `FILTER`,
        // aligned, initialised and never written by the kernel program.
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(&raw const $crate::globals::FILTER.$field) };
        v
    }};
}
pub(crate) use filter;
