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
        // SAFETY: the helper takes no arguments, so there is no pointer
        // contract to meet; it exists on the kernels that run this tier
        // (>= 5.11) and returns the current task.
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
        // SAFETY: the helper takes no arguments, so there is no pointer
        // contract to meet; it returns the current task as a number.
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

/// Several nearby fields of one struct read with a single probe: one
/// helper call instead of one per field on the hot paths (path walks). The
/// bytes land where the caller says: the stack for a window read once,
/// per-CPU scratch for those of the path walk, which would otherwise take
/// the open path's call chain past the verifier's 512 bytes of stack.
pub struct Window {
    bytes: *const u8,
    lo: usize,
}

impl Window {
    /// Reads `[base + lo, base + hi)` into `dst`, which holds `cap` bytes.
    /// Offsets are verifier-known constants; userspace checks at load that
    /// every window used fits its buffer.
    #[inline(always)]
    pub fn read(
        dst: *mut u8,
        cap: usize,
        base: u64,
        lo: usize,
        hi: usize,
    ) -> Result<Self, ReadError> {
        if base == 0 || hi <= lo || hi - lo > cap {
            return Err(ReadError);
        }
        // Not zeroed first: BPF has no memset, and the byte loop standing
        // in for it would be re-walked by the verifier on every path
        // component (too much for 6.1). The read fills [lo, hi).
        // SAFETY: `dst` holds `cap` >= hi - lo bytes.
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                dst.cast(),
                (hi - lo) as u32,
                (base + lo as u64) as *const _,
            )
        };
        if r != 0 {
            Err(ReadError)
        } else {
            Ok(Self { bytes: dst, lo })
        }
    }

    /// The field at struct offset `off` (which lies inside the window).
    #[inline(always)]
    pub fn get<T: Copy>(&self, off: usize) -> T {
        // SAFETY: off - lo + size_of::<T>() <= hi - lo by the load-time
        // check, and the read filled [lo, hi).
        unsafe { core::ptr::read_unaligned(self.at(off) as *const T) }
    }

    /// Pointer to the bytes at struct offset `off`.
    #[inline(always)]
    pub fn at(&self, off: usize) -> *const u8 {
        // SAFETY: as for `get`.
        unsafe { self.bytes.add(off - self.lo) }
    }
}

/// Reads a `T` from user memory.
#[inline(always)]
pub fn uread<T>(addr: u64) -> Result<T, ReadError> {
    // SAFETY: as above, for user addresses.
    unsafe { bpf_probe_read_user(addr as *const T).map_err(|_| ReadError) }
}
