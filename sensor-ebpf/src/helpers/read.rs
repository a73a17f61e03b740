//! Reads at BTF-derived offsets, in two flavours chosen per program tier:
//!
//! - [`Direct`] (tp_btf): plain loads through BTF-typed pointers. The
//!   verifier turns them into fault-tolerant PROBE_MEM loads, a few ns each,
//!   but only accepts them on chains that start at a typed pointer (a
//!   tracepoint argument or `bpf_get_current_task_btf()`).
//! - [`Probe`] (raw_tp, and any pointer the verifier sees as a plain number):
//!   `bpf_probe_read_kernel`, about 27 ns per call on the test machines.
//!
//! Path walks and the fd-table slot always use [`Probe`]: container_of and
//! variable indexing turn typed pointers into numbers.
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_user};

/// A failed kernel or user read.
pub struct ReadError;

/// How kernel memory is read.
pub trait Mem {
    /// Reads a `T` at `base + off`.
    fn read<T: Copy>(base: u64, off: usize) -> Result<T, ReadError>;

    /// The current task, typed where the tier allows.
    fn current() -> u64;

    /// Reads a pointer field and refuses NULL.
    #[inline(always)]
    fn ptr(base: u64, off: usize) -> Result<u64, ReadError> {
        let p: u64 = Self::read(base, off)?;
        if p == 0 { Err(ReadError) } else { Ok(p) }
    }
}

/// Plain loads through BTF-typed pointers (tp_btf tier).
pub struct Direct;

/// `bpf_probe_read_kernel` (raw_tp tier, untyped pointers).
pub struct Probe;

impl Mem for Direct {
    #[inline(always)]
    fn read<T: Copy>(base: u64, off: usize) -> Result<T, ReadError> {
        if base == 0 {
            return Err(ReadError);
        }
        // SAFETY: `base` is a BTF-typed kernel pointer and `off` a field
        // offset from the same BTF; the verifier checks both and converts
        // the load into one that cannot fault.
        Ok(unsafe { core::ptr::read_volatile((base + off as u64) as *const T) })
    }

    #[inline(always)]
    fn current() -> u64 {
        // SAFETY: helper without arguments (kernel >= 5.11).
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() as u64 }
    }
}

impl Mem for Probe {
    #[inline(always)]
    fn read<T: Copy>(base: u64, off: usize) -> Result<T, ReadError> {
        kread(base, off)
    }

    #[inline(always)]
    fn current() -> u64 {
        // SAFETY: helper without arguments.
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() }
    }
}

/// Reads a `T` at `base + off` in kernel memory with `bpf_probe_read_kernel`.
#[inline(always)]
pub fn kread<T>(base: u64, off: usize) -> Result<T, ReadError> {
    if base == 0 {
        return Err(ReadError);
    }
    // SAFETY: probe_read validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T).map_err(|_| ReadError) }
}

/// Reads a pointer-sized field and refuses NULL.
#[inline(always)]
pub fn kptr(base: u64, off: usize) -> Result<u64, ReadError> {
    let p: u64 = kread(base, off)?;
    if p == 0 { Err(ReadError) } else { Ok(p) }
}

/// Reads two pointer-sized fields with one probe when they lie within 64
/// bytes of each other (true of the hot pairs: `dentry.d_parent` and
/// `d_name.name`, `path.mnt` and `path.dentry`), else with two.
#[inline(always)]
pub fn kread_pair(base: u64, a: usize, b: usize) -> Result<(u64, u64), ReadError> {
    const WINDOW: usize = 64;
    let lo = if a < b { a } else { b };
    let hi = if a < b { b } else { a } + 8;
    if hi - lo > WINDOW || base == 0 {
        return Ok((kread(base, a)?, kread(base, b)?));
    }
    let mut window = [0u8; WINDOW];
    // SAFETY: destination is the stack window, length bounded by WINDOW;
    // offsets are verifier-known constants from OFFSETS.
    unsafe {
        let r = aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            window.as_mut_ptr().cast(),
            (hi - lo) as u32,
            (base + lo as u64) as *const _,
        );
        if r != 0 {
            return Err(ReadError);
        }
        let pa = core::ptr::read_unaligned(window.as_ptr().add(a - lo) as *const u64);
        let pb = core::ptr::read_unaligned(window.as_ptr().add(b - lo) as *const u64);
        Ok((pa, pb))
    }
}

/// Reads a `T` from user memory.
#[inline(always)]
pub fn uread<T>(addr: u64) -> Result<T, ReadError> {
    // SAFETY: as above, for user addresses.
    unsafe { bpf_probe_read_user(addr as *const T).map_err(|_| ReadError) }
}
