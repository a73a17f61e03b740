//! Typed reads at BTF-derived offsets. Every kernel pointer the programs
//! follow goes through here, so a failed read is one error path.
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_user};

/// A failed kernel or user read.
pub struct ReadError;

/// Reads a `T` at `base + off` in kernel memory.
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

/// Reads a `T` from user memory.
#[inline(always)]
pub fn uread<T>(addr: u64) -> Result<T, ReadError> {
    // SAFETY: as above, for user addresses.
    unsafe { bpf_probe_read_user(addr as *const T).map_err(|_| ReadError) }
}
