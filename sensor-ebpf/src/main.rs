//! Kernel side of the sensor. Every hook exists twice, as a BTF tracepoint
//! (`tp_btf_*`) and as a raw tracepoint (`raw_tp_*`), with one body: userspace
//! loads the best tier the kernel accepts. Struct offsets come from
//! `OFFSETS`, which userspace fills from the running kernel's BTF.
#![no_std]
#![no_main]

mod globals;
mod helpers;
mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic path, so this never runs.
    loop {}
}

/// probe_read_kernel and friends are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
